from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.rules.calendar import federal_calendar
from shared.rules.eligibility import (
    EligibilityFacts,
    EligibilityResult,
    IneligibilityReason,
    StateLawTable,
    load_state_laws,
    screen,
)

CAL = federal_calendar()
R = IneligibilityReason
CMS_ON = date(2023, 3, 6)  # Part A item 5: window 2023-04-17..2023-04-20

# Kansas is not in the state-law table, so the base claim is eligible
BASE: dict[str, Any] = {"service_category": "emergency", "plan_type": "fully_insured_group", "state": "KS"}


def facts(**overrides: Any) -> EligibilityFacts:
    return EligibilityFacts(**{**BASE, **overrides})


def only(result: EligibilityResult, code: IneligibilityReason) -> None:
    assert [f.code for f in result.reasons] == [code], result.reasons


def test_base_claim_is_eligible_with_an_explanation() -> None:
    r = screen(facts())
    assert r.status == "eligible"
    assert r.reasons == []
    assert r.explanation.startswith("Eligible for federal IDR")
    assert "not checked" in r.explanation  # a partial screen says what it could not check


# every condition of a valid notice and consent, known and met (45 CFR 149.110(c)(2)(ii), 149.420)
CONSENT_CONDITIONS: dict[str, Any] = {
    "no_participating_provider_available": False,
    "unforeseen_urgent_medical_need": False,
    "can_travel_by_nonmedical_transport": True,
    "in_condition_to_consent": True,
}
HOSPITAL_ITEM: dict[str, Any] = {"billed_as": "facility", "facility_type": "hospital"}


