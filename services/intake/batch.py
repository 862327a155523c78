"""Accept many canonical claims in one transaction, with one statement per table.

The single-claim endpoint, ``POST /v1/claims:batch``, canonical JSON files and 837s all come here.
Per claim the rules are those of a single post: its idempotency key (given, or the natural key
``source_system:claim_id:event_sequence``) answers a retry with the first answer and refuses the key
with another body; an event sequence already taken under another key is refused; an older event
never overwrites newer facts. A claim that is refused does not fail the others: each gets its own
result (``accepted``, ``duplicate`` or ``rejected`` with the reason).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.models import claim_events, claim_lines, claims, idempotency_keys, outbox
from services.intake.schemas import ClaimAccepted, ClaimIn
from shared.db import unit_of_work
from shared.events import ClaimAdjudicated, ClaimLine, Envelope, deterministic_event_id, topic_for
from shared.kafka.outbox import with_trace_headers
from shared.temporal import claim_workflow_id

Result = Literal["accepted", "duplicate", "rejected"]


@dataclass
class ClaimResult:
    index: int
    claim_id: str
    event_sequence: int
    result: Result
    status_code: int  # what a single post would have answered: 202, 200 (replayed) or 409
    body: dict[str, Any] = field(default_factory=dict)  # ClaimAccepted, or the refusal
    problem: str | None = None  # idempotency-key-reused | event-sequence-taken
    reason: str | None = None


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


def _claim_row(tenant_id: str, claim: ClaimIn) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "claim_id": claim.claim_id,
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


def outbox_row(envelope: Envelope) -> dict[str, Any]:
    return {
        "event_id": envelope.event_id,
        "topic": topic_for(envelope.event_type),
        "message_key": f"{envelope.tenant_id}:{envelope.claim_id}",
        "event_type": envelope.event_type,
        "tenant_id": envelope.tenant_id,
        "envelope": with_trace_headers(envelope.model_dump(mode="json")),
    }


@dataclass
class _Item:
    index: int
    claim: ClaimIn
    key: str
    digest: str
    event_id: Any
    body: dict[str, Any]


def _refused(item: _Item, problem: str, reason: str) -> ClaimResult:
    return ClaimResult(
        item.index,
        item.claim.claim_id,
        item.claim.event_sequence,
        "rejected",
        409,
        problem=problem,
        reason=reason,
    )


KEY_REUSED = "idempotency-key-reused"
SEQUENCE_TAKEN = "event-sequence-taken"


def _sequence_taken(item: _Item) -> ClaimResult:
    return _refused(
        item,
        SEQUENCE_TAKEN,
        f"Claim {item.claim.claim_id!r} already has event_sequence {item.claim.event_sequence} with "
        "different content; send a higher event_sequence for a correction.",
    )


def _key_reused(item: _Item) -> ClaimResult:
    return _refused(item, KEY_REUSED, f"The key {item.key!r} was first used with a different request body.")


async def accept_many(
    tenant_id: str,
    batch: list[tuple[ClaimIn, str | None]],
    engine: AsyncEngine | None = None,
    session: AsyncSession | None = None,
) -> list[ClaimResult]:
    """Accept ``(claim, idempotency key or None)`` pairs durably; one result per pair, in order.
    With ``session`` the rows join the caller's transaction (a file and its claims commit together)."""
    if session is None:
        async with unit_of_work(engine) as own:
            return await _accept(own, tenant_id, batch)
    return await _accept(session, tenant_id, batch)


async def _accept(
    session: AsyncSession, tenant_id: str, batch: list[tuple[ClaimIn, str | None]]
) -> list[ClaimResult]:
    results: dict[int, ClaimResult] = {}
    items: list[_Item] = []
    first_by_key: dict[str, _Item] = {}
    first_by_sequence: dict[tuple[str, int], _Item] = {}
    for index, (claim, given) in enumerate(batch):
        key = given or derived_key(claim)
        event_id = deterministic_event_id("intake", tenant_id, claim.claim_id, str(claim.event_sequence))
        body = ClaimAccepted(
            tenant_id=tenant_id,
            claim_id=claim.claim_id,
            event_sequence=claim.event_sequence,
            event_id=event_id,
            workflow_id=claim_workflow_id(tenant_id, claim.claim_id),
        ).model_dump(mode="json")
        item = _Item(index, claim, key, request_hash(claim), event_id, body)
        twin = first_by_key.get(key)
        if twin is not None:  # the same key twice in one batch: answered like a retry
            results[index] = (
                ClaimResult(index, claim.claim_id, claim.event_sequence, "duplicate", 200, twin.body)
                if twin.digest == item.digest
                else _key_reused(item)
            )
            continue
        first_by_key[key] = item
        sequence = (claim.claim_id, claim.event_sequence)
        if sequence in first_by_sequence:
            results[index] = _sequence_taken(item)
            continue
        first_by_sequence[sequence] = item
        items.append(item)

    if items:
        await _write(session, tenant_id, items, results)
    return [results[i] for i in range(len(batch))]


