from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rules.batching import BatchCheck, BatchItem, ViolationCode, check_batch, cpt_range
from shared.rules.calendar import federal_calendar
from shared.rules.eligibility import IneligibilityReason
from shared.rules.rulesets import RuleConfig

CAL = federal_calendar()
V = ViolationCode
ON_2022 = date(2023, 4, 3)  # before the 2026 batching rules
ON_2026 = date(2026, 11, 2)  # on or after 2026-11-01
DOS = date(2023, 3, 1)  # window: 30 business days after = 2023-04-12


def item(n: int = 1, **overrides: Any) -> BatchItem:
    fields: dict[str, Any] = {
        "claim_id": f"CLM-{n}",
        "line_number": 1,
        "provider_npi": "1234567890",
        "provider_tin": "11-1111111",
        "payer_id": "PAYER-A",
        "plan_id": "PLAN-1",
        "plan_type": "fully_insured_group",
        "service_code": "70450",
        "code_system": "CPT",
        "service_date": DOS,
        "open_negotiation_started_on": ON_2022,
        "service_category": "emergency",
        "condition_group": "head-injury",
    }
    return BatchItem(**{**fields, **overrides})


def codes(check: BatchCheck) -> list[ViolationCode]:
    return [v.code for v in check.violations]


def violation(check: BatchCheck, code: ViolationCode) -> list[str]:
    found = [v for v in check.violations if v.code == code]
    assert len(found) == 1, check.violations
    assert found[0].reason and "\n" not in found[0].reason
    return found[0].items


# -- valid batches ---------------------------------------------------------------------------------
def test_valid_2022_batch() -> None:
    check = check_batch(
        [
            item(1, service_code="70450"),
            item(2, service_code="99285", service_date=DOS + timedelta(days=3)),
            item(3, service_code="27447", service_date=date(2023, 4, 12), provider_npi="9999999999"),
        ]
    )
    assert check.ok, check.violations
    assert check.rule_set == "batching-2022"
    assert check.cap is None
    assert check.line_items == 3
    assert check.ineligibility_reason is None


def test_valid_2026_batch_by_each_relatedness_test() -> None:
    d = date(2026, 10, 26)
    items = [
        item(
            1, service_code="99285", service_date=d, encounter_id="ENC-1", open_negotiation_started_on=ON_2026
        ),
        # same encounter on consecutive dates, same claim form, unrelated code
        item(
            1,
            line_number=2,
            service_code="99223",
            service_date=d + timedelta(days=1),
            encounter_id="ENC-1",
            open_negotiation_started_on=ON_2026,
        ),
        # same service code, different claim
        item(
            2, service_code="99285", service_date=d + timedelta(days=5), open_negotiation_started_on=ON_2026
        ),
        # HCPCS Level I is the same code set as CPT
        item(
            3,
            service_code="99285",
            code_system="HCPCS",
            service_date=d + timedelta(days=6),
            open_negotiation_started_on=ON_2026,
        ),
    ]
    items = [i.model_copy(update={"condition_group": None}) for i in items]  # 2026 rules do not need it
    check = check_batch(items)
    assert check.ok, check.violations
    assert check.rule_set == "batching-2026"
    assert check.cap == 50


def test_valid_2026_batch_by_cpt_range() -> None:
    for first, other in (("70450", "71045"), ("00790", "01996"), ("80053", "88305")):
        check = check_batch(
            [
                item(1, service_code=first, open_negotiation_started_on=ON_2026, condition_group=None),
                item(2, service_code=other, open_negotiation_started_on=ON_2026, condition_group=None),
            ]
        )
        assert check.ok, (first, other, check.violations)


# -- the line-item cap -----------------------------------------------------------------------------
def _lines(n: int, on: date) -> list[BatchItem]:
    return [item(1, line_number=k, open_negotiation_started_on=on) for k in range(1, n + 1)]


def test_cap_boundary_from_2026() -> None:
    assert check_batch(_lines(50, ON_2026)).ok
    over = check_batch(_lines(51, ON_2026))
    assert codes(over) == [V.OVER_LINE_ITEM_CAP]
    assert violation(over, V.OVER_LINE_ITEM_CAP) == ["CLM-1#51"]
    assert over.line_items == 51 and over.cap == 50
    assert "51" in over.violations[0].reason and "50" in over.violations[0].reason
    assert over.ineligibility_reason is IneligibilityReason.INCORRECTLY_BATCHED