# One row per way the screen can produce each reason: (overrides, code, words in the message, facts).
CASES: list[tuple[str, dict[str, Any], IneligibilityReason, list[str], dict[str, str]]] = [
    *[
        (f"program-{p}", {"plan_type": p}, R.NOT_NSA_ELIGIBLE, [p, "public program"], {"plan_type": p})
        for p in ("medicare", "medicare_advantage", "medicaid", "chip", "tricare", "va", "ihs")
    ],
    (
        "uninsured",
        {"plan_type": "uninsured"},
        R.NOT_NSA_ELIGIBLE,
        ["uninsured", "patient-provider dispute resolution"],
        {"plan_type": "uninsured"},
    ),
    *[
        (f"plan-{p}", {"plan_type": p}, R.PLAN_NOT_SUBJECT_TO_NSA, [p], {"plan_type": p})
        for p in ("short_term_limited_duration", "excepted_benefits", "retiree_only")
    ],
    (
        "ground-ambulance",
        {"service_category": "ground_ambulance"},
        R.NOT_NSA_ELIGIBLE,
        ["ground ambulance"],
        {"service_category": "ground_ambulance"},
    ),
    *[
        (
            f"consent-{cat}",
            {"service_category": cat, "notice_and_consent_given": True, **CONSENT_CONDITIONS},
            R.NOT_NSA_ELIGIBLE,
            ["notice and consent", cat],
            {"service_category": cat, "notice_and_consent_given": "true", "ancillary_service": "false"},
        )
        for cat in ("post_stabilization", "non_emergency_at_facility")
    ],
    (
        "all-payer-model",
        {"all_payer_model_applies": True, "state": "MD"},
        R.NOT_NSA_ELIGIBLE,
        ["All-Payer Model", "MD"],
        {"all_payer_model_applies": "true", "state": "MD"},
    ),
    (
        "specified-state-law",
        {"specified_state_law_applies": True, "state": "TX"},
        R.NOT_NSA_ELIGIBLE,
        ["specified state law", "TX"],
        {"specified_state_law_applies": "true", "state": "TX"},
    ),
    (
        "maryland-table-hospital-facility-item",
        {"state": "MD", **HOSPITAL_ITEM},
        R.NOT_NSA_ELIGIBLE,
        ["Maryland All-Payer Model", "hospital facility items"],
        {"state": "MD", "state_law": "Maryland All-Payer Model", "item": "hospital_facility"},
    ),
    (
        "not-covered",
        {"covered_by_plan": False},
        R.NOT_COVERED_BY_PLAN,
        ["not covered"],
        {"covered_by_plan": "false"},
    ),
    (
        "plan-year",
        {"plan_year_starts_on": date(2021, 7, 1)},
        R.BEFORE_APPLICABLE_PLAN_YEAR,
        ["2021-07-01", "2022-01-01"],
        {"plan_year_starts_on": "2021-07-01", "nsa_plan_years_from": "2022-01-01"},
    ),
    (
        "on-never-started",
        {"initial_payment_received_on": date(2023, 1, 3), "idr_initiated_on": date(2023, 3, 1)},
        R.OPEN_NEGOTIATION_NOT_INITIATED,
        ["2023-03-01", "2023-02-14"],
        {
            "initial_payment_received_on": "2023-01-03",
            "open_negotiation_initiation_deadline": "2023-02-14",
            "idr_initiated_on": "2023-03-01",
        },
    ),
    (
        "on-started-late",
        {"initial_payment_received_on": date(2023, 1, 3), "open_negotiation_started_on": date(2023, 2, 15)},
        R.OPEN_NEGOTIATION_NOT_INITIATED,
        ["2023-02-15", "2023-02-14"],
        {"open_negotiation_started_on": "2023-02-15", "open_negotiation_initiation_deadline": "2023-02-14"},
    ),
    (
        "on-not-complete",
        {"open_negotiation_started_on": CMS_ON, "idr_initiated_on": date(2023, 4, 14)},
        R.OPEN_NEGOTIATION_NOT_COMPLETE,
        ["2023-04-14", "2023-04-17"],
        {
            "idr_initiated_on": "2023-04-14",
            "open_negotiation_period_end": "2023-04-14",
            "idr_initiation_window_opens": "2023-04-17",
        },
    ),
    (
        "initiation-late",
        {"open_negotiation_started_on": CMS_ON, "idr_initiated_on": date(2023, 4, 21)},
        R.INITIATION_LATE,
        ["2023-04-21", "2023-04-20"],
        {"idr_initiated_on": "2023-04-21", "idr_initiation_deadline": "2023-04-20"},
    ),
    (
        "initiation-late-after-extension",
        {
            "open_negotiation_started_on": CMS_ON,
            "idr_initiated_on": date(2023, 4, 21),
            "extension_until": date(2023, 4, 20),
        },
        R.INITIATION_LATE,
        ["2023-04-21", "extension"],
        {"idr_initiated_on": "2023-04-21", "extension_until": "2023-04-20"},
    ),
    (
        "notice-not-submitted",
        {"notice_of_initiation_submitted": False},
        R.NOTICE_OF_INITIATION_NOT_SUBMITTED,
        ["Notice of IDR Initiation"],
        {"notice_of_initiation_submitted": "false"},
    ),
    (
        "cooling-off-90-calendar-days",
        {
            "prior_determination_on": date(2023, 3, 1),
            "same_parties_and_item_as_prior": True,
            "prior_initiated_by": "provider",
            "open_negotiation_started_on": CMS_ON,
            "idr_initiated_on": date(2023, 4, 18),
        },
        R.COOLING_OFF_NOT_COMPLETED,
        ["2023-04-18", "2023-03-01", "2023-05-30"],
        {
            "prior_determination_on": "2023-03-01",
            "cooling_off_ends": "2023-05-30",
            "idr_initiated_on": "2023-04-18",
        },
    ),
    (
        "cooling-off-batched-2026-business-days",
        {
            "prior_determination_on": date(2026, 11, 2),
            "same_parties_and_item_as_prior": True,
            "prior_initiated_by": "provider",
            "prior_dispute_batched": True,
            "prior_open_negotiation_started_on": date(2026, 11, 2),
            "open_negotiation_started_on": date(2026, 11, 2),
            "idr_initiated_on": date(2026, 12, 16),
        },
        R.COOLING_OFF_NOT_COMPLETED,
        ["2026-12-16"],
        {"cooling_off_ends": "2026-12-16", "prior_dispute_batched": "true"},
    ),
    (
        "cooling-off-without-on-date",
        {
            "prior_determination_on": date(2023, 3, 1),
            "same_parties_and_item_as_prior": True,
            "prior_initiated_by": "provider",
            "idr_initiated_on": date(2023, 5, 30),
        },
        R.COOLING_OFF_NOT_COMPLETED,
        ["2023-05-30"],
        {"cooling_off_ends": "2023-05-30", "idr_initiated_on": "2023-05-30"},
    ),
    (
        "duplicate",
        {"duplicate_of_open_dispute": True},
        R.DUPLICATE_DLI,
        ["open dispute"],
        {"duplicate_of_open_dispute": "true"},
    ),
]


