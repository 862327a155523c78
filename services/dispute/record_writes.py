"""The write side of the claim record (schema ``dispute``): each change written with the outbox
rows that announce it, in the caller's transaction; a claim's late or refused events on its record."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Boolean, Table, and_, bindparam, delete, literal_column, select, update
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from services.dispute.models import (
    claim_actions,
    claim_alerts,
    claim_deadlines,
    claim_lines,
    claim_transitions,
    claims,
    outbox,
)
from services.dispute.schemas import RecordRequest
from shared.events import Envelope, topic_for
from shared.kafka.outbox import add_many_to_outbox
from shared.settings import get_settings


def _at_stake(req: RecordRequest, billed: Decimal, paid: Decimal) -> Decimal:
    """What the provider can still recover: the unpaid award, else what the plan did not pay."""
    if req.amount_owed is not None:
        return max(req.amount_owed - req.amount_received, Decimal(0))
    return max(billed - paid, Decimal(0))


def _upsert(table: Table, keys: tuple[str, ...]) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` every other column to the inserted value: made
    once, executed with one parameter set a row (one statement for all of a claim's rows)."""
    stmt = pg_insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys},
    )


@cache
def _upsert_claim(columns: tuple[str, ...]) -> ReturningInsert[tuple[bool]]:
    """The claim row's upsert: ``columns`` follow the newer write (``record_seq``), the key, workflow
    id and creation time stay; returns a row only when it wrote, with ``inserted`` true for a claim
    new to the record (PostgreSQL's ``xmax`` is 0 for a row this statement inserted)."""
    stmt = pg_insert(claims)
    return stmt.on_conflict_do_update(
        index_elements=[claims.c.tenant_id, claims.c.claim_id],
        set_={c: stmt.excluded[c] for c in columns},
        where=claims.c.record_seq < stmt.excluded.record_seq,
    ).returning(literal_column("xmax = 0", Boolean).label("inserted"))


_UPSERT_LINE = _upsert(claim_lines, ("tenant_id", "claim_id", "line_number"))
_UPSERT_DEADLINE = _upsert(claim_deadlines, ("tenant_id", "claim_id", "name", "due_on"))
_INSERT_TRANSITION = pg_insert(claim_transitions).on_conflict_do_nothing()
_INSERT_ACTION = pg_insert(claim_actions).on_conflict_do_nothing()
_SUPERSEDE_DEADLINE = (
    update(claim_deadlines)
    .where(
        claim_deadlines.c.tenant_id == bindparam("b_tenant"),
        claim_deadlines.c.claim_id == bindparam("b_claim"),
        claim_deadlines.c.name == bindparam("b_name"),
        claim_deadlines.c.due_on == bindparam("b_due_on"),
    )
    .values(superseded_at=bindparam("b_at"))
)


