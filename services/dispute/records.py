"""The read side of the claim record (schema ``dispute``): one claim's status, the worklist, the audit
timeline and the CSV export. Every query filters on the tenant; a claim of another tenant does not
exist here. The lifecycle workflow's ``record_claim`` activity writes these tables."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.dispute.filters import ClaimFilters, decode_cursor, encode_cursor
from services.dispute.models import (
    claim_actions,
    claim_alerts,
    claim_deadlines,
    claim_lines,
    claim_transitions,
    claims,
)
from services.dispute.schemas import (
    ActionRecord,
    ClaimPage,
    ClaimStatus,
    ClaimSummary,
    DeadlineView,
    SentReminder,
    TimelineEntry,
    Transition,
)
from shared.events import ClaimAdjudicated

c = claims.c
_REMINDER = re.compile(r"^reminder-(\d+)$")


# -- one claim ----------------------------------------------------------------------------------
def _deadline(r: Row[Any]) -> DeadlineView:
    return DeadlineView(
        name=r.name,
        due_on=r.due_on,
        due_at=r.due_at,
        rule_id=r.rule_id,
        rule_set=r.rule_set,
        explanation=r.explanation,
    )


def _key(table: Any, tenant_id: str, claim_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return table.c.tenant_id == tenant_id, table.c.claim_id == claim_id


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose queries all see one snapshot (the record is written by another
    transaction at any time; each of a claim's tables must agree with the others)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        yield conn


async def _claim_row(conn: AsyncConnection, tenant_id: str, claim_id: str) -> Row[Any] | None:
    return (await conn.execute(select(claims).where(*_key(claims, tenant_id, claim_id)))).first()


async def claim_record(engine: AsyncEngine, tenant_id: str, claim_id: str) -> ClaimStatus | None:
    """The claim's status from its record, or None when this tenant has no such claim."""
    async with _snapshot(engine) as conn:
        row = await _claim_row(conn, tenant_id, claim_id)
        if row is None:
            return None
        in_force = await conn.execute(
            select(claim_deadlines)
            .where(*_key(claim_deadlines, tenant_id, claim_id), claim_deadlines.c.superseded_at.is_(None))
            .order_by(claim_deadlines.c.due_at, claim_deadlines.c.planned_at)
        )
        transitions = await conn.execute(
            select(claim_transitions)
            .where(*_key(claim_transitions, tenant_id, claim_id))
            .order_by(claim_transitions.c.seq)
        )
        actions = await conn.execute(
            select(claim_actions)
            .where(*_key(claim_actions, tenant_id, claim_id))
            .order_by(claim_actions.c.seq)
        )
        reminders = await conn.execute(
            select(claim_alerts)
            .where(*_key(claim_alerts, tenant_id, claim_id), claim_alerts.c.kind.like("reminder-%"))
            .order_by(claim_alerts.c.at, claim_alerts.c.event_id)
        )
    deadlines = {d.name: _deadline(d) for d in in_force}  # a later plan of the same name wins
    sent = [
        SentReminder(
            deadline=a.deadline_name or "",
            due_on=a.due_on,
            business_days_before=int(m.group(1)),
            sent_at=a.at,
            event_id=a.event_id,
        )
        for a in reminders
        if (m := _REMINDER.match(a.kind))
    ]
    return ClaimStatus(
        tenant_id=row.tenant_id,
        claim_id=row.claim_id,
        workflow_id=row.workflow_id,
        stage=row.stage,
        payer_name=row.payer_name,
        event_sequence=row.event_sequence,
        deadlines=deadlines,
        next_deadline=deadlines.get(row.next_deadline_name) if row.next_deadline_name else None,
        reminders_sent=sent,
        transitions=[
            Transition(
                stage=t.stage,
                at=t.at,
                reason=t.reason,
                by=t.actor,
                previous_stage=t.previous_stage,
                changes=t.changes,
            )
            for t in transitions
        ],
        actions=[
            ActionRecord(
                action=a.action,
                at=a.at,
                actor=a.actor,
                details=a.details,
                outcome=a.outcome,
                idempotency_key=a.idempotency_key,
            )
            for a in actions
        ],
        dates=row.dates,
        dispute_number=row.dispute_number,
        idr_entity=row.idr_entity,
        amount_owed=row.amount_owed,
        amount_received=row.amount_received,
        payment_escalations=row.payment_escalations,
        refund_owed=row.refund_owed,
        refund_sent=row.refund_sent,
        facts=ClaimAdjudicated.model_validate(row.facts) if row.facts is not None else None,
        final=row.final,
        closed_at=row.closed_at,
        amount_at_stake=row.amount_at_stake,
        updated_at=row.updated_at,
    )