def test_cap_starts_on_the_configured_date() -> None:
    assert check_batch(_lines(51, date(2026, 11, 1))).cap == 50
    assert check_batch(_lines(51, date(2026, 10, 30))).ok
    config = RuleConfig(batch_line_item_cap_2026=25)
    assert codes(check_batch(_lines(26, ON_2026), config=config)) == [V.OVER_LINE_ITEM_CAP]


def test_no_cap_before_2026() -> None:
    check = check_batch(_lines(200, ON_2022))
    assert check.ok
    assert check.cap is None and check.line_items == 200


# -- each violation --------------------------------------------------------------------------------
def test_empty_batch() -> None:
    check = check_batch([])
    assert not check.ok
    assert codes(check) == [V.EMPTY_BATCH]
    assert check.line_items == 0


def test_different_provider() -> None:
    check = check_batch([item(1), item(2), item(3, provider_npi="2222222222", provider_tin="22-2222222")])
    assert codes(check) == [V.DIFFERENT_PROVIDER]
    assert violation(check, V.DIFFERENT_PROVIDER) == ["CLM-3#1"]
    assert "22-2222222" in check.violations[0].reason


def test_same_npi_or_same_tin_is_enough() -> None:
    assert check_batch([item(1), item(2, provider_tin="22-2222222")]).ok  # one NPI
    assert check_batch([item(1), item(2, provider_npi="2222222222")]).ok  # one TIN (group)


def test_different_issuer_for_insured_coverage() -> None:
    check = check_batch([item(1), item(2, payer_id="PAYER-B")])
    assert codes(check) == [V.DIFFERENT_PLAN]
    assert "PAYER-B" in check.violations[0].reason


def test_insured_coverage_from_one_issuer_may_mix_plans() -> None:
    assert check_batch([item(1), item(2, plan_id="PLAN-2", plan_type="individual_market")]).ok


def test_self_insured_must_be_the_same_plan_not_just_the_same_administrator() -> None:
    si = {"plan_type": "self_insured_erisa", "payer_id": "TPA-1"}
    assert check_batch([item(1, **si), item(2, **si)]).ok
    check = check_batch([item(1, **si), item(2, **si), item(3, **si, plan_id="PLAN-2")])
    assert codes(check) == [V.DIFFERENT_PLAN]
    assert violation(check, V.DIFFERENT_PLAN) == ["CLM-3#1"]
    assert "TPA-1/PLAN-2" in check.violations[0].reason


def test_self_insured_needs_plan_id() -> None:
    si = {"plan_type": "self_insured_erisa", "payer_id": "TPA-1"}
    check = check_batch([item(1, **si), item(2, **si, plan_id=None)])
    assert codes(check) == [V.DIFFERENT_PLAN]
    assert violation(check, V.DIFFERENT_PLAN) == ["CLM-2#1"]
    assert "plan_id" in check.violations[0].reason


def test_insured_and_self_insured_cannot_be_batched() -> None:
    check = check_batch([item(1), item(2), item(3, plan_type="self_insured_erisa")])
    assert codes(check) == [V.DIFFERENT_PLAN]
    assert violation(check, V.DIFFERENT_PLAN) == ["CLM-3#1"]


def test_thirty_business_day_window_boundary() -> None:
    last = CAL.business_days_after(DOS, 30)
    assert last == date(2023, 4, 12)
    assert check_batch([item(1), item(2, service_date=last)]).ok
    check = check_batch([item(1), item(2, service_date=date(2023, 4, 13))])
    assert codes(check) == [V.OUTSIDE_30_BUSINESS_DAYS]
    assert violation(check, V.OUTSIDE_30_BUSINESS_DAYS) == ["CLM-2#1"]
    assert "2023-03-01" in check.violations[0].reason and "2023-04-12" in check.violations[0].reason


def test_window_counts_from_the_earliest_date_whatever_the_order() -> None:
    check = check_batch([item(1, service_date=date(2023, 4, 13)), item(2)])
    assert violation(check, V.OUTSIDE_30_BUSINESS_DAYS) == ["CLM-1#1"]


def test_window_skips_holidays() -> None:
    # from 2023-11-01: Veterans Day (observed Fri 11-10), Thanksgiving 11-23 push day 30 to 2023-12-15
    start = date(2023, 11, 1)
    assert CAL.business_days_after(start, 30) == date(2023, 12, 15)
    assert check_batch([item(1, service_date=start), item(2, service_date=date(2023, 12, 15))]).ok
    assert not check_batch([item(1, service_date=start), item(2, service_date=date(2023, 12, 18))]).ok


