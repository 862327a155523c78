"""Deadlines of idr-rules Part A item 6, each with the rule and a human explanation.

Only the open-negotiation initiation deadline is computed here so far; the full rules engine
(every deadline, rule sets by date, overrides) extends this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from shared.rules.calendar import BusinessCalendar

RULE_SET = "federal-idr-2022"


@dataclass(frozen=True)
class Deadline:
    name: str
    due_on: date
    rule_id: str
    rule_set: str
    explanation: str


def _skipped(cal: BusinessCalendar, start: date, end: date) -> str:
    days = cal.non_business_days(start, end)
    if not days:
        return ""
    return "; skipped " + ", ".join(f"{d.isoformat()} {n}" for d, n in days)


def open_negotiation_initiation_deadline(cal: BusinessCalendar, received_on: date) -> Deadline:
    """D1: 30 business days beginning on the day the initial payment or denial is received."""
    due = cal.business_day_beginning(received_on, 30)
    return Deadline(
        name="open_negotiation_initiation_deadline",
        due_on=due,
        rule_id="D1",
        rule_set=RULE_SET,
        explanation=f"30 business days beginning {received_on.isoformat()}{_skipped(cal, received_on, due)}",
    )


@dataclass(frozen=True)
class Reminder:
    deadline: str
    business_days_before: int
    fire_at: datetime  # UTC


def cutoff_utc(due_on: date, cutoff: time, tz: str) -> datetime:
    """The instant a deadline ends: ``cutoff`` on its date in the business time zone, as UTC."""
    local = datetime.combine(due_on, cutoff, tzinfo=ZoneInfo(tz))
    return local.astimezone(ZoneInfo("UTC"))


def reminder_schedule(
    cal: BusinessCalendar, deadline: Deadline, days_before: list[int], at: time, tz: str
) -> list[Reminder]:
    """Reminders ``N`` business days before the deadline (0 = on the day), earliest first."""
    out = []
    for n in sorted(set(days_before), reverse=True):
        day = cal.business_days_after(deadline.due_on, -n) if n else deadline.due_on
        local = datetime.combine(day, at, tzinfo=ZoneInfo(tz))
        out.append(Reminder(deadline.name, n, local.astimezone(ZoneInfo("UTC"))))
    return out


def business_days_left(cal: BusinessCalendar, today: date, due_on: date) -> int:
    """Business days from ``today`` (exclusive) to ``due_on`` (inclusive)."""
    return cal.business_days_between(today, due_on)