# -- the worklist -------------------------------------------------------------------------------
_SUMMARY_FIELDS = tuple(ClaimSummary.model_fields)
SUMMARY = [getattr(c, name) for name in _SUMMARY_FIELDS]


def worklist_queries(
    tenant_id: str, filters: ClaimFilters, limit: int, cursor: str | None
) -> list[Select[tuple[Any, ...]]]:
    """The queries of one page, run in order until ``limit`` rows: open claims by urgency, next
    deadline first, claims without one last, then by claim id. After a dated row: the dated rows
    after it (a row comparison that bounds the urgency index), then, only for the page that reaches
    them, the undated rows. After an undated row: the undated rows after it."""
    base = select(*SUMMARY).where(*filters.where(tenant_id))
    urgency = (c.next_deadline_at.asc().nulls_last(), c.claim_id.asc())
    if cursor is None:
        return [base.order_by(*urgency).limit(limit)]
    at, claim_id = decode_cursor(cursor)
    undated = base.where(c.next_deadline_at.is_(None)).order_by(*urgency).limit(limit)
    if at is None:
        return [undated.where(c.claim_id > claim_id)]
    dated = base.where(tuple_(c.next_deadline_at, c.claim_id) > tuple_(at, claim_id))
    return [dated.order_by(*urgency).limit(limit), undated]


