"""Reminders of a burst of claims do not all wake at the same second: each claim's reminders of a
deadline wake a stable amount (0 to ``reminder_spread_minutes``) before the reminder time, never after."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from services.dispute.activities import DisputeActivities
from services.dispute.clock import reminder_offset
from services.dispute.schemas import PlanRequest
from shared.rules.calendar import Overrides
from shared.settings import Settings
from tests.workflow.lifecycle_kit import CAL, NY

DEADLINE = "open_negotiation_initiation_deadline"


def plan(settings: Settings, claim_id: str, spread: bool = True) -> list[tuple[int, datetime]]:
    acts = DisputeActivities(engine=None, settings=settings, calendar=CAL)  # type: ignore[arg-type]
    req = PlanRequest(
        initial_payment_received_on=date(2026, 11, 2),
        tenant_id="t1",
        claim_id=claim_id,
        state="TX",
        remind=[DEADLINE],
        reminder_spread=spread,
    )
    return [
        (r.business_days_before, r.fire_at.astimezone(NY))
        for r in acts.compute_plan(req, Overrides()).reminders
    ]


def test_each_claim_wakes_before_the_reminder_time_never_after() -> None:
    settings = Settings(reminder_spread_minutes=30)
    fired = {f"C-{i}": plan(settings, f"C-{i}") for i in range(300)}
    offsets = set()
    for claim_id, reminders in fired.items():
        assert [n for n, _ in reminders] == [5, 2, 1, 0]
        times = {(f.hour, f.minute, f.second) for _, f in reminders}
        assert len(times) == 1  # the same moment of the day for each reminder of the deadline
        for _, f in reminders:
            nine = f.replace(hour=9, minute=0, second=0, microsecond=0)
            assert nine - timedelta(minutes=30) < f <= nine
        offsets.add(reminder_offset("t1", claim_id, DEADLINE, timedelta(minutes=30), time(9)))
    assert len(offsets) > 250  # spread over the window, not a few buckets
    assert plan(settings, "C-1") == fired["C-1"]  # stable: planned again, the same times


def test_no_spread_without_the_patch_or_with_a_zero_window() -> None:
    for settings, spread in ((Settings(), False), (Settings(reminder_spread_minutes=0), True)):
        for _, f in plan(settings, "C-1", spread):
            assert (f.hour, f.minute, f.second) == (9, 0, 0)


def test_the_spread_never_moves_a_reminder_to_the_day_before() -> None:
    assert reminder_offset("t1", "C-1", DEADLINE, timedelta(minutes=30), time(0, 10)) < timedelta(minutes=10)
    assert reminder_offset("t1", "C-1", DEADLINE, timedelta(minutes=30), time(0, 0)) == timedelta(0)
