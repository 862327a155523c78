"""The business-day calendar of idr-rules Part A items 1 and 2, with overrides as data.

A business day is Monday to Friday except the federal holidays of 5 U.S.C. 6103 on their observed
dates (the ``holidays`` package's US public calendar, checked against our own table in the tests)
and any closure days given as data. Arithmetic is O(1): the business days of the covered years are
precomputed, with a dense table from every calendar day to the index of the first business day on
or after it.

Overrides are data, loaded from the database or a file by the caller: a :class:`Closure` removes
days from the business calendar; an :class:`Extension` moves deadlines that fall in a date range
to a later date, for all deadlines or some, in all states or some.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import holidays

FIRST_YEAR = 2015
LAST_YEAR = 2045


# the payment deadline can never be extended (D12); the cooling-off is a bar, not a period to act in:
# an extension meant to give parties time must not lengthen it
NEVER_EXTENDED = frozenset({"payment_deadline", "provider_refund_deadline", "cooling_off_ends"})


class OutsideCalendarError(ValueError):
    """A date falls outside the years this calendar covers."""


@dataclass(frozen=True)
class Closure:
    """One-off non-business days (e.g. an executive-order closure), given as data."""

    start: date
    end: date
    name: str
    reference: str = ""


@dataclass(frozen=True)
class Extension:
    """The Departments' blanket extension: deadlines falling in [start, end] move to ``moves_to``.

    ``deadlines`` and ``states`` narrow the scope (None = all). The payment deadline can never be
    extended (idr-rules D12), whatever the scope says.
    """

    start: date
    end: date
    moves_to: date
    name: str
    reference: str = ""
    deadlines: frozenset[str] | None = None
    states: frozenset[str] | None = None

    def applies(self, deadline: str, due_on: date, state: str | None) -> bool:
        if deadline in NEVER_EXTENDED or not self.start <= due_on <= self.end or self.moves_to <= due_on:
            return False
        if self.deadlines is not None and deadline not in self.deadlines:
            return False
        return self.states is None or (state is not None and state in self.states)


@dataclass(frozen=True)
class Overrides:
    closures: tuple[Closure, ...] = ()
    extensions: tuple[Extension, ...] = ()


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
                if day.weekday() < 5 and self.first <= day <= self.last:
                    named.setdefault(day, closure.name)
                day += timedelta(days=1)
        self._names = dict(sorted(named.items()))
        self._base = self.first.toordinal()
        span = self.last.toordinal() - self._base + 1
        business: list[int] = []
        # next_index[i]: index in ``business`` of the first business day on or after first + i
        next_index = [0] * (span + 1)
        for i in range(span):
            day = self.first + timedelta(days=i)
            if day.weekday() < 5 and day not in named:
                business.append(day.toordinal())
        j = len(business)
        next_index[span] = j
        for i in range(span - 1, -1, -1):
            if j > 0 and business[j - 1] == self._base + i:
                j -= 1
            next_index[i] = j
        self._business = business
        self._next = next_index

    # -- queries -----------------------------------------------------------------------------
    def _offset(self, day: date) -> int:
        if not self.first <= day <= self.last:
            raise OutsideCalendarError(
                f"{day.isoformat()} is outside the calendar "
                f"({self.first.isoformat()}..{self.last.isoformat()})"
            )
        return day.toordinal() - self._base

    def _at(self, index: int) -> date:
        if not 0 <= index < len(self._business):
            raise OutsideCalendarError("the result falls outside the calendar")
        return date.fromordinal(self._business[index])

    @property
    def business_ordinals(self) -> list[int]:
        """Proleptic ordinals of every business day, ascending (for bulk computations)."""
        return self._business

    @property
    def next_business_index(self) -> list[int]:
        """For each day from ``first``: the index of the first business day on or after it."""
        return self._next

    def is_business_day(self, day: date) -> bool:
        off = self._offset(day)
        i = self._next[off]
        return i < len(self._business) and self._business[i] == day.toordinal()

    def non_business_days(self, start: date, end: date) -> list[tuple[date, str]]:
        """Weekday holidays and closures in [start, end], with their names."""
        return [(d, n) for d, n in self._names.items() if start <= d <= end]

    def business_day_beginning(self, day: date, n: int) -> date:
        """Business day ``n`` of a period that begins on ``day``.

        ``day`` is day 1 when it is a business day; otherwise the next business day is day 1.
        """
        if n < 1:
            raise ValueError("a period that begins on a day counts from 1")
        return self._at(self._next[self._offset(day)] + n - 1)

    def business_days_after(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day`` (``day`` is day 0); negative ``n`` counts back."""
        off = self._offset(day)
        if n > 0:
            return self._at(self._next[off + 1] + n - 1)
        if n < 0:
            return self._at(self._next[off] + n)
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days lie in (start, end]: 0 when end <= start."""
        a, b = self._offset(start), self._offset(end)
        if b <= a:
            return 0
        return self._next[b + 1] - self._next[a + 1]


@lru_cache(maxsize=32)
def calendar_with(closures: tuple[Closure, ...] = ()) -> BusinessCalendar:
    """The federal calendar with these closures (cached: building one takes milliseconds)."""
    return BusinessCalendar(closures=closures)


def federal_calendar() -> BusinessCalendar:
    """The calendar with federal holidays only (closures and extensions come as data)."""
    return calendar_with(())


def new_york_date(instant: datetime) -> date:
    """The date in New York at ``instant`` (aware), without the time zone database, so that workflow
    code in Temporal's sandbox can use it. US rule since 2007: daylight time from 02:00 on the second
    Sunday of March to 02:00 on the first Sunday of November (checked against zoneinfo in the tests)."""
    utc = instant.astimezone(UTC)
    year = utc.year
    march = date(year, 3, 8) + timedelta(days=(6 - date(year, 3, 8).weekday()) % 7)
    november = date(year, 11, 1) + timedelta(days=(6 - date(year, 11, 1).weekday()) % 7)
    starts = datetime(march.year, march.month, march.day, 7, tzinfo=UTC)  # 02:00 EST
    ends = datetime(november.year, november.month, november.day, 6, tzinfo=UTC)  # 02:00 EDT
    offset = timedelta(hours=-4) if starts <= utc < ends else timedelta(hours=-5)
    return (utc + offset).date()
