"""Batching and bundling checks (idr-rules Part B section 3).

:func:`check_batch` tests whether a set of dispute line items (DLIs) may go into one batched dispute.
The rule set is chosen by the earliest open-negotiation start date (:func:`batching_for`): the 2022
rules (statutory "similar condition" test, no line-item cap) or the CMS-9897-F rules (any of three
relatedness tests, a line-item cap). Every failing condition is reported as a :class:`Violation`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.rules.calendar import BusinessCalendar, federal_calendar
from shared.rules.eligibility import IneligibilityReason, PlanType, ServiceCategory
from shared.rules.rulesets import BatchingRules, RuleConfig, batching_for

BATCH_WINDOW_BUSINESS_DAYS = 30
# the alternative period for items held by a cooling-off: 42 U.S.C. 300gg-111(c)(3)(A)(iv)
# ("or an alternative period"), 45 CFR 149.510(c)(3)(i)(D); Maximus: "90-calendar day period if a
# cooling off period applies" (audit 2026-11 row 16)
COOLING_OFF_BATCH_WINDOW_CALENDAR_DAYS = 90
# plans matched at issuer (carrier) level; every other plan type must be the same plan (plan_id)
ISSUER_LEVEL_PLANS: frozenset[str] = frozenset({"fully_insured_group", "individual_market", "fehb"})
# Category I CPT ranges for the 2026 "same CPT range" test (anesthesiology, radiology, pathology/lab)
CPT_RANGES: tuple[tuple[str, int, int], ...] = (
    ("anesthesia", 100, 1999),
    ("radiology", 70010, 79999),
    ("pathology_and_laboratory", 80047, 89398),
)


class ViolationCode(StrEnum):
    DIFFERENT_PROVIDER = "DIFFERENT_PROVIDER"
    DIFFERENT_PLAN = "DIFFERENT_PLAN"
    OUTSIDE_30_BUSINESS_DAYS = "OUTSIDE_30_BUSINESS_DAYS"
    OVER_LINE_ITEM_CAP = "OVER_LINE_ITEM_CAP"
    NOT_RELATED = "NOT_RELATED"
    AIR_AMBULANCE_MULTIPLE_TRANSPORTS = "AIR_AMBULANCE_MULTIPLE_TRANSPORTS"
    INCORRECTLY_BUNDLED = "INCORRECTLY_BUNDLED"
    EMPTY_BATCH = "EMPTY_BATCH"
    MIXED_RULE_SETS = "MIXED_RULE_SETS"


class BatchItem(BaseModel):
    """One dispute line item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str = Field(min_length=1)
    line_number: int = Field(ge=1)
    provider_npi: str
    provider_tin: str
    payer_id: str  # issuer, carrier or plan administrator id
    plan_id: str | None = None  # the specific plan; must match for self-insured plans
    plan_type: PlanType
    service_code: str = Field(min_length=1)
    code_system: Literal["CPT", "HCPCS"]
    service_date: date
    open_negotiation_started_on: date
    service_category: ServiceCategory
    condition_group: str | None = None  # the caller's "similar condition" grouping
    encounter_id: str | None = None
    air_ambulance_transport_id: str | None = None
    # the item's IDR initiation was held up by a cooling-off period (D3b); when every item is one,
    # the dates of service may span 90 calendar days instead of 30 business days
    cooling_off: bool = False

    @property
    def ref(self) -> str:
        return f"{self.claim_id}#{self.line_number}"


class Violation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ViolationCode
    reason: str  # one human line
    items: list[str]  # "CLM-1#1"


class BatchCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    rule_set: str
    violations: list[Violation]
    line_items: int
    cap: int | None
    notes: list[str] = []

    @property
    def ineligibility_reason(self) -> IneligibilityReason | None:
        """The closure reason an IDR entity would give for this request, or None when it is fine."""
        if self.ok:
            return None
        if any(v.code == ViolationCode.INCORRECTLY_BUNDLED for v in self.violations):
            return IneligibilityReason.INCORRECTLY_BUNDLED
        return IneligibilityReason.INCORRECTLY_BATCHED


