"""The one cooling-off window function (audit 2026-11 rows 3, 9, 10)."""

from __future__ import annotations

from datetime import date, timedelta

from shared.rules.calendar import federal_calendar
from shared.rules.cooling_off import barred_on, initiation_window

CAL = federal_calendar()


def test_row_3_cooling_off_ending_before_open_negotiation_ends_keeps_business_days_31_to_34() -> None:
    # audit row 3: ON 2025-05-01, prior determination 2025-01-31, cooling-off ends 2025-05-01
    period_end = CAL.business_day_beginning(date(2025, 5, 1), 30)
    assert initiation_window(period_end, date(2025, 1, 31), date(2025, 5, 1)) == "normal"


def test_row_9_open_negotiation_ending_on_the_last_cooling_off_day_gets_the_30_day_window() -> None:
    ends = date(2025, 6, 12)
    assert initiation_window(ends, ends - timedelta(days=90), ends) == "post_cooling_off"
    # ... and one that ended the day before the determination does not
    assert initiation_window(date(2025, 3, 2), date(2025, 3, 3), date(2025, 6, 1)) == "normal"


def test_row_10_only_the_party_that_initiated_the_prior_dispute_is_barred() -> None:
    assert initiation_window(date(2025, 4, 1), date(2025, 3, 3), date(2025, 6, 1)) == "post_cooling_off"
    assert (
        initiation_window(date(2025, 4, 1), date(2025, 3, 3), date(2025, 6, 1), prior_initiated_by_us=False)
        == "normal"
    )
    assert barred_on(date(2025, 4, 29), date(2025, 3, 3), date(2025, 6, 1))
    assert not barred_on(date(2025, 4, 29), date(2025, 3, 3), date(2025, 6, 1), prior_initiated_by_us=False)
    assert not barred_on(date(2025, 3, 3), date(2025, 3, 3), date(2025, 6, 1))  # the day itself is not in it


def test_an_extension_never_lengthens_the_cooling_off_bar() -> None:
    """review of audit row 6-style extensions: a blanket extension gives parties time; it must not
    move the end of a cooling-off (which would bar initiation longer)."""
    from shared.rules.calendar import Extension, Overrides
    from shared.rules.deadlines import Triggers, compute_schedule

    ext = Extension(start=date(2026, 4, 1), end=date(2026, 4, 30), moves_to=date(2026, 5, 29), name="outage")
    plain = compute_schedule(Triggers(determination_on=date(2026, 1, 15))).deadlines
    moved = compute_schedule(
        Triggers(determination_on=date(2026, 1, 15)), overrides=Overrides(extensions=(ext,))
    )
    assert moved.deadlines["cooling_off_ends"].due_on == plain["cooling_off_ends"].due_on == date(2026, 4, 15)
