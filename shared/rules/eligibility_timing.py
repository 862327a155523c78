"""Timing checks of the eligibility screen: D1-D4, D3b and D12 (idr-rules Part B 2.2; audit 2026-11
rows 3, 9, 10, 13, 14 and 19).

The cooling-off and the post-cooling-off window come from the one shared function
(:mod:`shared.rules.cooling_off`), which the lifecycle workflow uses too. When a fact that picks the
cooling-off is unknown (who initiated the prior dispute; the prior batched dispute's open-negotiation
start), the screen works the answer out under every possibility: if they agree it gives that answer
and says what it assumed; if they differ the item needs review, with each possibility spelled out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.rules.cooling_off import barred_on, initiation_window
from shared.rules.eligibility_model import Finding, IneligibilityReason, ScreenState, iso, yn
from shared.rules.rulesets import batching_for

TIMING_RULE_SET = "idr-timing-2022"  # 149.510(b) and (c)(4)(vii): D1-D4, D3b, D12
COOLING_OFF_CALENDAR_DAYS = 90


@dataclass(frozen=True)
class CoolingOff:
    """One possible cooling-off for the prior determination."""

    label: str
    ends: date
    barred: bool  # the prior dispute was the provider's, so the provider is the party barred
    batched: bool


@dataclass
class _Outcome:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def key(self) -> frozenset[tuple[str, str]]:
        return frozenset((x.code.value, x.severity) for x in self.findings)

    def describe(self) -> str:
        if not self.findings:
            return "no timing finding"
        return ", ".join(dict.fromkeys(x.code.value for x in self.findings))


def _extension_covers(s: ScreenState, day: date) -> date | None:
    """The Departments' extension date when it makes ``day`` timely (D12), else None."""
    ext = s.f.extension_until
    return ext if ext is not None and day <= ext else None


def cooling_off_variants(s: ScreenState) -> list[CoolingOff]:
    """Every cooling-off the facts leave possible (empty when no prior determination applies)."""
    f = s.f
    det = f.prior_determination_on
    if det is None or not f.same_parties_and_item_as_prior:
        return []
    ends: list[tuple[str, date, bool]] = []
    single: tuple[str, date, bool] = (
        "90 calendar days",
        det + timedelta(days=COOLING_OFF_CALENDAR_DAYS),
        f.prior_dispute_batched and not f.prior_dispute_bundled,
    )
    if f.prior_dispute_batched and not f.prior_dispute_bundled:
        key = f.prior_open_negotiation_started_on
        if key is None and batching_for(det, s.config).rule_set == "batching-2022":
            key = det  # the prior open negotiation began before its determination, so before 2026-11-01
            s.assumptions.append(
                f"the prior batched dispute was determined on {iso(det)}, so its open negotiation began "
                f"before {iso(s.config.batching_2026_starts)} and its cooling-off is 90 calendar days"
            )
        if key is None:
            s.assumptions.append(
                "the prior batched dispute's open-negotiation start is not given "
                "(prior_open_negotiation_started_on); it picks the batched cooling-off, so both rule "
                "sets were tried"
            )
            rules = batching_for(s.config.batching_2026_starts, s.config)
            unit, n = rules.batched_cooling_off
            ends.append(("90 calendar days (prior open negotiation before the 2026 rules)", single[1], True))
            ends.append(
                (
                    f"{n} {unit} days (prior open negotiation under {rules.rule_set})",
                    s.cal.business_days_after(det, n) if unit == "business" else det + timedelta(days=n),
                    True,
                )
            )
        else:
            rules = batching_for(key, s.config)
            s.use(rules.rule_set)
            unit, n = rules.batched_cooling_off
            end = s.cal.business_days_after(det, n) if unit == "business" else det + timedelta(days=n)
            ends.append((f"{n} {unit} days ({rules.rule_set})", end, True))
    else:
        ends.append(single)
    by = f.prior_initiated_by
    parties = [True] if by == "provider" else [False] if by == "plan" else [True, False]
    out: list[CoolingOff] = []
    for barred in parties:
        who = "prior dispute initiated by the provider" if barred else "prior dispute initiated by the plan"
        for label, end, batched in ends:
            out.append(CoolingOff(f"{who}, cooling-off {label}", end, barred, batched))
    return out