async def write_record(session: AsyncSession, req: RecordRequest) -> int:
    """Write one change of a claim's record and stage its events, in the caller's transaction.
    Idempotent: rows carry natural keys, and the claim row only moves forward (``record_seq``)."""
    facts = req.facts
    lines = facts.lines if facts else []
    billed = sum((line.billed for line in lines), Decimal(0))
    paid = sum((line.paid for line in lines), Decimal(0))
    nxt = req.next_deadline
    row: dict[str, Any] = {
        "record_seq": req.record_seq,
        "stage": req.stage,
        "final": req.final,
        "payer_name": facts.payer_name if facts else None,
        "plan_type": facts.plan_type if facts else None,
        "provider_npi": facts.provider_npi if facts else None,
        "provider_tin": facts.provider_tin if facts else None,
        "state": facts.state if facts else None,
        "service_category": facts.service_category if facts else None,
        "service_codes": sorted({line.service_code for line in lines}),
        "event_sequence": facts.event_sequence if facts else None,
        "next_deadline_name": nxt.name if nxt and not req.final else None,
        "next_deadline_on": nxt.due_on if nxt and not req.final else None,
        "next_deadline_at": nxt.due_at if nxt and not req.final else None,
        "amount_billed": billed,
        "amount_initially_paid": paid,
        "amount_owed": req.amount_owed,
        "amount_received": req.amount_received,
        "amount_at_stake": _at_stake(req, billed, paid),
        "dispute_number": req.dispute_number,
        "idr_entity": req.idr_entity,
        "payment_escalations": req.payment_escalations,
        "refund_owed": req.refund_owed,
        "refund_sent": req.refund_sent,
        "dates": {k: v.isoformat() for k, v in req.dates.items()},
        "facts": facts.model_dump(mode="json") if facts else None,
        "updated_at": req.at,
        "closed_at": req.at if req.final else None,
    }
    written = (
        await session.execute(
            _upsert_claim(tuple(row)),
            {
                "tenant_id": req.tenant_id,
                "claim_id": req.claim_id,
                "workflow_id": f"claim:{req.tenant_id}:{req.claim_id}",
                "created_at": req.at,
                **row,
            },
        )
    ).first()
    key = {"tenant_id": req.tenant_id, "claim_id": req.claim_id}
    if written is not None:  # the newest write: lines and deadlines in force follow it
        by_number = {x.line_number: x for x in req.lines}
        line_rows = []
        for line in lines:
            extra = by_number.get(line.line_number)
            line_rows.append(
                {
                    **key,
                    "line_number": line.line_number,
                    "service_code": line.service_code,
                    "code_system": line.code_system,
                    "service_date": line.service_date,
                    "billed": line.billed,
                    "paid": line.paid,
                    "qpa": line.qpa,
                    "cost_sharing": line.cost_sharing,
                    "provider_offer": extra.provider_offer if extra else None,
                    "payer_offer": extra.payer_offer if extra else None,
                    "determined_amount": extra.determined_amount if extra else None,
                    "prevailing_party": extra.prevailing_party if extra else None,
                }
            )
        if line_rows:
            await session.execute(_UPSERT_LINE, line_rows)
        if not written.inserted:  # a claim new to the record has no lines or deadlines before these
            await session.execute(
                delete(claim_lines).where(
                    claim_lines.c.tenant_id == req.tenant_id,
                    claim_lines.c.claim_id == req.claim_id,
                    claim_lines.c.line_number.not_in([line.line_number for line in lines] or [-1]),
                )
            )
        await _write_deadlines(session, req, first=written.inserted)
    if req.transitions:
        await session.execute(
            _INSERT_TRANSITION,
            [
                {
                    **key,
                    "seq": t.seq,
                    "stage": t.stage,
                    "previous_stage": t.previous_stage,
                    "at": t.at,
                    "reason": t.reason,
                    "actor": t.by,
                    "changes": t.changes,
                }
                for t in req.transitions
            ],
        )
    if req.actions:
        await session.execute(
            _INSERT_ACTION,
            [
                {
                    **key,
                    "seq": a.seq,
                    "action": a.action,
                    "at": a.at,
                    "actor": a.actor,
                    "outcome": a.outcome,
                    "idempotency_key": a.idempotency_key,
                    "details": a.details,
                }
                for a in req.actions
            ],
        )
    alerts_topic = get_settings().topic_alerts
    envelopes = []
    for e in req.events:
        envelope = Envelope(
            event_id=e.event_id,
            event_type=e.event_type,
            schema_version=1,
            occurred_at=e.occurred_at,
            tenant_id=e.tenant_id,
            claim_id=e.claim_id,
            payload=e.payload,
        )
        envelope.parse_payload()  # refuse a payload that does not match its event model
        envelopes.append(envelope)
        if topic_for(e.event_type) == alerts_topic:
            kind = "correction-rejected" if e.event_type == "ClaimCorrectionRejected" else e.event_type
            await write_alert(session, envelope, kind=kind, summary=str(e.payload.get("reason", "")))
    await add_many_to_outbox(session, outbox, envelopes)
    return req.record_seq


