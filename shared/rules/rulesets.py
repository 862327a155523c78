"""Effective-dated regulatory parameters (idr-rules Part A item 4, Part B sections 2.3, 3 and 4).

Each parameter belongs to a rule set with a start date and is chosen by its own key date:
fees by IDR initiation date; batching relatedness tests, the line-item cap and the batched
cooling-off by open-negotiation start date; CARC/RARC expectations by date of service. Features
that start "when the Departments announce them" are switches with a configured start date (None =
off). Values rated L in Part B are configuration (:class:`RuleConfig`) with the researched default.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict


class RuleConfig(BaseModel):
    """Dates and numbers the regulation leaves uncertain (Part B confidence L) or to announcements."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # CMS-9897-F batching changes: ONPs beginning on or after this date (reported Nov 1 2026, L)
    batching_2026_starts: date = date(2026, 11, 1)
    batch_line_item_cap_2026: int = 50  # reported 50 (the proposal was 25), L
    # batched cooling-off cut to 30 business days from the same date (M)
    batched_cooling_off_business_days_2026: int = 30
    # CARC/RARC remittance requirements for items furnished on or after (L)
    carc_rarc_required_from: date = date(2027, 1, 1)
    # switches: None until the Departments announce the functionality (plus any transition)
    open_negotiation_response_notice_from: date | None = None  # business day 15 of the ON period
    eligibility_review_5_days_from: date | None = None  # IDRE eligibility within 5 business days
    plan_registry_from: date | None = None


@dataclass(frozen=True)
class FeeSchedule:
    rule_set: str
    starts: date
    administrative_fee_per_party: Decimal
    idre_fee_single: tuple[Decimal, Decimal]
    idre_fee_batched: tuple[Decimal, Decimal]
    # extra IDRE fee per additional block of 25 line items beyond the first 25 (None = no tiers)
    idre_fee_per_extra_25_lines: tuple[Decimal, Decimal] | None
    source: str


def _d(v: str) -> Decimal:
    return Decimal(v)


FEE_SCHEDULES: tuple[FeeSchedule, ...] = (
    FeeSchedule(
        "fees-2022",
        date(2022, 4, 15),
        _d("50"),
        (_d("200"), _d("500")),
        (_d("268"), _d("670")),
        None,
        "CMS 2022 fee guidance (Part B section 4)",
    ),
    FeeSchedule(
        "fees-2023",
        date(2023, 1, 1),
        _d("350"),
        (_d("200"), _d("700")),
        (_d("268"), _d("938")),
        None,
        "CMS 2023 fee guidance; $350 vacated by TMA IV on 2023-08-03",
    ),
    FeeSchedule(
        "fees-2023-tma-iv",
        date(2023, 8, 3),
        _d("50"),
        (_d("200"), _d("700")),
        (_d("268"), _d("938")),
        None,
        "Administrative fee back to $50 after TMA IV (Part A item 6)",
    ),
    FeeSchedule(
        "fees-2024",
        date(2024, 1, 22),
        _d("115"),
        (_d("200"), _d("840")),
        (_d("268"), _d("1173")),
        (_d("75"), _d("250")),
        "Fee final rule, 88 FR 88494 (effective 2024-01-22)",
    ),
    FeeSchedule(
        "fees-2026",
        date(2026, 6, 11),
        _d("15"),
        (_d("200"), _d("840")),
        (_d("268"), _d("1173")),
        (_d("75"), _d("250")),
        "IDR Operations final rule CMS-9897-F ($15 from 2026-06-11)",
    ),
)
_FEE_STARTS = [f.starts for f in FEE_SCHEDULES]


class OutsideRuleSetsError(ValueError):
    """No rule set covers the key date (e.g. IDR initiated before the process existed)."""


def fees_for(idr_initiated_on: date) -> FeeSchedule:
    """The fee schedule in force for a dispute initiated on ``idr_initiated_on``."""
    i = bisect_right(_FEE_STARTS, idr_initiated_on) - 1
    if i < 0:
        raise OutsideRuleSetsError(
            f"federal IDR opened on {FEE_SCHEDULES[0].starts.isoformat()}; no fees before that date"
        )
    return FEE_SCHEDULES[i]


def idre_fee_range(schedule: FeeSchedule, *, batched: bool, line_items: int = 1) -> tuple[Decimal, Decimal]:
    """The IDRE fee range for a dispute: single, or batched plus one tier per extra block of 25 lines."""
    if not batched:
        return schedule.idre_fee_single
    low, high = schedule.idre_fee_batched
    if schedule.idre_fee_per_extra_25_lines and line_items > 25:
        blocks = (line_items - 1) // 25  # lines 26-50 = 1 block, 51-75 = 2, ...
        tier_low, tier_high = schedule.idre_fee_per_extra_25_lines
        low, high = low + blocks * tier_low, high + blocks * tier_high
    return low, high


RelatednessTest = Literal["similar_condition", "same_encounter", "same_or_equivalent_code", "same_cpt_range"]


@dataclass(frozen=True)
class BatchingRules:
    rule_set: str
    starts: date
    line_item_cap: int | None
    relatedness_tests: tuple[RelatednessTest, ...]
    # cooling-off after a batched determination: ("calendar", 90) or ("business", 30)
    batched_cooling_off: tuple[Literal["calendar", "business"], int]
    source: str


def batching_for(open_negotiation_started_on: date, config: RuleConfig | None = None) -> BatchingRules:
    """Batching rules by the open-negotiation start date."""
    c = config or RuleConfig()
    if open_negotiation_started_on >= c.batching_2026_starts:
        return BatchingRules(
            "batching-2026",
            c.batching_2026_starts,
            c.batch_line_item_cap_2026,
            ("same_encounter", "same_or_equivalent_code", "same_cpt_range"),
            ("business", c.batched_cooling_off_business_days_2026),
            "CMS-9897-F as reported (Part B section 2.3 and 3; cap and start date rated L)",
        )
    return BatchingRules(
        "batching-2022",
        date(2022, 1, 1),
        None,
        ("similar_condition",),
        ("calendar", 90),
        "42 USC 300gg-111(c)(3); same-service-code test vacated by TMA IV (Part B section 3)",
    )


@dataclass(frozen=True)
class RemittanceRules:
    rule_set: str
    carc_rarc_required: bool
    expected_codes: tuple[str, ...]


def remittance_for(date_of_service: date, config: RuleConfig | None = None) -> RemittanceRules:
    """CARC/RARC expectations by date of service (RARC N830 marks NSA processing)."""
    c = config or RuleConfig()
    if date_of_service >= c.carc_rarc_required_from:
        return RemittanceRules("remittance-2027", True, ("N830",))
    return RemittanceRules("remittance-2022", False, ())


def switch_on(start: date | None, key_date: date) -> bool:
    return start is not None and key_date >= start