def _initiation(s: ScreenState, co: CoolingOff | None) -> _Outcome:
    """D2, D3, D3b and D4 findings for one possible cooling-off (or none)."""
    f = s.f
    cal = s.cal
    out = _Outcome()
    det = f.prior_determination_on if co is not None else None
    ends = co.ends if co is not None else None
    barred = co.barred if co is not None else False

    def add(code: IneligibilityReason, message: str, facts: dict[str, str]) -> None:
        out.findings.append(Finding(code=code, message=message, facts=facts))

    def cooling_off_check(idr: date) -> None:
        if co is None or det is None or ends is None:
            return
        if barred_on(idr, det, ends, prior_initiated_by_us=barred):
            add(
                IneligibilityReason.COOLING_OFF_NOT_COMPLETED,
                f"IDR was initiated on {iso(idr)} against the same party for the same or a similar item "
                f"during the cooling-off period after the determination of {iso(det)} (a dispute the "
                f"provider initiated), which ends on {iso(ends)}",
                {
                    "prior_determination_on": iso(det),
                    "cooling_off_ends": iso(ends),
                    "idr_initiated_on": iso(idr),
                    "prior_dispute_batched": yn(co.batched),
                },
            )

    on = f.open_negotiation_started_on
    idr = f.idr_initiated_on
    if on is None:
        if idr is not None:
            cooling_off_check(idr)
        return out
    period_end = cal.business_day_beginning(on, 30)
    opens = cal.business_day_beginning(on, 31)
    deadline = cal.business_day_beginning(on, 34)
    deadline_name = "idr_initiation_deadline"
    window = initiation_window(period_end, det, ends, prior_initiated_by_us=barred)
    if window == "post_cooling_off" and ends is not None:
        # D3b: open negotiation ended inside the cooling-off; 30 business days beginning the day after
        deadline = cal.business_day_beginning(ends + timedelta(days=1), 30)
        deadline_name = "post_cooling_off_initiation_deadline"
        out.notes.append(
            f"open negotiation ended on {iso(period_end)}, inside the cooling-off period ending "
            f"{iso(ends)}; IDR may be initiated after it, through {iso(deadline)}"
        )
    if idr is None:
        return out
    window_facts = {"open_negotiation_started_on": iso(on), "idr_initiated_on": iso(idr)}
    if idr < opens:
        add(
            IneligibilityReason.OPEN_NEGOTIATION_NOT_COMPLETE,
            f"IDR was initiated on {iso(idr)}, before the open negotiation period ended on "
            f"{iso(period_end)}; the earliest initiation date is {iso(opens)}",
            {
                **window_facts,
                "open_negotiation_period_end": iso(period_end),
                "idr_initiation_window_opens": iso(opens),
            },
        )
    elif idr > deadline:
        ext = _extension_covers(s, idr)
        if ext is not None:
            out.notes.append(
                f"IDR was initiated after the {deadline_name} of {iso(deadline)} but within the "
                f"Departments' extension to {iso(ext)}"
            )
        else:
            facts = {**window_facts, deadline_name: iso(deadline)}
            if f.extension_until is not None:
                facts["extension_until"] = iso(f.extension_until)
            add(
                IneligibilityReason.INITIATION_LATE,
                f"IDR was initiated on {iso(idr)}, after the {deadline_name} of {iso(deadline)}"
                + (f" and after the extension to {iso(f.extension_until)}" if f.extension_until else ""),
                facts,
            )
    cooling_off_check(idr)
    return out


