"""The write side of the claim record against real PostgreSQL: a claim's rows as the workflow's
``record_claim`` writes them (one statement per table), a later write that moves a deadline and drops
a line, a stale retry that changes nothing, and the same write twice."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from deploy.migrate import upgrade
from deploy.servers import EmbeddedPostgres, free_port
from services.dispute.models import claim_actions, claim_deadlines, claim_lines, claim_transitions, claims
from services.dispute.record_writes import write_record
from services.dispute.schemas import (
    DeadlineView,
    LineRecord,
    NumberedAction,
    NumberedTransition,
    RecordRequest,
)
from tests.workflow.lifecycle_kit import facts

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
TENANT, CLAIM = "north", "CLM-77"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="idrflow-record-writes-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    try:
        url = pg.start()
        upgrade(url)
        yield url
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url)
    yield eng
    await eng.dispose()


def deadline(name: str, due_on: date) -> DeadlineView:
    return DeadlineView(
        name=name,
        due_on=due_on,
        due_at=datetime.combine(due_on, datetime.min.time(), UTC) + timedelta(hours=28, minutes=59),
        rule_id=f"R-{name}",
        rule_set="2026-11",
        explanation=f"{name} explained",
    )


def request(seq: int, stage: str, n_lines: int, deadlines: list[DeadlineView], **more: Any) -> RecordRequest:
    return RecordRequest(
        record_seq=seq,
        tenant_id=TENANT,
        claim_id=CLAIM,
        at=AT + timedelta(days=seq),
        stage=stage,
        final=False,
        facts=facts(CLAIM, date(2026, 11, 2), ["350.00"] * n_lines),
        dates={"initial_payment_received_on": date(2026, 11, 2)},
        deadlines=deadlines,
        next_deadline=deadlines[0] if deadlines else None,
        amount_owed=None,
        amount_received=Decimal(0),
        payment_escalations=0,
        dispute_number=None,
        idr_entity=None,
        lines=more.pop("lines", []),
        transitions=more.pop("transitions", []),
        actions=more.pop("actions", []),
        events=[],
    )


def transition(seq: int, stage: str, previous: str | None) -> NumberedTransition:
    return NumberedTransition(seq=seq, stage=stage, previous_stage=previous, at=AT, reason=f"to {stage}")


async def write(engine: AsyncEngine, req: RecordRequest) -> None:
    async with AsyncSession(engine) as session, session.begin():
        await write_record(session, req)


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:

        async def rows(stmt: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in (await conn.execute(stmt)).all()]

        c = claim_deadlines.c
        return {
            "claim": await rows(select(claims.c.record_seq, claims.c.stage, claims.c.next_deadline_name)),
            "lines": await rows(
                select(claim_lines.c.line_number, claim_lines.c.determined_amount).order_by(
                    claim_lines.c.line_number
                )
            ),
            "deadlines": await rows(
                select(c.name, c.due_on, c.superseded_at.is_(None), c.explanation).order_by(c.name, c.due_on)
            ),
            "transitions": await rows(select(claim_transitions.c.seq, claim_transitions.c.stage)),
            "actions": await rows(
                select(claim_actions.c.seq, claim_actions.c.action, claim_actions.c.outcome)
            ),
        }


async def test_a_claim_written_moved_retried_and_replayed(engine: AsyncEngine) -> None:
    ends = deadline("open_negotiation_period_ends", date(2026, 12, 15))
    opens = deadline("idr_initiation_window_opens", date(2026, 12, 16))
    closes = deadline("idr_initiation_deadline", date(2026, 12, 21))
    first = request(
        1,
        "open_negotiation_window",
        2,
        [ends, opens, closes],
        transitions=[transition(1, "received", None), transition(2, "open_negotiation_window", "received")],
        actions=[
            NumberedAction(seq=1, action="notice-sent", at=AT, actor="jane@billing.example", details={"a": 1})
        ],
    )
    await write(engine, first)
    after_first = await snapshot(engine)
    assert after_first["claim"] == [(1, "open_negotiation_window", "open_negotiation_period_ends")]
    assert after_first["lines"] == [(1, None), (2, None)]
    assert [(n, d, live) for n, d, live, _ in after_first["deadlines"]] == [
        ("idr_initiation_deadline", date(2026, 12, 21), True),
        ("idr_initiation_window_opens", date(2026, 12, 16), True),
        ("open_negotiation_period_ends", date(2026, 12, 15), True),
    ]
    assert after_first["transitions"] == [(1, "received"), (2, "open_negotiation_window")]
    assert after_first["actions"] == [(1, "notice-sent", "applied")]

    # a closure moves the period's end; the window's deadline is gone; line 2 was withdrawn, line 1 decided
    moved = deadline("open_negotiation_period_ends", date(2026, 12, 17))
    second = request(
        2,
        "idr_initiation_window",
        1,
        [moved, opens],
        lines=[LineRecord(line_number=1, determined_amount=Decimal("1500.00"), prevailing_party="provider")],
        transitions=[transition(3, "idr_initiation_window", "open_negotiation_window")],
        actions=[
            NumberedAction(seq=2, action="extension", at=AT, actor="ops", details={}, outcome="rejected"),
            NumberedAction(seq=3, action="correction", at=AT, actor="ops", details={"b": 2}),
        ],
    )
    await write(engine, second)
    after_second = await snapshot(engine)
    assert after_second["claim"] == [(2, "idr_initiation_window", "open_negotiation_period_ends")]
    assert after_second["lines"] == [(1, Decimal("1500.00"))]
    assert [(n, d, live) for n, d, live, _ in after_second["deadlines"]] == [
        ("idr_initiation_deadline", date(2026, 12, 21), False),  # superseded, kept on record
        ("idr_initiation_window_opens", date(2026, 12, 16), True),
        ("open_negotiation_period_ends", date(2026, 12, 15), False),
        ("open_negotiation_period_ends", date(2026, 12, 17), True),
    ]
    assert after_second["transitions"] == [*after_first["transitions"], (3, "idr_initiation_window")]
    assert after_second["actions"] == [
        (1, "notice-sent", "applied"),
        (2, "extension", "rejected"),
        (3, "correction", "applied"),
    ]

    # a retry of the first write arriving late changes nothing; the second written again changes nothing
    await write(engine, first)
    assert await snapshot(engine) == after_second
    await write(engine, second)
    assert await snapshot(engine) == after_second

    # a deadline planned again after it was superseded is in force again, with its new explanation
    back = deadline("idr_initiation_deadline", date(2026, 12, 21)).model_copy(update={"explanation": "again"})
    await write(engine, request(3, "idr_initiation_window", 1, [moved, opens, back]))
    again = {(n, d): (live, text) for n, d, live, text in (await snapshot(engine))["deadlines"]}
    assert again[("idr_initiation_deadline", date(2026, 12, 21))] == (True, "again")