@pytest.mark.parametrize(
    ("overrides", "code", "words", "expected_facts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_ineligibility_reason(
    overrides: dict[str, Any], code: IneligibilityReason, words: list[str], expected_facts: dict[str, str]
) -> None:
    r = screen(facts(**overrides))
    assert r.status == "ineligible"
    hard = [f for f in r.reasons if f.severity == "ineligible"]
    assert [f.code for f in hard] == [code], hard
    finding = hard[0]
    for w in words:
        assert w in finding.message, (w, finding.message)
    assert "\n" not in finding.message
    assert expected_facts.items() <= finding.facts.items(), finding.facts
    assert code.value in r.explanation


# Review items: (overrides, words in the message, facts).
REVIEW_CASES: list[tuple[str, dict[str, Any], list[str], dict[str, str]]] = [
    (
        "fully-insured-in-listed-state",
        {"state": "TX"},
        ["Texas", "specified state law", "Peterson-KFF", "confidence L"],
        {"state": "TX", "state_law": "Texas surprise-billing law"},
    ),
    (
        "individual-market-lower-case-state",
        {"state": "nj", "plan_type": "individual_market"},
        ["New Jersey"],
        {"state": "NJ"},
    ),
    (
        "self-insured-opted-in",
        {"state": "NJ", "plan_type": "self_insured_erisa", "self_funded_opt_in": True},
        ["opted into", "New Jersey"],
        {"self_funded_opt_in": "true", "state_law": "New Jersey surprise-billing law"},
    ),
    (
        "self-insured-opted-in-where-table-does-not-know-opt-in",
        {"state": "TX", "plan_type": "self_insured_erisa", "self_funded_opt_in": True},
        ["does not know whether self-insured plans may opt in", "Texas"],
        {"self_funded_opt_in": "true"},
    ),
    (
        "self-insured-opted-in-unlisted-state",
        {"state": "KS", "plan_type": "self_insured_erisa", "self_funded_opt_in": True},
        ["KS is not in the state-law table"],
        {"state": "KS"},
    ),
    (
        "governmental-plan-funding-unknown",
        {"state": "TX", "plan_type": "non_federal_governmental"},
        ["fully insured or self-funded", "Texas"],
        {"plan_type": "non_federal_governmental"},
    ),
    (
        "church-plan-insured",
        {"state": "TX", "plan_type": "church_plan", "self_funded": False},
        ["Texas"],
        {"plan_type": "church_plan"},
    ),
    (
        "self-insured-in-all-payer-state",
        {"state": "MD", "plan_type": "self_insured_erisa"},
        ["All-Payer Model", "Maryland"],
        {"state_law": "Maryland All-Payer Model"},
    ),
    (
        "state-law-said-to-apply-to-self-insured-without-opt-in",
        {"state": "TX", "plan_type": "self_insured_erisa", "specified_state_law_applies": True},
        ["has not opted in"],
        {"specified_state_law_applies": "true"},
    ),
]


@pytest.mark.parametrize(
    ("overrides", "words", "expected_facts"), [c[1:] for c in REVIEW_CASES], ids=[c[0] for c in REVIEW_CASES]
)
def test_review_items_use_other(
    overrides: dict[str, Any], words: list[str], expected_facts: dict[str, str]
) -> None:
    r = screen(facts(**overrides))
    assert r.status == "needs_review"
    assert [(f.code, f.severity) for f in r.reasons] == [(R.OTHER, "review")]
    for w in words:
        assert w in r.reasons[0].message, (w, r.reasons[0].message)
    assert expected_facts.items() <= r.reasons[0].facts.items()
    assert r.explanation.startswith("Needs review")


def test_every_reason_the_screen_can_produce_is_tested() -> None:
    tested = {c[2] for c in CASES} | {R.OTHER}
    # batching and bundling reasons come from shared.rules.batching (BatchCheck.ineligibility_reason)
    assert tested == set(R) - {R.INCORRECTLY_BATCHED, R.INCORRECTLY_BUNDLED}


def test_reason_enum_is_exactly_part_b_1_3() -> None:
    assert [r.value for r in R] == [
        "INITIATION_LATE",
        "INCORRECTLY_BATCHED",
        "INCORRECTLY_BUNDLED",
        "NOT_COVERED_BY_PLAN",
        "NOT_NSA_ELIGIBLE",
        "NOTICE_OF_INITIATION_NOT_SUBMITTED",
        "OPEN_NEGOTIATION_NOT_COMPLETE",
        "OPEN_NEGOTIATION_NOT_INITIATED",
        "PLAN_NOT_SUBJECT_TO_NSA",
        "BEFORE_APPLICABLE_PLAN_YEAR",
        "COOLING_OFF_NOT_COMPLETED",
        "DUPLICATE_DLI",
        "OTHER",
    ]


# -- the CMS worked example (Part A item 5) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("initiated", "extension", "status", "codes"),
    [
        (date(2023, 4, 14), None, "ineligible", [R.OPEN_NEGOTIATION_NOT_COMPLETE]),
        (date(2023, 4, 17), None, "eligible", []),
        (date(2023, 4, 20), None, "eligible", []),
        (date(2023, 4, 21), None, "ineligible", [R.INITIATION_LATE]),
        (date(2023, 4, 21), date(2023, 4, 28), "eligible", []),
        (date(2023, 4, 28), date(2023, 4, 28), "eligible", []),
        (date(2023, 5, 1), date(2023, 4, 28), "ineligible", [R.INITIATION_LATE]),
    ],
)
def test_cms_worked_example(initiated: date, extension: date | None, status: str, codes: list[R]) -> None:
    r = screen(
        facts(open_negotiation_started_on=CMS_ON, idr_initiated_on=initiated, extension_until=extension)
    )
    assert r.status == status
    assert r.codes == codes
    if extension is not None and status == "eligible" and initiated > date(2023, 4, 20):
        assert any("extension" in n for n in r.notes)