async def worklist(
    engine: AsyncEngine,
    tenant_id: str,
    filters: ClaimFilters | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> ClaimPage:
    """A page of the tenant's claims, most urgent first. Raises :class:`BadCursor`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    queries = worklist_queries(tenant_id, filters or ClaimFilters(), limit + 1, cursor)
    rows: list[Row[Any]] = []
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")  # reads only: no BEGIN/ROLLBACK
        for query in queries:
            rows += (await conn.execute(query)).all()
            if len(rows) > limit:
                break
    items = [ClaimSummary.model_validate(dict(zip(_SUMMARY_FIELDS, r, strict=True))) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return ClaimPage(
        items=items, next_cursor=encode_cursor(last.next_deadline_at, last.claim_id) if last else None
    )


# -- the audit timeline -------------------------------------------------------------------------
_ORDER = {"action": 0, "action_rejected": 0, "transition": 1, "deadline_superseded": 2, "deadline_planned": 3}
_ALERT = 4  # alerts come last at an instant; their entries carry the alert's kind (reminder-5, missed, ...)


def _transition_entries(t: Row[Any]) -> list[TimelineEntry]:
    moved = f"{t.previous_stage} -> {t.stage}" if t.previous_stage else t.stage
    details = {"seq": t.seq, "stage": t.stage, "previous_stage": t.previous_stage, "changes": t.changes}
    return [
        TimelineEntry(
            at=t.at, kind="transition", summary=f"{moved}: {t.reason}", actor=t.actor, details=details
        )
    ]


def _action_entries(a: Row[Any]) -> list[TimelineEntry]:
    kind = "action_rejected" if a.outcome == "rejected" else "action"
    details = {"seq": a.seq, "outcome": a.outcome, "idempotency_key": a.idempotency_key, "body": a.details}
    summary = f"{a.action} ({a.outcome})"
    return [TimelineEntry(at=a.at, kind=kind, summary=summary, actor=a.actor, details=details)]


def _deadline_entries(d: Row[Any]) -> list[TimelineEntry]:
    details = _deadline(d).model_dump(mode="json")
    summary = f"{d.name} due {d.due_on.isoformat()} ({d.rule_id})"
    out = [TimelineEntry(at=d.planned_at, kind="deadline_planned", summary=summary, details=details)]
    if d.superseded_at is not None:
        superseded = f"superseded: {summary}"
        out.append(
            TimelineEntry(at=d.superseded_at, kind="deadline_superseded", summary=superseded, details=details)
        )
    return out


def _alert_entries(a: Row[Any]) -> list[TimelineEntry]:
    due_on = a.due_on.isoformat() if a.due_on else None
    details = {"event_id": str(a.event_id), "event_type": a.event_type, "kind": a.kind, "due_on": due_on}
    details["deadline_name"] = a.deadline_name
    return [TimelineEntry(at=a.at, kind=a.kind, summary=a.summary, details=details)]


_SOURCES = (
    (claim_transitions, _transition_entries),
    (claim_actions, _action_entries),
    (claim_deadlines, _deadline_entries),
    (claim_alerts, _alert_entries),
)


async def audit_timeline(engine: AsyncEngine, tenant_id: str, claim_id: str) -> list[TimelineEntry] | None:
    """Transitions, actions (rejected ones too), deadlines planned and superseded, and alerts, in
    time order (at the same instant: the action, the transition it caused, the deadlines replanned,
    then alerts). None when this tenant has no such claim."""
    keyed: list[tuple[datetime, int, int, str, TimelineEntry]] = []
    async with _snapshot(engine) as conn:
        row = await _claim_row(conn, tenant_id, claim_id)
        if row is None:
            return None
        for table, entries_of in _SOURCES:
            for r in await conn.execute(select(table).where(*_key(table, tenant_id, claim_id))):
                seq = getattr(r, "seq", 0)
                keyed += [(e.at, _ORDER.get(e.kind, _ALERT), seq, e.summary, e) for e in entries_of(r)]
    keyed.sort(key=lambda k: k[:4])
    return [k[4] for k in keyed]


# -- the CSV export -----------------------------------------------------------------------------
EXPORT_COLUMNS = (
    "claim_id", "dispute_number", "stage", "payer_name", "provider_npi", "provider_tin", "state",
    "line_number", "service_code", "service_date", "billed", "initially_paid", "qpa",
    "open_negotiation_started_on", "idr_initiated_on", "idre_selected_on", "idr_entity",
    "provider_offer", "payer_offer", "determination_on", "prevailing_party", "determined_amount",
    "amount_owed", "amount_received", "next_deadline_name", "next_deadline_on",
)  # fmt: skip
_DATES = ("open_negotiation_started_on", "idr_initiated_on", "idre_selected_on", "determination_on")
_CLAIM = (
    "claim_id", "dispute_number", "stage", "payer_name", "provider_npi", "provider_tin", "state",
    "idr_entity", "dates", "amount_owed", "amount_received", "next_deadline_name", "next_deadline_on",
)  # fmt: skip
_LINE = (
    "line_number", "service_code", "service_date", "billed", "paid", "qpa", "provider_offer",
    "payer_offer", "determined_amount", "prevailing_party",
)  # fmt: skip
_SELECTED = (*_CLAIM, *_LINE)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """Money as a plain decimal string, dates ISO, text with a leading formula character defused."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA) else text


def export_query(tenant_id: str, filters: ClaimFilters) -> Select[tuple[Any, ...]]:
    lines = claim_lines.c
    on = (lines.tenant_id == c.tenant_id) & (lines.claim_id == c.claim_id)
    columns = [getattr(c, n) for n in _CLAIM] + [getattr(lines, n) for n in _LINE]  # _SELECTED
    return (
        select(*columns)
        .select_from(claims.outerjoin(claim_lines, on))
        .where(*filters.where(tenant_id))
        .order_by(c.claim_id, lines.line_number)
    )


async def export_rows(
    engine: AsyncEngine, tenant_id: str, filters: ClaimFilters | None = None
) -> AsyncIterator[list[str]]:
    """One row of :data:`EXPORT_COLUMNS` per claim and line (a claim without lines: one row with
    empty line columns), streamed from a server-side cursor."""
    stmt = export_query(tenant_id, filters or ClaimFilters()).execution_options(yield_per=2000)
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for r in result:
            values: dict[str, Any] = dict(zip(_SELECTED, r, strict=True))
            dates: dict[str, Any] = values.pop("dates") or {}
            values |= {name: dates.get(name) for name in _DATES}
            values["initially_paid"] = values.pop("paid")
            yield [_cell(values[name]) for name in EXPORT_COLUMNS]


async def export_csv(
    engine: AsyncEngine, tenant_id: str, filters: ClaimFilters | None = None, chunk_rows: int = 500
) -> AsyncIterator[str]:
    """The export as CSV text (header first), in chunks of ``chunk_rows`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    async for row in export_rows(engine, tenant_id, filters):
        writer.writerow(row)
        count += 1
        if count % chunk_rows == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