def test_not_related_2022_different_conditions() -> None:
    check = check_batch([item(1), item(2), item(3, condition_group="fracture")])
    assert codes(check) == [V.NOT_RELATED]
    assert violation(check, V.NOT_RELATED) == ["CLM-3#1"]
    assert "fracture" in check.violations[0].reason


def test_not_related_2022_condition_group_missing() -> None:
    check = check_batch([item(1), item(2, condition_group=None)])
    assert codes(check) == [V.NOT_RELATED]
    assert violation(check, V.NOT_RELATED) == ["CLM-2#1"]
    assert "condition_group" in check.violations[0].reason


def test_not_related_2026() -> None:
    check = check_batch(
        [
            item(1, service_code="99285", open_negotiation_started_on=ON_2026),
            item(2, service_code="27447", open_negotiation_started_on=ON_2026),  # other code, other claim
            item(3, service_code="70450", open_negotiation_started_on=ON_2026),  # radiology, but 99285 is not
        ]
    )
    assert codes(check) == [V.NOT_RELATED]
    assert violation(check, V.NOT_RELATED) == ["CLM-2#1", "CLM-3#1"]
    assert "batching-2026" in check.violations[0].reason


def test_2026_encounter_needs_consecutive_dates_on_one_claim() -> None:
    d = date(2026, 10, 26)
    common = {"encounter_id": "ENC-1", "open_negotiation_started_on": ON_2026}
    gap = check_batch(
        [
            item(1, service_code="99285", service_date=d, **common),
            item(1, line_number=2, service_code="99223", service_date=d + timedelta(days=2), **common),
        ]
    )
    assert codes(gap) == [V.NOT_RELATED]
    other_claim = check_batch(
        [
            item(1, service_code="99285", service_date=d, **common),
            item(2, service_code="99223", service_date=d + timedelta(days=1), **common),
        ]
    )
    assert codes(other_claim) == [V.NOT_RELATED]


def test_2026_cpt_range_only_for_category_i_ranges() -> None:
    # evaluation and management codes share no listed range
    check = check_batch(
        [
            item(1, service_code="99285", open_negotiation_started_on=ON_2026),
            item(2, service_code="99284", open_negotiation_started_on=ON_2026),
        ]
    )
    assert codes(check) == [V.NOT_RELATED]


def test_air_ambulance_multiple_transports() -> None:
    air = {"service_category": "air_ambulance", "service_code": "A0431", "code_system": "HCPCS"}
    assert check_batch(
        [
            item(1, **air, air_ambulance_transport_id="T1"),
            # mileage line of the same transport: no condition group needed
            item(
                1,
                line_number=2,
                **{**air, "service_code": "A0436"},
                air_ambulance_transport_id="T1",
                condition_group=None,
            ),
        ]
    ).ok
    check = check_batch(
        [item(1, **air, air_ambulance_transport_id="T1"), item(2, **air, air_ambulance_transport_id="T2")]
    )
    assert codes(check) == [V.AIR_AMBULANCE_MULTIPLE_TRANSPORTS]
    assert "T1" in check.violations[0].reason and "T2" in check.violations[0].reason


def test_air_ambulance_needs_transport_id_and_cannot_mix() -> None:
    air = {"service_category": "air_ambulance", "service_code": "A0431", "code_system": "HCPCS"}
    missing = check_batch([item(1, **air, air_ambulance_transport_id="T1"), item(2, **air)])
    assert violation(missing, V.AIR_AMBULANCE_MULTIPLE_TRANSPORTS) == ["CLM-2#1"]
    mixed = check_batch([item(1, **air, air_ambulance_transport_id="T1"), item(2)])
    assert violation(mixed, V.AIR_AMBULANCE_MULTIPLE_TRANSPORTS) == ["CLM-2#1"]
    assert check_batch([item(1, **air)]).ok  # a single item needs no transport id


def test_incorrectly_bundled() -> None:
    check = check_batch([item(1), item(2)], bundled=True)
    assert codes(check) == [V.INCORRECTLY_BUNDLED]
    assert violation(check, V.INCORRECTLY_BUNDLED) == ["CLM-1#1", "CLM-2#1"]
    assert check.ineligibility_reason is IneligibilityReason.INCORRECTLY_BUNDLED