# -- helpers ----------------------------------------------------------------------------------------
def _refs(items: Sequence[BatchItem]) -> list[str]:
    return [i.ref for i in items]


def _odd_ones(items: Sequence[BatchItem], key: Callable[[BatchItem], Hashable]) -> list[BatchItem]:
    """Items whose key differs from the most common one (ties: the first item's key)."""
    common, _ = Counter(key(i) for i in items).most_common(1)[0]
    return [i for i in items if key(i) != common]


def _normal_code(code: str) -> str:
    return code.strip().upper()


def cpt_range(code: str) -> str | None:
    """The Category I CPT range (anesthesia, radiology, pathology/lab) a code falls in, if any."""
    c = _normal_code(code)
    if len(c) != 5 or not c.isdigit():
        return None  # HCPCS Level II, Category II/III and PLA codes are not Category I
    n = int(c)
    for name, low, high in CPT_RANGES:
        if low <= n <= high:
            return name
    return None


def _same_encounter(first: BatchItem, item: BatchItem, items: Sequence[BatchItem]) -> bool:
    """One patient encounter on consecutive dates, billed on the same claim form."""
    if (
        first.encounter_id is None
        or item.encounter_id != first.encounter_id
        or item.claim_id != first.claim_id
    ):
        return False
    dates = {
        i.service_date for i in items if i.encounter_id == first.encounter_id and i.claim_id == first.claim_id
    }
    day, end = min(first.service_date, item.service_date), max(first.service_date, item.service_date)
    while day <= end:
        if day not in dates:
            return False
        day += timedelta(days=1)
    return True


def _related_2026(
    first: BatchItem, item: BatchItem, items: Sequence[BatchItem], rules: BatchingRules
) -> bool:
    tests = rules.relatedness_tests
    if "same_encounter" in tests and _same_encounter(first, item, items):
        return True
    if "same_or_equivalent_code" in tests and _normal_code(item.service_code) == _normal_code(
        first.service_code
    ):
        return True
    if "same_cpt_range" in tests:
        r = cpt_range(first.service_code)
        if r is not None and cpt_range(item.service_code) == r:
            return True
    return False