def test_extension_also_covers_a_late_open_negotiation_notice() -> None:
    r = screen(
        facts(
            initial_payment_received_on=date(2023, 1, 3),
            open_negotiation_started_on=date(2023, 2, 15),
            extension_until=date(2023, 2, 20),
        )
    )
    assert r.status == "eligible"
    assert any("2023-02-20" in n for n in r.notes)


# -- state laws ------------------------------------------------------------------------------------
def test_needs_review_for_fully_insured_claim_in_listed_state() -> None:
    r = screen(facts(state="TX"))
    assert r.status == "needs_review"
    assert r.codes == [R.OTHER]
    assert "Texas" in r.reasons[0].message
    assert any(rs.startswith("state-laws@") for rs in r.rule_sets)


def test_self_insured_erisa_emergency_claim_in_same_state_without_opt_in_is_eligible() -> None:
    r = screen(facts(state="TX", plan_type="self_insured_erisa", service_category="emergency"))
    assert r.status == "eligible"
    assert r.reasons == []
    r2 = screen(facts(state="TX", plan_type="self_insured_erisa", self_funded_opt_in=False))
    assert r2.status == "eligible"


def test_caller_answer_overrides_the_table() -> None:
    assert screen(facts(state="TX", specified_state_law_applies=False)).status == "eligible"
    assert screen(
        facts(state="MD", all_payer_model_applies=False, specified_state_law_applies=False)
    ).status == ("eligible")