def _open_negotiation_start(s: ScreenState) -> None:
    """D1, and open negotiation before the initial payment (row 19)."""
    f = s.f
    if f.initial_payment_received_on is None:
        s.skipped.append("open negotiation initiation deadline (no initial_payment_received_on)")
        return
    s.use(TIMING_RULE_SET)
    paid = f.initial_payment_received_on
    on_deadline = s.cal.business_day_beginning(paid, 30)
    base = {
        "initial_payment_received_on": iso(paid),
        "open_negotiation_initiation_deadline": iso(on_deadline),
    }
    on = f.open_negotiation_started_on
    if on is None and f.idr_initiated_on is not None:
        s.add(
            IneligibilityReason.OPEN_NEGOTIATION_NOT_INITIATED,
            f"IDR was initiated on {iso(f.idr_initiated_on)} without open negotiation, which had "
            f"to begin by {iso(on_deadline)}",
            {**base, "idr_initiated_on": iso(f.idr_initiated_on)},
        )
    elif on is not None and on < paid:
        s.review(
            f"open negotiation began on {iso(on)}, before the initial payment or denial was received on "
            f"{iso(paid)}; the open negotiation period follows receipt (42 U.S.C. 300gg-111(c)(1)(A)), "
            "so a notice sent before it may not count; confirm the dates",
            {**base, "open_negotiation_started_on": iso(on)},
        )
    elif on is not None and on > on_deadline:
        ext = _extension_covers(s, on)
        if ext is not None:
            s.notes.append(
                f"open negotiation began after {iso(on_deadline)} but within the Departments' "
                f"extension to {iso(ext)}"
            )
        else:
            s.add(
                IneligibilityReason.OPEN_NEGOTIATION_NOT_INITIATED,
                f"open negotiation began on {iso(on)}, after the deadline of {iso(on_deadline)} "
                "(30 business days beginning on the day the initial payment or denial was received)",
                {**base, "open_negotiation_started_on": iso(on)},
            )


def check_timing(s: ScreenState) -> None:
    """Every timing finding for the screen ``s``."""
    f = s.f
    _open_negotiation_start(s)
    if f.notice_of_initiation_submitted is False:
        facts = {"notice_of_initiation_submitted": "false"}
        if f.idr_initiated_on is not None:
            facts["idr_initiated_on"] = iso(f.idr_initiated_on)
        s.add(
            IneligibilityReason.NOTICE_OF_INITIATION_NOT_SUBMITTED,
            "the Notice of IDR Initiation was not submitted to the other party and the Departments",
            facts,
        )
    if f.open_negotiation_started_on is None or f.idr_initiated_on is None:
        s.skipped.append("IDR initiation window (needs open_negotiation_started_on and idr_initiated_on)")
    if f.open_negotiation_started_on is None and f.idr_initiated_on is not None:
        if f.initial_payment_received_on is None:
            # row 13: IDR follows a failed open negotiation; with its start unknown, nobody can say
            s.review(
                f"IDR was initiated on {iso(f.idr_initiated_on)} but the open negotiation start is not "
                "given; IDR is available only after open negotiation fails (42 U.S.C. "
                "300gg-111(c)(1)(B)); give open_negotiation_started_on",
                {"idr_initiated_on": iso(f.idr_initiated_on)},
            )
    if f.open_negotiation_started_on is not None or f.prior_determination_on is not None:
        s.use(TIMING_RULE_SET)
    variants = cooling_off_variants(s)
    if not variants:
        outcome = _initiation(s, None)
        s.findings.extend(outcome.findings)
        s.notes.extend(outcome.notes)
        return
    outcomes = [(v, _initiation(s, v)) for v in variants]
    first_v, first = outcomes[0]
    if all(o.key() == first.key() for _, o in outcomes):
        s.findings.extend(first.findings)
        s.notes.extend(first.notes)
        if len(outcomes) > 1:
            s.assumptions.append(
                "the cooling-off facts are incomplete (prior_initiated_by, "
                "prior_open_negotiation_started_on); every possibility gives the same answer"
            )
        return
    common = frozenset.intersection(*(o.key() for _, o in outcomes))
    s.findings.extend(x for x in first.findings if (x.code.value, x.severity) in common)
    missing = []
    if s.f.prior_initiated_by is None:
        missing.append("who initiated the prior dispute (prior_initiated_by)")
    if any(v.batched for v in variants) and s.f.prior_open_negotiation_started_on is None:
        missing.append(
            "the prior batched dispute's open-negotiation start (prior_open_negotiation_started_on)"
        )
    s.review(
        "the cooling-off after the determination of "
        f"{iso(s.f.prior_determination_on or first_v.ends)} decides this item and depends on "
        + " and ".join(missing)
        + ": "
        + "; ".join(f"{v.label}: {o.describe()}" for v, o in outcomes),
        {
            "prior_determination_on": iso(s.f.prior_determination_on or first_v.ends),
            "same_parties_and_item_as_prior": "true",
        },
    )