async def _write(
    session: AsyncSession, tenant_id: str, items: list[_Item], results: dict[int, ClaimResult]
) -> None:
    # claim the keys first: a concurrent twin blocks here until this transaction ends
    new_keys = {
        r.key
        for r in (
            await session.execute(
                insert(idempotency_keys)
                .values(
                    [
                        {
                            "tenant_id": tenant_id,
                            "key": i.key,
                            "request_sha256": i.digest,
                            "status_code": 202,
                            "response": i.body,
                        }
                        for i in items
                    ]
                )
                .on_conflict_do_nothing()
                .returning(idempotency_keys.c.key)
            )
        ).all()
    }
    old = [i for i in items if i.key not in new_keys]
    if old:
        prior = {
            r.key: r
            for r in (
                await session.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.tenant_id == tenant_id,
                        idempotency_keys.c.key.in_([i.key for i in old]),
                    )
                )
            ).all()
        }
        for i in old:
            p = prior[i.key]
            results[i.index] = (
                ClaimResult(
                    i.index,
                    i.claim.claim_id,
                    i.claim.event_sequence,
                    "duplicate",
                    p.status_code,
                    dict(p.response),
                )
                if p.request_sha256 == i.digest
                else _key_reused(i)
            )
    fresh = [i for i in items if i.key in new_keys]
    if not fresh:
        return
    taken_ok = {
        r.event_id
        for r in (
            await session.execute(
                insert(claim_events)
                .values(
                    [
                        {
                            "tenant_id": tenant_id,
                            "claim_id": i.claim.claim_id,
                            "event_sequence": i.claim.event_sequence,
                            "event_id": i.event_id,
                            "idempotency_key": i.key,
                        }
                        for i in fresh
                    ]
                )
                .on_conflict_do_nothing()
                .returning(claim_events.c.event_id)
            )
        ).all()
    }
    refused = [i for i in fresh if i.event_id not in taken_ok]
    if refused:
        for i in refused:
            results[i.index] = _sequence_taken(i)
        await session.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.tenant_id == tenant_id,
                idempotency_keys.c.key.in_([i.key for i in refused]),
            )
        )
    accepted = [i for i in fresh if i.event_id in taken_ok]
    if not accepted:
        return
    for i in accepted:
        results[i.index] = ClaimResult(
            i.index, i.claim.claim_id, i.claim.event_sequence, "accepted", 202, i.body
        )

    # the claim rows: the newest event of each claim in this batch; an older event never wins
    newest: dict[str, _Item] = {}
    for i in accepted:
        if (
            i.claim.claim_id not in newest
            or i.claim.event_sequence > newest[i.claim.claim_id].claim.event_sequence
        ):
            newest[i.claim.claim_id] = i
    rows = [_claim_row(tenant_id, i.claim) for i in newest.values()]
    upsert = insert(claims).values(rows)
    updated = [k for k in rows[0] if k not in ("tenant_id", "claim_id")]
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[claims.c.tenant_id, claims.c.claim_id],
            set_={**{k: upsert.excluded[k] for k in updated}, "updated_at": upsert.excluded.created_at},
            where=claims.c.latest_event_sequence < upsert.excluded.latest_event_sequence,
        )
    )
    latest = {
        r.claim_id: r.latest_event_sequence
        for r in (
            await session.execute(
                select(claims.c.claim_id, claims.c.latest_event_sequence).where(
                    claims.c.tenant_id == tenant_id, claims.c.claim_id.in_(list(newest))
                )
            )
        ).all()
    }
    current = [i for i in newest.values() if latest.get(i.claim.claim_id) == i.claim.event_sequence]
    if current:
        await session.execute(
            delete(claim_lines).where(
                claim_lines.c.tenant_id == tenant_id,
                claim_lines.c.claim_id.in_([i.claim.claim_id for i in current]),
            )
        )
        await session.execute(
            insert(claim_lines),
            [
                {
                    "tenant_id": tenant_id,
                    "claim_id": i.claim.claim_id,
                    "line_number": n + 1,
                    "service_code": line.service_code,
                    "code_system": line.code_system,
                    "service_date": line.service_date,
                    "billed": line.billed,
                    "paid": line.paid,
                    "qpa": line.qpa,
                    "cost_sharing": line.cost_sharing,
                }
                for i in current
                for n, line in enumerate(i.claim.lines)
            ],
        )
    await session.execute(
        insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.event_id]),
        [
            outbox_row(
                Envelope.wrap(
                    to_event(i.claim), tenant_id=tenant_id, claim_id=i.claim.claim_id, event_id=i.event_id
                )
            )
            for i in accepted
        ],
    )
