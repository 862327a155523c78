"""Intake's domain operation: accept a claim event durably, idempotently, with its outbox event."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.models import claim_events, claim_lines, claims, idempotency_keys, outbox
from services.intake.schemas import ClaimAccepted, ClaimIn
from shared.db import unit_of_work
from shared.events import ClaimAdjudicated, ClaimLine, Envelope, deterministic_event_id
from shared.http import Problem
from shared.kafka.outbox import add_to_outbox
from shared.temporal import claim_workflow_id


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def request_hash(claim: ClaimIn) -> str:
    canonical = json.dumps(claim.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_key(claim: ClaimIn) -> str:
    return f"{claim.source_system}:{claim.claim_id}:{claim.event_sequence}"


def to_event(claim: ClaimIn) -> ClaimAdjudicated:
    """What leaves intake: claim facts without patient data."""
    return ClaimAdjudicated(
        claim_id=claim.claim_id,
        event_sequence=claim.event_sequence,
        source_system=claim.source_system,
        payer_name=claim.payer.name,
        plan_type=claim.payer.plan_type,
        payer_contact_email=claim.payer.contact_email,
        provider_npi=claim.provider.npi,
        provider_tin=claim.provider.tin,
        provider_name=claim.provider.name,
        service_category=claim.service_category,
        state=claim.state,
        bill_sent_on=claim.bill_sent_on,
        initial_payment_received_on=claim.initial_payment_received_on,
        open_negotiation_started_on=claim.open_negotiation_started_on,
        lines=[
            ClaimLine(
                line_number=i + 1,
                service_code=line.service_code,
                code_system=line.code_system,
                service_date=line.service_date,
                billed=line.billed,
                paid=line.paid,
                qpa=line.qpa,
                cost_sharing=line.cost_sharing,
            )
            for i, line in enumerate(claim.lines)
        ],
    )


async def accept_claim(
    tenant_id: str, claim: ClaimIn, idempotency_key: str | None, engine: AsyncEngine | None = None
) -> Outcome:
    """Write the claim, its lines, the event record, the outbox row and the idempotency record in
    one transaction. A retry with the same key and body returns the first response; the same key
    with another body, or an event sequence already taken under another key, is a 409."""
    key = idempotency_key or derived_key(claim)
    digest = request_hash(claim)
    event_id = deterministic_event_id("intake", tenant_id, claim.claim_id, str(claim.event_sequence))
    accepted = ClaimAccepted(
        tenant_id=tenant_id,
        claim_id=claim.claim_id,
        event_sequence=claim.event_sequence,
        event_id=event_id,
        workflow_id=claim_workflow_id(tenant_id, claim.claim_id),
    )
    body = accepted.model_dump(mode="json")
    async with unit_of_work(engine) as session:
        # Claim the key first: a concurrent twin blocks here until the first transaction ends.
        inserted = (
            await session.execute(
                insert(idempotency_keys)
                .values(tenant_id=tenant_id, key=key, request_sha256=digest, status_code=202, response=body)
                .on_conflict_do_nothing()
                .returning(idempotency_keys.c.key)
            )
        ).first()
        if inserted is None:
            prior = (
                await session.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
                    )
                )
            ).one()
            if prior.request_sha256 != digest:
                raise Problem(
                    409,
                    "idempotency-key-reused",
                    "Idempotency key reused with a different body",
                    f"The key {key!r} was first used with a different request body.",
                    field="Idempotency-Key",
                )
            return Outcome(prior.status_code, dict(prior.response), replayed=True)

        taken = (
            await session.execute(
                insert(claim_events)
                .values(
                    tenant_id=tenant_id,
                    claim_id=claim.claim_id,
                    event_sequence=claim.event_sequence,
                    event_id=event_id,
                    idempotency_key=key,
                )
                .on_conflict_do_nothing()
                .returning(claim_events.c.event_id)
            )
        ).first()
        if taken is None:
            raise Problem(
                409,
                "event-sequence-taken",
                "This claim event was already accepted",
                f"Claim {claim.claim_id!r} already has event_sequence {claim.event_sequence} with different "
                "content; send a higher event_sequence for a correction.",
                field="event_sequence",
            )

        row = {
            "source_system": claim.source_system,
            "latest_event_sequence": claim.event_sequence,
            "payer_name": claim.payer.name,
            "plan_type": claim.payer.plan_type,
            "payer_contact_email": claim.payer.contact_email,
            "provider_npi": claim.provider.npi,
            "provider_tin": claim.provider.tin,
            "provider_name": claim.provider.name,
            "patient_name": claim.patient.name if claim.patient else None,
            "patient_member_id": claim.patient.member_id if claim.patient else None,
            "patient_date_of_birth": claim.patient.date_of_birth if claim.patient else None,
            "service_category": claim.service_category,
            "state": claim.state,
            "bill_sent_on": claim.bill_sent_on,
            "initial_payment_received_on": claim.initial_payment_received_on,
        }
        upsert = insert(claims).values(tenant_id=tenant_id, claim_id=claim.claim_id, **row)
        # an older event arriving late does not overwrite newer facts
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[claims.c.tenant_id, claims.c.claim_id],
                set_={**{k: upsert.excluded[k] for k in row}, "updated_at": upsert.excluded.created_at},
                where=claims.c.latest_event_sequence < upsert.excluded.latest_event_sequence,
            )
        )
        latest = (
            await session.execute(
                select(claims.c.latest_event_sequence).where(
                    claims.c.tenant_id == tenant_id, claims.c.claim_id == claim.claim_id
                )
            )
        ).scalar_one()
        if latest == claim.event_sequence:
            await session.execute(
                delete(claim_lines).where(
                    claim_lines.c.tenant_id == tenant_id, claim_lines.c.claim_id == claim.claim_id
                )
            )
            await session.execute(
                insert(claim_lines),
                [
                    {
                        "tenant_id": tenant_id,
                        "claim_id": claim.claim_id,
                        "line_number": i + 1,
                        "service_code": line.service_code,
                        "code_system": line.code_system,
                        "service_date": line.service_date,
                        "billed": line.billed,
                        "paid": line.paid,
                        "qpa": line.qpa,
                        "cost_sharing": line.cost_sharing,
                    }
                    for i, line in enumerate(claim.lines)
                ],
            )
        envelope = Envelope.wrap(
            to_event(claim), tenant_id=tenant_id, claim_id=claim.claim_id, event_id=event_id
        )
        await add_to_outbox(session, outbox, envelope)
    return Outcome(202, body, replayed=False)
