"""ClaimLifecycleWorkflow on the time-skipping test server: a 30-business-day clock in milliseconds.

The deadline planner is the real one (pure calendar code); the outbox-writing activities are
replaced by functions registered under the same names that record what they were asked to emit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from services.dispute.clock import reminder_offset
from services.dispute.schemas import ClaimEventSignal, ClaimLifecycleInput
from services.dispute.workflows import ClaimLifecycleWorkflow
from shared.events import ClaimAdjudicated
from tests.workflow.lifecycle_kit import CAL, NY, QUEUE, Recorder, workers
from tests.workflow.lifecycle_kit import facts as kit_facts


def facts(claim_id: str, received: date, sequence: int = 1) -> ClaimAdjudicated:
    return kit_facts(claim_id, received, ["350.00"], sequence)


async def start(
    client: Client, claim_id: str, f: ClaimAdjudicated
) -> WorkflowHandle[ClaimLifecycleWorkflow, str]:
    return await client.start_workflow(
        ClaimLifecycleWorkflow.run,
        ClaimLifecycleInput(tenant_id="t1", claim_id=claim_id),
        id=f"claim:t1:{claim_id}",
        task_queue=QUEUE,
        start_signal="claim_event",
        start_signal_args=[ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=f)],
    )


def next_business_day(env_now: datetime) -> date:
    return CAL.business_days_after(env_now.astimezone(NY).date(), 1)


async def test_crosses_the_30_business_day_deadline_and_sees_every_reminder(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    received = next_business_day(await env.get_current_time())
    handle = await start(env.client, "C-1", facts("C-1", received))
    result = await handle.result()  # time skips through six weeks of timers
    status = await handle.query(ClaimLifecycleWorkflow.status)

    due = CAL.business_day_beginning(received, 30)
    assert result == "forfeited"
    reminders = [a for a in rec.alerts if not a.missed]
    assert [a.deadline.due_on for a in reminders] == [due] * 4
    # each reminder fired on its business day, at 09:00 New York time less this claim's spread (up to
    # 30 minutes before, never after; the same for each reminder of the deadline), with the right days left
    fired_local = [a.as_of.astimezone(NY) for a in rec.alerts if not a.missed]
    expected_days = [CAL.business_days_after(due, -n) for n in (5, 2, 1)] + [due]
    assert [f.date() for f in fired_local] == expected_days
    spread = reminder_offset(
        "t1", "C-1", "open_negotiation_initiation_deadline", timedelta(minutes=30), time(9)
    )
    assert timedelta(0) <= spread < timedelta(minutes=30)
    assert all(
        f.replace(microsecond=0) == datetime.combine(f.date(), time(9), tzinfo=NY) - spread
        for f in fired_local
    )
    assert [CAL.business_days_between(f.date(), due) for f in fired_local] == [5, 2, 1, 0]
    # then the cut-off passed: one DeadlineMissed, after 23:59:59 on the due date
    missed = [a for a in rec.alerts if a.missed]
    assert len(missed) == 1 and missed[0].as_of.astimezone(NY).date() == due + timedelta(days=1)
    # distinct, deterministic event ids
    assert len({a.event_id for a in rec.alerts}) == 5
    # forfeited at the cut-off, then final once the grace period passed with no extension
    assert [t.stage for t in status.transitions] == ["open_negotiation_window", "forfeited", "forfeited"]
    assert "final" in status.transitions[-1].reason and status.final
    assert [e.payload["stage"] for e in rec.events] == ["open_negotiation_window", "forfeited", "forfeited"]
    assert [r.business_days_before for r in status.reminders_sent] == [5, 2, 1, 0]
    assert rec.plans[0].tenant_id == "t1" and rec.plans[0].state == "TX"  # overrides are the tenant's


async def test_a_late_claim_gets_one_alert_now_not_a_burst(env: WorkflowEnvironment, rec: Recorder) -> None:
    now = await env.get_current_time()
    today = now.astimezone(NY).date()
    # received long enough ago that the deadline is 3 business days away
    received = today
    while CAL.business_days_between(today, CAL.business_day_beginning(received, 30)) > 3:
        received -= timedelta(days=1)
    due = CAL.business_day_beginning(received, 30)
    handle = await start(env.client, "C-2", facts("C-2", received))
    await handle.result()
    first = rec.alerts[0]
    assert first.deadline.due_on == due and not first.missed
    assert (rec.alerts[0].as_of - now) < timedelta(minutes=1), "the overdue reminder is sent at once"
    sent = [a for a in rec.alerts if not a.missed]
    assert len(sent) <= 4 and len({a.event_id for a in sent}) == len(sent)


async def test_a_newer_claim_event_replans_the_clock_and_a_repeat_is_ignored(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    received = next_business_day(await env.get_current_time())
    corrected = CAL.business_days_after(received, 10)
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
    assert {a.deadline.due_on for a in rec.alerts} == {due}


async def _arrives_at_7_with_a_reminder_due_today(
    env: WorkflowEnvironment, rec: Recorder
) -> tuple[date, datetime]:
    """A claim that arrives at 07:00 New York on a business day whose 2-days-before reminder is due
    at 09:00 (less its spread); its 5-days-before reminder was due days ago. Returns (that day, the
    arrival instant); the claim runs to its end."""
    now = await env.get_current_time()
    today = next_business_day(now)
    arrival = datetime.combine(today, time(7), tzinfo=NY)
    await env.sleep(arrival - now)
    received = today
    while CAL.business_days_between(today, CAL.business_day_beginning(received, 30)) > 2:
        received -= timedelta(days=1)
    assert CAL.business_days_between(today, CAL.business_day_beginning(received, 30)) == 2
    handle = await start(env.client, "C-7", facts("C-7", received))
    await handle.result()
    return today, arrival


async def test_a_late_claim_whose_next_reminder_is_due_later_that_day_gets_only_that_reminder(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    today, _ = await _arrives_at_7_with_a_reminder_due_today(env, rec)
    on_the_day = [a for a in rec.alerts if a.as_of.astimezone(NY).date() == today]
    assert [a.kind for a in on_the_day] == ["reminder-2"]  # no catch-up at 07:00 reading the same
    assert time(8, 30) <= on_the_day[0].as_of.astimezone(NY).time() <= time(9)
    assert [a.kind for a in rec.alerts if not a.missed] == ["reminder-2", "reminder-1", "reminder-0"]


async def test_the_previous_release_sent_the_same_day_catch_up(env: WorkflowEnvironment) -> None:
    """Claims started before the change keep what their history recorded (workflow.patched)."""
    rec = Recorder()
    async with workers(env, rec, patches=False):
        today, arrival = await _arrives_at_7_with_a_reminder_due_today(env, rec)
    on_the_day = [a for a in rec.alerts if a.as_of.astimezone(NY).date() == today]
    assert [a.kind for a in on_the_day] == ["reminder-5", "reminder-2"]
    assert on_the_day[0].as_of - arrival < timedelta(minutes=1)


def test_a_catch_up_is_kept_when_the_later_reminder_is_not_a_near_repeat() -> None:
    """Kept when the day's reminder fires after the deadline's cut-off, more than 12 hours later, or on
    another day (these cases decide without consulting the workflow's patch)."""
    from services.dispute.clock import ClaimClock
    from services.dispute.schemas import ReminderPlan

    now = datetime(2026, 12, 3, 5, 30, tzinfo=UTC)  # 00:30 New York

    def at(hours: float) -> ReminderPlan:
        return ReminderPlan(deadline="d", business_days_before=0, fire_at=now + timedelta(hours=hours))

    later_today = ClaimClock._reminder_later_today
    assert not later_today([at(8)], now, due_at=now + timedelta(hours=7))  # after the cut-off
    assert not later_today([at(13)], now, due_at=now + timedelta(hours=20))  # 13 hours on
    assert not later_today([at(24)], now, due_at=now + timedelta(hours=30))  # tomorrow
    assert not later_today([at(-1)], now, due_at=now + timedelta(hours=30))  # already due