async def _write_deadlines(session: AsyncSession, req: RecordRequest, *, first: bool) -> None:
    """Every deadline planned stays on record; the ones no longer in force are marked superseded
    (``first``: the claim is new to the record, nothing is in force yet)."""
    table = claim_deadlines
    mine = and_(table.c.tenant_id == req.tenant_id, table.c.claim_id == req.claim_id)
    current = {(d.name, d.due_on) for d in req.deadlines}
    in_force = (
        []
        if first
        else (
            await session.execute(
                select(table.c.name, table.c.due_on).where(mine, table.c.superseded_at.is_(None))
            )
        ).all()
    )
    stale = [(r.name, r.due_on) for r in in_force if (r.name, r.due_on) not in current]
    if stale:
        await session.execute(
            _SUPERSEDE_DEADLINE,
            [
                {
                    "b_tenant": req.tenant_id,
                    "b_claim": req.claim_id,
                    "b_name": n,
                    "b_due_on": d,
                    "b_at": req.at,
                }
                for n, d in stale
            ],
        )
    known = {(r.name, r.due_on) for r in in_force}
    planned = [
        {
            "tenant_id": req.tenant_id,
            "claim_id": req.claim_id,
            "name": d.name,
            "due_on": d.due_on,
            "due_at": d.due_at,
            "rule_id": d.rule_id,
            "rule_set": d.rule_set,
            "explanation": d.explanation,
            "planned_at": req.at,
            "superseded_at": None,
        }
        for d in req.deadlines
        if (d.name, d.due_on) not in known
    ]
    if planned:
        await session.execute(_UPSERT_DEADLINE, planned)


async def write_alert(
    session: AsyncSession,
    envelope: Envelope,
    *,
    kind: str,
    summary: str,
    deadline_name: str | None = None,
    due_on: Any = None,
) -> None:
    """The alert on the claim's record, with the outbox row that sends it (the caller's transaction)."""
    await session.execute(
        pg_insert(claim_alerts)
        .values(
            event_id=envelope.event_id,
            tenant_id=envelope.tenant_id,
            claim_id=envelope.claim_id,
            event_type=envelope.event_type,
            kind=kind,
            deadline_name=deadline_name,
            due_on=due_on,
            at=envelope.occurred_at,
            summary=summary,
        )
        .on_conflict_do_nothing()
    )


async def claim_recorded(session: AsyncSession, tenant_id: str, claim_id: str) -> str | None:
    """``final`` when the claim's lifecycle has ended, ``open`` while it runs, None when unknown."""
    final = (
        await session.execute(
            select(claims.c.final).where(claims.c.tenant_id == tenant_id, claims.c.claim_id == claim_id)
        )
    ).scalar_one_or_none()
    return None if final is None else "final" if final else "open"


async def record_late_event(session: AsyncSession, env: Envelope, event_sequence: int, reason: str) -> None:
    """A claim event that cannot be applied (the lifecycle ended): on the claim's record."""
    details = {"event_id": str(env.event_id), "event_sequence": event_sequence, "reason": reason}
    await _record_refusal(session, env, "claim_event_after_close", f"claim event {event_sequence}", details)


async def record_refused_payment(
    session: AsyncSession, env: Envelope, action: dict[str, Any], reason: str
) -> None:
    """A matched remittance's payment the claim could not take now: on its record, for a person."""
    details = {"event_id": str(env.event_id), **action, "reason": reason}
    await _record_refusal(session, env, "payment_received", str(action.get("actor", "remittance")), details)


async def _record_refusal(
    session: AsyncSession, env: Envelope, action: str, actor: str, details: dict[str, Any]
) -> None:
    from sqlalchemy import func

    mine = and_(claim_actions.c.tenant_id == env.tenant_id, claim_actions.c.claim_id == env.claim_id)
    seq = (
        await session.execute(select(func.coalesce(func.max(claim_actions.c.seq), 0)).where(mine))
    ).scalar_one()
    await session.execute(
        pg_insert(claim_actions)
        .values(
            tenant_id=env.tenant_id,
            claim_id=env.claim_id,
            seq=int(seq) + 1,
            action=action,
            at=env.occurred_at,
            actor=actor,
            outcome="rejected",
            idempotency_key=str(env.event_id),
            details=details,
        )
        .on_conflict_do_nothing()
    )