def test_bundled_single_claim_is_not_subject_to_batching_rules() -> None:
    # different conditions, over the cap, different NPIs and TINs: none of it matters for a bundle
    lines = [
        item(
            1,
            line_number=k,
            condition_group=f"c{k}",
            provider_npi=str(k),
            provider_tin=str(k),
            open_negotiation_started_on=ON_2026,
        )
        for k in range(1, 61)
    ]
    check = check_batch(lines, bundled=True)
    assert check.ok
    assert check.cap is None and check.line_items == 60
    assert any("not subject to the batching rules" in n for n in check.notes)


def test_mixed_rule_sets() -> None:
    check = check_batch([item(1), item(2), item(3, open_negotiation_started_on=ON_2026)])
    assert V.MIXED_RULE_SETS in codes(check)
    assert violation(check, V.MIXED_RULE_SETS) == ["CLM-3#1"]
    assert check.rule_set == "batching-2022"  # chosen by the earliest open-negotiation start
    assert "2026-11-01" in check.violations[0].reason


def test_every_violation_code_is_reachable() -> None:
    # the tests above cover each code; this keeps the enum and the tests in step
    assert {c.value for c in V} == {
        "DIFFERENT_PROVIDER",
        "DIFFERENT_PLAN",
        "OUTSIDE_30_BUSINESS_DAYS",
        "OVER_LINE_ITEM_CAP",
        "NOT_RELATED",
        "AIR_AMBULANCE_MULTIPLE_TRANSPORTS",
        "INCORRECTLY_BUNDLED",
        "EMPTY_BATCH",
        "MIXED_RULE_SETS",
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("00100", "anesthesia"),
        ("01999", "anesthesia"),
        ("00099", None),
        ("70010", "radiology"),
        ("79999", "radiology"),
        ("80047", "pathology_and_laboratory"),
        ("89398", "pathology_and_laboratory"),
        ("89399", None),
        ("0001U", None),
        ("G0480", None),
        ("99285", None),
        (" 70450 ", "radiology"),
    ],
)
def test_cpt_ranges(code: str, expected: str | None) -> None:
    assert cpt_range(code) == expected


@settings(max_examples=100, deadline=None)
@given(st.permutations(list(range(4))), st.booleans())
def test_verdict_does_not_depend_on_order(order: list[int], late: bool) -> None:
    items = [
        item(1),
        item(2, service_date=DOS + timedelta(days=7)),
        item(3, provider_npi="2222222222"),
        item(4, service_date=date(2023, 4, 13) if late else date(2023, 4, 12)),
    ]
    check = check_batch([items[k] for k in order])
    assert check.ok is (not late)
    assert sorted(ref for v in check.violations for ref in v.items) == (["CLM-4#1"] if late else [])


# -- the 90-calendar-day alternative for cooling-off items (audit 2026-11 row 16) -------------------
def test_row_16_cooling_off_items_60_calendar_days_apart_may_be_batched() -> None:
    """audit row 16: two cooling-off items 60 calendar days apart, same plan, provider and condition,
    are related by date under the alternative 90-calendar-day period (42 U.S.C. 300gg-111(c)(3)(A)(iv);
    45 CFR 149.510(c)(3)(i)(D)); b4e4bbf reported OUTSIDE_30_BUSINESS_DAYS."""
    later = DOS + timedelta(days=60)
    r = check_batch([item(1, cooling_off=True), item(2, service_date=later, cooling_off=True)])
    assert r.ok, r.violations
    assert any("90-calendar-day" in n for n in r.notes)


def test_row_16_cooling_off_window_ends_on_calendar_day_90() -> None:
    """audit row 16: day 90 after the first date of service is inside, day 91 is not."""
    ok = check_batch(
        [item(1, cooling_off=True), item(2, service_date=DOS + timedelta(days=90), cooling_off=True)]
    )
    assert ok.ok, ok.violations
    late = check_batch(
        [item(1, cooling_off=True), item(2, service_date=DOS + timedelta(days=91), cooling_off=True)]
    )
    assert [v.code for v in late.violations] == [V.OUTSIDE_30_BUSINESS_DAYS]
    assert "90 calendar days" in late.violations[0].reason and late.violations[0].items == ["CLM-2#1"]


def test_row_16_the_alternative_needs_every_item_to_be_a_cooling_off_item() -> None:
    """audit row 16: a batch mixing cooling-off and ordinary items keeps the 30-business-day window."""
    r = check_batch([item(1, cooling_off=True), item(2, service_date=DOS + timedelta(days=60))])
    assert [v.code for v in r.violations] == [V.OUTSIDE_30_BUSINESS_DAYS]
    assert "every item to be a cooling-off item" in r.violations[0].reason