def test_fehb_is_not_screened_against_state_law() -> None:
    assert screen(facts(state="TX", plan_type="fehb")).status == "eligible"


def test_packaged_state_law_table() -> None:
    table = load_state_laws()
    assert len(table.states) == 23  # the 22 of Part B 1.2 and Alaska (audit row 8)
    assert table.confidence.startswith("L/M")
    assert "Peterson-KFF" in table.source and "reviewed state by state" in table.source
    md = table.get("md")
    assert md is not None and md.all_payer_model is not None
    assert md.all_payer_model.items == ["hospital_facility"]
    assert [s for s, law in table.states.items() if law.all_payer_model] == ["MD"]
    for law in table.states.values():
        assert "fully_insured_group" in law.applies_to
        assert "self_insured_erisa" not in law.applies_to


def test_state_law_table_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "laws.json"
    path.write_text(
        json.dumps(
            {
                "source": "test",
                "as_of": "2026-01-01",
                "confidence": "L",
                "note": "",
                "states": {
                    "KS": {
                        "name": "Kansas",
                        "applies_to": ["fully_insured_group"],
                        "self_funded_opt_in_allowed": False,
                        "all_payer_model": False,
                    }
                },
            }
        )
    )
    table = load_state_laws(path)
    r = screen(facts(state="KS"), state_laws=table)
    assert r.status == "needs_review"
    assert "state-laws@2026-01-01" in r.rule_sets
    # the individual market is not in this table's applies_to
    assert screen(facts(state="KS", plan_type="individual_market"), state_laws=table).status == "eligible"


def test_state_law_table_rejects_bad_state_keys() -> None:
    with pytest.raises(ValidationError):
        StateLawTable.model_validate(
            {
                "source": "x",
                "as_of": "2026-01-01",
                "confidence": "L",
                "note": "",
                "states": {"Texas": {"name": "Texas", "applies_to": [], "self_funded_opt_in_allowed": False}},
            }
        )


# -- notice and consent ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("category", "ancillary"),
    [
        ("non_emergency_at_facility", True),
        ("post_stabilization", True),
        ("emergency", False),
        ("air_ambulance", False),
    ],
)
def test_consent_cannot_waive_ancillary_or_emergency(category: str, ancillary: bool) -> None:
    r = screen(facts(service_category=category, notice_and_consent_given=True, ancillary_service=ancillary))
    assert r.status == "eligible", r.reasons
    if category != "air_ambulance":
        assert any("cannot waive" in n for n in r.notes)


def test_ancillary_consent_contrasted_with_non_ancillary() -> None:
    waived = screen(
        facts(
            service_category="non_emergency_at_facility", notice_and_consent_given=True, **CONSENT_CONDITIONS
        )
    )
    kept = screen(
        facts(
            service_category="non_emergency_at_facility",
            notice_and_consent_given=True,
            ancillary_service=True,
        )
    )
    assert waived.codes == [R.NOT_NSA_ELIGIBLE]
    assert kept.status == "eligible"


# -- cooling-off and the post-cooling-off window (D3b, D4) -----------------------------------------
COOLING: dict[str, Any] = {
    "prior_determination_on": date(2023, 3, 1),
    "same_parties_and_item_as_prior": True,
    "prior_initiated_by": "provider",
}