# -- the check --------------------------------------------------------------------------------------
def check_batch(
    items: Sequence[BatchItem],
    *,
    config: RuleConfig | None = None,
    calendar: BusinessCalendar | None = None,
    bundled: bool = False,
) -> BatchCheck:
    """Whether ``items`` may be disputed together (batched, or bundled when ``bundled`` is True)."""
    if not items:
        return BatchCheck(
            ok=False,
            rule_set="none",
            violations=[
                Violation(code=ViolationCode.EMPTY_BATCH, reason="no line items to dispute", items=[])
            ],
            line_items=0,
            cap=None,
        )
    c = config or RuleConfig()
    cal = calendar or federal_calendar()
    rules = batching_for(min(i.open_negotiation_started_on for i in items), c)
    violations: list[Violation] = []
    notes: list[str] = []

    def add(code: ViolationCode, reason: str, bad: Sequence[BatchItem]) -> None:
        violations.append(Violation(code=code, reason=reason, items=_refs(bad)))

    if bundled:
        claims = sorted({i.claim_id for i in items})
        if len(claims) > 1:
            add(
                ViolationCode.INCORRECTLY_BUNDLED,
                f"a bundled dispute is one claim paid under one service code; these items come from "
                f"{len(claims)} claims ({', '.join(claims)})",
                items,
            )
        else:
            notes.append(
                "bundled dispute: a single determination with single-dispute fees, not subject to the "
                "batching rules"
            )
        return BatchCheck(
            ok=not violations,
            rule_set=rules.rule_set,
            violations=violations,
            line_items=len(items),
            cap=None,
            notes=notes,
        )

    # rule sets: every item's ON start must fall on the same side of the 2026 start date
    starts = c.batching_2026_starts
    before = [i for i in items if i.open_negotiation_started_on < starts]
    if before and len(before) < len(items):
        after = [i for i in items if i.open_negotiation_started_on >= starts]
        minority = before if len(before) <= len(after) else after
        add(
            ViolationCode.MIXED_RULE_SETS,
            f"open negotiation began on both sides of {starts.isoformat()} (when the 2026 batching rules "
            f"start); {len(before)} item(s) before and {len(after)} on or after",
            minority,
        )

    # same provider: one NPI or one TIN shared by all
    if len({i.provider_npi for i in items}) > 1 and len({i.provider_tin for i in items}) > 1:
        add(
            ViolationCode.DIFFERENT_PROVIDER,
            "items must share one provider NPI or one TIN; NPIs "
            + ", ".join(sorted({i.provider_npi for i in items}))
            + "; TINs "
            + ", ".join(sorted({i.provider_tin for i in items})),
            _odd_ones(items, lambda i: i.provider_tin),
        )

    # same payer: issuer level for insured coverage, the same plan for self-insured and other plans
    issuer_level = [i for i in items if i.plan_type in ISSUER_LEVEL_PLANS]
    plan_level = [i for i in items if i.plan_type not in ISSUER_LEVEL_PLANS]
    if issuer_level and plan_level:
        add(
            ViolationCode.DIFFERENT_PLAN,
            "insured coverage (same issuer) and self-insured or other plans (same plan) cannot be batched "
            "together",
            issuer_level if len(issuer_level) <= len(plan_level) else plan_level,
        )
    elif issuer_level:
        if len({i.payer_id for i in items}) > 1:
            add(
                ViolationCode.DIFFERENT_PLAN,
                "insured items must be from the same issuer; payer ids "
                + ", ".join(sorted({i.payer_id for i in items})),
                _odd_ones(items, lambda i: i.payer_id),
            )
    else:
        missing = [i for i in items if not i.plan_id]
        if missing and len(items) > 1:
            add(
                ViolationCode.DIFFERENT_PLAN,
                "self-insured items must be from the same plan (not just the same administrator); give "
                "plan_id for every item",
                missing,
            )
        named = [i for i in items if i.plan_id]
        if len({(i.payer_id, i.plan_id) for i in named}) > 1:
            add(
                ViolationCode.DIFFERENT_PLAN,
                "self-insured items must be from the same plan, even under one administrator; plans "
                + ", ".join(sorted({f"{i.payer_id}/{i.plan_id}" for i in named})),
                _odd_ones(named, lambda i: (i.payer_id, i.plan_id)),
            )

    # dates of service: within 30 business days after the first (day 0), or within 90 calendar days
    # when every item was held by a cooling-off period (the alternative period)
    first_date = min(i.service_date for i in items)
    bd_end = cal.business_days_after(first_date, BATCH_WINDOW_BUSINESS_DAYS)
    all_cooling_off = all(i.cooling_off for i in items)
    if all_cooling_off:
        cd_end = first_date + timedelta(days=COOLING_OFF_BATCH_WINDOW_CALENDAR_DAYS)
        beyond_bd = [
            i
            for i in items
            if cal.business_days_between(first_date, i.service_date) > BATCH_WINDOW_BUSINESS_DAYS
        ]
        late = [i for i in beyond_bd if i.service_date > cd_end]
        if late:
            add(
                ViolationCode.OUTSIDE_30_BUSINESS_DAYS,
                f"dates of service of cooling-off items must fall within "
                f"{COOLING_OFF_BATCH_WINDOW_CALENDAR_DAYS} calendar days after the first "
                f"({first_date.isoformat()}, through {cd_end.isoformat()})",
                late,
            )
        elif beyond_bd:
            notes.append(
                f"dates of service span more than {BATCH_WINDOW_BUSINESS_DAYS} business days but every "
                "item was held by a cooling-off period, so the alternative "
                f"{COOLING_OFF_BATCH_WINDOW_CALENDAR_DAYS}-calendar-day period applies "
                f"(through {cd_end.isoformat()})"
            )
    else:
        late = [
            i
            for i in items
            if cal.business_days_between(first_date, i.service_date) > BATCH_WINDOW_BUSINESS_DAYS
        ]
        if late:
            held = [i for i in items if i.cooling_off]
            add(
                ViolationCode.OUTSIDE_30_BUSINESS_DAYS,
                f"dates of service must fall within {BATCH_WINDOW_BUSINESS_DAYS} business days after the "
                f"first ({first_date.isoformat()}, through {bd_end.isoformat()})"
                + (
                    f"; the {COOLING_OFF_BATCH_WINDOW_CALENDAR_DAYS}-calendar-day alternative needs every "
                    "item to be a cooling-off item"
                    if held
                    else ""
                ),
                late,
            )

    # line-item cap
    if rules.line_item_cap is not None and len(items) > rules.line_item_cap:
        add(
            ViolationCode.OVER_LINE_ITEM_CAP,
            f"{len(items)} line items exceed the cap of {rules.line_item_cap} under {rules.rule_set}",
            list(items)[rules.line_item_cap :],
        )

    # air ambulance: one transport per dispute
    air = [i for i in items if i.service_category == "air_ambulance"]
    single_transport = False
    if air:
        transports = {i.air_ambulance_transport_id for i in air}
        if len(air) < len(items):
            add(
                ViolationCode.AIR_AMBULANCE_MULTIPLE_TRANSPORTS,
                "air ambulance items can only be disputed with items of the same transport",
                [i for i in items if i.service_category != "air_ambulance"],
            )
        elif len(items) > 1 and None in transports:
            add(
                ViolationCode.AIR_AMBULANCE_MULTIPLE_TRANSPORTS,
                "air ambulance items can only be batched for one transport; give air_ambulance_transport_id",
                [i for i in air if i.air_ambulance_transport_id is None],
            )
        elif len(transports) > 1:
            add(
                ViolationCode.AIR_AMBULANCE_MULTIPLE_TRANSPORTS,
                "air ambulance items from different transports cannot be batched; transports "
                + ", ".join(sorted(t for t in transports if t is not None)),
                _odd_ones(air, lambda i: i.air_ambulance_transport_id),
            )
        else:
            single_transport = True
            notes.append("air ambulance: all items belong to one transport, so they may be disputed together")

    # relatedness
    if not single_transport and len(items) > 1:
        if "similar_condition" in rules.relatedness_tests:
            missing = [i for i in items if not i.condition_group]
            if missing:
                add(
                    ViolationCode.NOT_RELATED,
                    f"{rules.rule_set} requires items for the treatment of a similar condition; give "
                    "condition_group for every item",
                    missing,
                )
            grouped = [i for i in items if i.condition_group]
            if len({i.condition_group for i in grouped}) > 1:
                add(
                    ViolationCode.NOT_RELATED,
                    "items must relate to the treatment of a similar condition; condition groups "
                    + ", ".join(sorted({i.condition_group or "" for i in grouped})),
                    _odd_ones(grouped, lambda i: i.condition_group),
                )
        else:
            first = min(items, key=lambda i: i.service_date)  # earliest date; ties keep input order
            unrelated = [i for i in items if i is not first and not _related_2026(first, i, items, rules)]
            if unrelated:
                add(
                    ViolationCode.NOT_RELATED,
                    f"under {rules.rule_set} each item must relate to the first ({first.ref}, "
                    f"{first.service_code}) by the same encounter on consecutive dates, the same service "
                    "code, or the same Category I CPT range (anesthesia, radiology, pathology/lab)",
                    unrelated,
                )

    return BatchCheck(
        ok=not violations,
        rule_set=rules.rule_set,
        violations=violations,
        line_items=len(items),
        cap=rules.line_item_cap,
        notes=notes,
    )
