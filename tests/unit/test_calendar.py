from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rules.calendar import (
    BusinessCalendar,
    Closure,
    OutsideCalendarError,
    federal_calendar,
    new_york_date,
)
from shared.rules.deadlines import cutoff_utc, open_negotiation_initiation_deadline, reminder_schedule

CAL = federal_calendar()


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _observed(d: date) -> date:
    return d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1) if d.weekday() == 6 else d


def our_table(year: int) -> set[date]:
    """5 U.S.C. 6103 written out independently of the holidays package (weekday dates only)."""
    days = {
        _observed(date(year, 1, 1)),
        _nth_weekday(year, 1, 0, 3),  # MLK
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus Day
        _observed(date(year, 11, 11)),
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if year >= 2021:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth, from 2021
    if date(year + 1, 1, 1).weekday() == 5:
        days.add(date(year, 12, 31))  # next New Year's Day observed on this December 31
    return {d for d in days if d.year == year}


@pytest.mark.parametrize("year", range(2022, 2036))
def test_federal_holidays_match_our_own_table(year: int) -> None:
    listed = {d for d, _ in CAL.non_business_days(date(year, 1, 1), date(year, 12, 31))}
    assert listed == our_table(year)


def test_observed_dates_of_part_a() -> None:
    assert not CAL.is_business_day(date(2027, 12, 31))  # New Year's 2028 (Saturday) observed
    assert not CAL.is_business_day(date(2027, 6, 18))  # Juneteenth (Saturday) observed Friday
    assert not CAL.is_business_day(date(2026, 11, 11))
    assert not CAL.is_business_day(date(2026, 11, 28))  # Saturday
    assert CAL.is_business_day(date(2026, 11, 27))  # the day after Thanksgiving is not a federal holiday


def test_issue_example_open_negotiation_initiation_deadline() -> None:
    d = open_negotiation_initiation_deadline(CAL, date(2026, 11, 2))
    assert d.due_on == date(2026, 12, 15)
    assert d.rule_id == "D1"
    assert "2026-11-11 Veterans Day" in d.explanation and "2026-11-26 Thanksgiving Day" in d.explanation


def test_cms_worked_example() -> None:
    start = date(2023, 3, 6)
    assert CAL.business_day_beginning(start, 30) == date(2023, 4, 14)
    assert CAL.business_day_beginning(start, 31) == date(2023, 4, 17)
    assert CAL.business_day_beginning(start, 34) == date(2023, 4, 20)


def test_beginning_on_weekend_or_holiday_counts_from_next_business_day() -> None:
    # Saturday 2026-11-07: day 1 is Monday 2026-11-09
    assert CAL.business_day_beginning(date(2026, 11, 7), 1) == date(2026, 11, 9)
    # Veterans Day 2026-11-11: day 1 is 2026-11-12
    assert CAL.business_day_beginning(date(2026, 11, 11), 1) == date(2026, 11, 12)


def test_after_counts_the_day_itself_as_zero() -> None:
    assert CAL.business_days_after(date(2026, 11, 25), 1) == date(2026, 11, 27)  # skips Thanksgiving
    assert CAL.business_days_after(date(2026, 11, 27), -1) == date(2026, 11, 25)
    assert CAL.business_days_after(date(2027, 12, 30), 1) == date(2028, 1, 3)  # 12-31 observed New Year


def test_window_across_the_year_end() -> None:
    # 30 business days beginning 2027-11-22 cross Thanksgiving, Christmas (observed 12-24) and 12-31
    d = open_negotiation_initiation_deadline(CAL, date(2027, 11, 22))
    naive = _naive_beginning(date(2027, 11, 22), 30)
    assert d.due_on == naive == date(2028, 1, 5)
    assert "2027-12-31 New Year's Day (observed)" in d.explanation


def test_closures_are_data() -> None:
    closed = BusinessCalendar(
        closures=[Closure(date(2026, 12, 24), date(2026, 12, 24), "Executive order closure")]
    )
    assert not closed.is_business_day(date(2026, 12, 24))
    assert CAL.is_business_day(date(2026, 12, 24))
    assert closed.business_day_beginning(date(2026, 12, 21), 4) == date(2026, 12, 28)


def test_outside_the_calendar_is_a_clear_error() -> None:
    with pytest.raises(OutsideCalendarError):
        CAL.is_business_day(date(1999, 1, 1))


def test_reminders_and_cutoff() -> None:
    from datetime import time

    d = open_negotiation_initiation_deadline(CAL, date(2026, 11, 2))
    plan = reminder_schedule(CAL, d, [0, 5, 1, 2], time(9), "America/New_York")
    assert [r.business_days_before for r in plan] == [5, 2, 1, 0]
    assert [r.fire_at.date() for r in plan] == [
        date(2026, 12, 8),
        date(2026, 12, 11),
        date(2026, 12, 14),
        date(2026, 12, 15),
    ]
    assert plan[0].fire_at.hour == 14  # 09:00 EST
    assert (
        cutoff_utc(d.due_on, time(23, 59, 59), "America/New_York").isoformat() == "2026-12-16T04:59:59+00:00"
    )


def _naive_beginning(start: date, n: int) -> date:
    day, count = start, 0
    while True:
        if day.weekday() < 5 and day not in _all_holidays():
            count += 1
            if count == n:
                return day
        day += timedelta(days=1)


_HOLIDAYS: set[date] = set()


def _all_holidays() -> set[date]:
    if not _HOLIDAYS:
        for y in range(2015, 2046):
            _HOLIDAYS.update(our_table(y))
    return _HOLIDAYS


dates = st.dates(min_value=date(2016, 1, 1), max_value=date(2043, 12, 31))


@settings(max_examples=300, deadline=None)
@given(dates, st.integers(min_value=1, max_value=60))
def test_indexed_arithmetic_agrees_with_a_day_loop(start: date, n: int) -> None:
    got = CAL.business_day_beginning(start, n)
    assert got == _naive_beginning(start, n)
    assert CAL.is_business_day(got)


@settings(max_examples=200, deadline=None)
@given(dates, dates)
def test_later_receipt_never_gives_an_earlier_deadline(a: date, b: date) -> None:
    early, late = sorted((a, b))
    assert (
        open_negotiation_initiation_deadline(CAL, early).due_on
        <= open_negotiation_initiation_deadline(CAL, late).due_on
    )


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2016, 1, 1), max_value=datetime(2044, 12, 31), timezones=st.just(UTC)))
def test_new_york_date_agrees_with_zoneinfo(instant: datetime) -> None:
    from zoneinfo import ZoneInfo

    assert new_york_date(instant) == instant.astimezone(ZoneInfo("America/New_York")).date()
