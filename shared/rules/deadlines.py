"""Every deadline of idr-rules Part A item 6 and Part B section 2, each with its rule and a one-line
human explanation, chosen by effective-dated rule sets and moved by overrides given as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator

from shared.rules.calendar import BusinessCalendar, Overrides, calendar_with
from shared.rules.rulesets import RuleConfig, batching_for, fees_for, idre_fee_range, switch_on

RULE_SET = "federal-idr-2022"


@dataclass(frozen=True)
class Deadline:
    name: str
    due_on: date
    rule_id: str
    rule_set: str
    explanation: str
    moved_by: tuple[str, ...] = ()


class Triggers(BaseModel):
    """The dates that start the clocks. Each step must not be dated before the one it follows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bill_sent_on: date | None = None
    initial_payment_received_on: date | None = None
    open_negotiation_started_on: date | None = None
    idr_initiated_on: date | None = None
    idre_selected_on: date | None = None
    determination_on: date | None = None
    improper_batch_notice_on: date | None = None
    # the parties agreed on the amount (open negotiation or during IDR): the plan pays in 30 days
    agreement_on: date | None = None
    joint_selection: bool = False  # the parties selected the entity: notify the Departments (D5a)
    batched: bool = False
    line_items: int = 1
    state: str | None = None

    @model_validator(mode="after")
    def _in_order(self) -> Triggers:
        chain = [
            "bill_sent_on",
            "initial_payment_received_on",
            "open_negotiation_started_on",
            "idr_initiated_on",
            "idre_selected_on",
            "determination_on",
        ]
        previous: tuple[str, date] | None = None
        for name in chain:
            value: date | None = getattr(self, name)
            if value is None:
                continue
            if previous and value < previous[1]:
                raise ValueError(
                    f"{name}: {value.isoformat()} is before {previous[0]} ({previous[1].isoformat()})"
                )
            previous = (name, value)
        if (
            self.improper_batch_notice_on
            and self.idr_initiated_on
            and self.improper_batch_notice_on < self.idr_initiated_on
        ):
            raise ValueError("improper_batch_notice_on: the notice cannot come before IDR was initiated")
        if self.agreement_on and self.determination_on:
            raise ValueError("agreement_on: a dispute is either settled or determined, not both")
        if self.agreement_on:
            for name in (
                "bill_sent_on",
                "initial_payment_received_on",
                "open_negotiation_started_on",
                "idr_initiated_on",
            ):
                earlier: date | None = getattr(self, name)
                if earlier and self.agreement_on < earlier:
                    agreed = self.agreement_on.isoformat()
                    raise ValueError(f"agreement_on: {agreed} is before {name} ({earlier.isoformat()})")
        if self.line_items < 1:
            raise ValueError("line_items: at least 1")
        return self


@dataclass
class Schedule:
    deadlines: dict[str, Deadline] = field(default_factory=dict)
    administrative_fee_per_party: Decimal | None = None
    idre_fee_range: tuple[Decimal, Decimal] | None = None
    fee_rule_set: str | None = None

    def as_dates(self) -> dict[str, str | float | int]:
        """The flat form of the ``idrflow deadlines`` contract: names to ISO dates, plus the fee."""
        out: dict[str, str | float | int] = {n: d.due_on.isoformat() for n, d in self.deadlines.items()}
        if self.administrative_fee_per_party is not None:
            fee = self.administrative_fee_per_party
            out["administrative_fee_per_party"] = int(fee) if fee == fee.to_integral_value() else float(fee)
        return out


def _skipped(cal: BusinessCalendar, start: date, end: date) -> str:
    days = cal.non_business_days(start, end)
    return "; skipped " + ", ".join(f"{d.isoformat()} {n}" for d, n in days) if days else ""


class _Builder:
    def __init__(self, cal: BusinessCalendar, overrides: Overrides, state: str | None) -> None:
        self.cal = cal
        self.overrides = overrides
        self.state = state
        self.out: dict[str, Deadline] = {}

    def add(self, name: str, rule_id: str, rule_set: str, due: date, explanation: str) -> None:
        moved: list[str] = []
        for ext in self.overrides.extensions:
            if ext.applies(name, due, self.state):
                ref = f" ({ext.reference})" if ext.reference else ""
                explanation += (
                    f"; moved from {due.isoformat()} to {ext.moves_to.isoformat()} by {ext.name}{ref}"
                )
                moved.append(ext.name)
                due = ext.moves_to
        self.out[name] = Deadline(name, due, rule_id, rule_set, explanation, tuple(moved))

    def _business(
        self, name: str, rule_id: str, start: date, n: int, what: str, rule_set: str, *, beginning: bool
    ) -> date:
        if beginning:
            due, how = self.cal.business_day_beginning(start, n), "beginning"
        else:
            due, how = self.cal.business_days_after(start, n), "after"
        skipped = _skipped(self.cal, start, due)
        self.add(
            name, rule_id, rule_set, due, f"{n} business days {how} {start.isoformat()} ({what}){skipped}"
        )
        return due

    def beginning(
        self, name: str, rule_id: str, start: date, n: int, what: str, rule_set: str = RULE_SET
    ) -> date:
        """``start`` is day 1 when it is a business day (idr-rules Part A item 2)."""
        return self._business(name, rule_id, start, n, what, rule_set, beginning=True)

    def after(
        self, name: str, rule_id: str, start: date, n: int, what: str, rule_set: str = RULE_SET
    ) -> date:
        """``start`` is day 0."""
        return self._business(name, rule_id, start, n, what, rule_set, beginning=False)

    def calendar_days(self, name: str, rule_id: str, start: date, n: int, what: str) -> date:
        due = start + timedelta(days=n)
        self.add(
            name,
            rule_id,
            RULE_SET,
            due,
            f"{n} calendar days after {start.isoformat()} ({what}); does not roll",
        )
        return due