@pytest.mark.parametrize(
    ("initiated", "codes"),
    [
        (date(2023, 5, 30), [R.COOLING_OFF_NOT_COMPLETED]),  # last day of the 90 calendar days
        (date(2023, 5, 31), []),  # day 1 of the post-cooling-off window
        (date(2023, 7, 13), []),  # business day 30 of it
        (date(2023, 7, 14), [R.INITIATION_LATE]),
    ],
)
def test_window_held_up_by_cooling_off(initiated: date, codes: list[R]) -> None:
    r = screen(facts(**COOLING, open_negotiation_started_on=CMS_ON, idr_initiated_on=initiated))
    assert r.codes == codes
    if codes == [R.INITIATION_LATE]:
        assert r.reasons[0].facts["post_cooling_off_initiation_deadline"] == "2023-07-13"


def test_cooling_off_does_not_apply_to_other_parties_or_items() -> None:
    r = screen(
        facts(
            prior_determination_on=date(2023, 3, 1),
            same_parties_and_item_as_prior=False,
            open_negotiation_started_on=CMS_ON,
            idr_initiated_on=date(2023, 4, 18),
        )
    )
    assert r.status == "eligible"


def test_batched_cooling_off_follows_the_rule_set() -> None:
    base = {
        "prior_determination_on": date(2026, 11, 2),
        "same_parties_and_item_as_prior": True,
        "prior_initiated_by": "provider",
        "open_negotiation_started_on": date(2026, 11, 2),
        "idr_initiated_on": date(2026, 12, 17),
    }
    batched = screen(
        facts(**base, prior_dispute_batched=True, prior_open_negotiation_started_on=date(2026, 11, 2))
    )
    assert batched.status == "eligible"
    assert "batching-2026" in batched.rule_sets
    single = screen(facts(**base))  # 90 calendar days: through 2027-01-31
    assert single.codes == [R.COOLING_OFF_NOT_COMPLETED]
    assert single.reasons[0].facts["cooling_off_ends"] == "2027-01-31"


def test_batched_cooling_off_before_2026_is_90_calendar_days() -> None:
    r = screen(facts(**COOLING, prior_dispute_batched=True, idr_initiated_on=date(2023, 5, 30)))
    assert r.status == "ineligible"
    assert [f.code for f in r.reasons if f.severity == "ineligible"] == [R.COOLING_OFF_NOT_COMPLETED]
    assert "batching-2022" in r.rule_sets


# -- general ---------------------------------------------------------------------------------------
def test_every_failing_check_is_reported() -> None:
    r = screen(
        facts(
            covered_by_plan=False,
            duplicate_of_open_dispute=True,
            open_negotiation_started_on=CMS_ON,
            idr_initiated_on=date(2023, 4, 21),
        )
    )
    assert r.status == "ineligible"
    assert set(r.codes) == {R.NOT_COVERED_BY_PLAN, R.DUPLICATE_DLI, R.INITIATION_LATE}


def test_hard_reason_outranks_review() -> None:
    r = screen(facts(state="TX", duplicate_of_open_dispute=True))
    assert r.status == "ineligible"
    assert [f.severity for f in r.reasons] == ["ineligible", "review"]


def test_facts_are_strict() -> None:
    with pytest.raises(ValidationError):
        EligibilityFacts(**BASE, config=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        facts(plan_type="hmo")
    with pytest.raises(ValidationError):
        facts(state="TEX")
    assert facts(state="tx").state == "TX"


@settings(max_examples=200, deadline=None)
@given(
    on=st.dates(min_value=date(2022, 1, 1), max_value=date(2044, 6, 30)),
    n=st.integers(min_value=1, max_value=45),
)
def test_initiation_window_is_business_days_31_to_34(on: date, n: int) -> None:
    initiated = CAL.business_day_beginning(on, n)
    r = screen(facts(open_negotiation_started_on=on, idr_initiated_on=initiated))
    if n < 31:
        assert r.codes == [R.OPEN_NEGOTIATION_NOT_COMPLETE]
    elif n <= 34:
        assert r.status == "eligible"
    else:
        assert r.codes == [R.INITIATION_LATE]
