"""The business-day calendar of idr-rules Part A items 1 and 2.

A business day is Monday to Friday except the federal holidays of 5 U.S.C. 6103 on their observed
dates (the ``holidays`` package's US public calendar, checked against our own table in the tests)
and any closure days given as data. Arithmetic is O(log n): the business days of the covered years
are precomputed into a sorted index and positions are found by bisection.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays

FIRST_YEAR = 2015
LAST_YEAR = 2045


class OutsideCalendarError(ValueError):
    """A date falls outside the years this calendar covers."""


@dataclass(frozen=True)
class Closure:
    """A one-off non-business day range (e.g. an executive-order closure), given as data."""

    start: date
    end: date
    name: str


class BusinessCalendar:
    def __init__(
        self,
        first_year: int = FIRST_YEAR,
        last_year: int = LAST_YEAR,
        closures: Iterable[Closure] = (),
    ) -> None:
        self.first = date(first_year, 1, 1)
        self.last = date(last_year, 12, 31)
        # one year beyond, so that an observed New Year's Day on December 31 is present
        federal = holidays.country_holidays("US", years=range(first_year, last_year + 2), observed=True)
        named: dict[date, str] = {}
        for day, name in federal.items():
            if self.first <= day <= self.last and day.weekday() < 5:
                named[day] = name
        for closure in closures:
            day = closure.start
            while day <= closure.end:
                if day.weekday() < 5:
                    named.setdefault(day, closure.name)
                day += timedelta(days=1)
        self._names = named
        ordinals: list[int] = []
        day = self.first
        while day <= self.last:
            if day.weekday() < 5 and day not in named:
                ordinals.append(day.toordinal())
            day += timedelta(days=1)
        self._business = ordinals

    # -- queries -----------------------------------------------------------------------------
    def _check(self, day: date) -> None:
        if not self.first <= day <= self.last:
            raise OutsideCalendarError(
                f"{day.isoformat()} is outside the calendar ({self.first}..{self.last})"
            )

    def is_business_day(self, day: date) -> bool:
        self._check(day)
        i = bisect_left(self._business, day.toordinal())
        return i < len(self._business) and self._business[i] == day.toordinal()

    def non_business_days(self, start: date, end: date) -> list[tuple[date, str]]:
        """Weekday holidays and closures in [start, end], with their names."""
        return [(d, n) for d, n in sorted(self._names.items()) if start <= d <= end]

    def _at(self, index: int) -> date:
        if not 0 <= index < len(self._business):
            raise OutsideCalendarError("the result falls outside the calendar")
        return date.fromordinal(self._business[index])

    def business_day_beginning(self, day: date, n: int) -> date:
        """Business day ``n`` of a period that begins on ``day``.

        ``day`` is day 1 when it is a business day; otherwise the next business day is day 1.
        """
        if n < 1:
            raise ValueError("a period that begins on a day counts from 1")
        self._check(day)
        return self._at(bisect_left(self._business, day.toordinal()) + n - 1)

    def business_days_after(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day`` (``day`` is day 0); negative ``n`` counts back."""
        self._check(day)
        if n >= 0:
            return self._at(bisect_right(self._business, day.toordinal()) + n - 1) if n else day
        return self._at(bisect_left(self._business, day.toordinal()) + n)

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days lie in (start, end]: 0 when end <= start."""
        self._check(start)
        self._check(end)
        if end <= start:
            return 0
        return bisect_right(self._business, end.toordinal()) - bisect_right(self._business, start.toordinal())


@lru_cache(maxsize=1)
def federal_calendar() -> BusinessCalendar:
    """The calendar with federal holidays only (closures and extensions come as data)."""
    return BusinessCalendar()