def compute_schedule(
    triggers: Triggers,
    *,
    overrides: Overrides | None = None,
    config: RuleConfig | None = None,
    calendar: BusinessCalendar | None = None,
) -> Schedule:
    """Every deadline that the given triggers start, and the fee when IDR initiation is known."""
    ov = overrides or Overrides()
    cfg = config or RuleConfig()
    cal = calendar or calendar_with(ov.closures)
    t = triggers
    b = _Builder(cal, ov, t.state)
    schedule = Schedule(deadlines=b.out)

    if t.bill_sent_on:
        b.calendar_days(
            "initial_payment_deadline", "D0", t.bill_sent_on, 30, "plan's initial payment or denial"
        )
    if t.initial_payment_received_on:
        b.beginning(
            "open_negotiation_initiation_deadline",
            "D1",
            t.initial_payment_received_on,
            30,
            "send the open negotiation notice",
        )
    if t.open_negotiation_started_on:
        on = t.open_negotiation_started_on
        b.beginning("open_negotiation_period_end", "D2", on, 30, "open negotiation period")
        b.beginning("idr_initiation_window_opens", "D3", on, 31, "first day IDR may be initiated")
        b.beginning("idr_initiation_deadline", "D3", on, 34, "last day IDR may be initiated")
        if switch_on(cfg.open_negotiation_response_notice_from, on):
            b.beginning(
                "open_negotiation_response_deadline",
                "ON-RESPONSE",
                on,
                15,
                "open negotiation response notice",
                rule_set="idr-operations-2026",
            )
    if t.idr_initiated_on:
        init = t.idr_initiated_on
        b.after("idre_joint_selection_deadline", "D5", init, 3, "joint selection of the IDR entity")
        b.after(
            "departments_idre_selection_deadline", "D5b", init, 6, "the Departments select the IDR entity"
        )
        fees = fees_for(init)
        schedule.administrative_fee_per_party = fees.administrative_fee_per_party
        schedule.idre_fee_range = idre_fee_range(fees, batched=t.batched, line_items=t.line_items)
        schedule.fee_rule_set = fees.rule_set
        if t.improper_batch_notice_on:
            b.after(
                "improper_batch_resubmission_deadline",
                "D13",
                t.improper_batch_notice_on,
                4,
                "resubmit an improperly batched dispute, once",
            )
    if t.idre_selected_on:
        sel = t.idre_selected_on
        if t.joint_selection:
            b.after(
                "joint_selection_notice_deadline",
                "D5a",
                sel,
                1,
                "the initiating party notifies the Departments of the jointly selected IDR entity",
            )
        b.after(
            "conflict_attestation_deadline",
            "D6",
            sel,
            3,
            "the IDR entity attests it has no conflict of interest, or another is selected",
        )
        b.after("offer_and_fee_deadline", "D7", sel, 10, "offers and both fees")
        b.after("determination_deadline", "D8", sel, 30, "the IDR entity's determination")
        if switch_on(cfg.eligibility_review_5_days_from, sel):
            b.after(
                "eligibility_determination_deadline",
                "D6c",
                sel,
                5,
                "IDR entity's eligibility review",
                rule_set="idr-operations-2026",
            )
    if t.agreement_on:
        b.calendar_days(
            "payment_deadline",
            "D9",
            t.agreement_on,
            30,
            "pay the amount agreed (42 U.S.C. 300gg-111(c)(6)); cannot be extended",
        )
        if t.idre_selected_on:  # settled during IDR: half of each party's IDR entity fee comes back
            b.after(
                "idre_fee_refund_deadline", "D10", t.agreement_on, 30, "refund of half of each IDR entity fee"
            )
    if t.determination_on:
        det = t.determination_on
        b.calendar_days("payment_deadline", "D9", det, 30, "pay the amount determined; cannot be extended")
        b.after("idre_fee_refund_deadline", "D10", det, 30, "refund of the prevailing party's IDR entity fee")
        key = t.open_negotiation_started_on or det
        unit, length = batching_for(key, cfg).batched_cooling_off if t.batched else ("calendar", 90)
        if unit == "business":
            ends = b.after(
                "cooling_off_ends",
                "D4",
                det,
                length,
                "batched cooling-off",
                rule_set=batching_for(key, cfg).rule_set,
            )
        else:
            ends = b.calendar_days("cooling_off_ends", "D4", det, length, "cooling-off")
        b.beginning(
            "post_cooling_off_initiation_deadline",
            "D3b",
            ends + timedelta(days=1),
            30,
            "initiate IDR for items held by the cooling-off",
        )
    return schedule


def open_negotiation_initiation_deadline(cal: BusinessCalendar, received_on: date) -> Deadline:
    """D1: 30 business days beginning on the day the initial payment or denial is received."""
    schedule = compute_schedule(Triggers(initial_payment_received_on=received_on), calendar=cal)
    return schedule.deadlines["open_negotiation_initiation_deadline"]


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
