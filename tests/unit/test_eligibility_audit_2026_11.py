"""The eligibility screen against the 2026-11 regulatory audit (../shared/domain/audit-2026-11.md).

Each test names its audit row; each fails on commit b4e4bbf (either its answer differs there, or the
fact it needs did not exist and the request is refused).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.rules.calendar import federal_calendar
from shared.rules.cooling_off import initiation_window
from shared.rules.eligibility import (
    EligibilityFacts,
    EligibilityResult,
    IneligibilityReason,
    StateLawTable,
    screen,
)

CAL = federal_calendar()
R = IneligibilityReason
BASE: dict[str, Any] = {"service_category": "emergency", "plan_type": "fully_insured_group", "state": "KS"}


def facts(**overrides: Any) -> EligibilityFacts:
    return EligibilityFacts(**{**BASE, **overrides})


def hard(r: EligibilityResult) -> list[IneligibilityReason]:
    return [f.code for f in r.reasons if f.severity == "ineligible"]


# -- row 6: Maryland's All-Payer Model is for hospital facility items only ---------------------------
@pytest.mark.parametrize(
    "item",
    [
        {},  # the item is not described: the audit's case
        {"billed_as": "professional"},
        {"billed_as": "facility", "facility_type": "ambulatory_surgical_center"},
        {"service_category": "air_ambulance"},
    ],
    ids=["unknown-item", "professional", "asc", "air-ambulance"],
)
def test_row_6_maryland_insured_non_hospital_item_needs_review_not_ineligible(item: dict[str, Any]) -> None:
    """audit row 6: an insured Maryland item with all_payer_model_applies unknown that is not a
    hospital facility item is needs_review, never a hard NOT_NSA_ELIGIBLE (b4e4bbf: ineligible)."""
    r = screen(facts(state="MD", **item))
    assert r.status == "needs_review", r.reasons
    assert hard(r) == []
    assert any("All-Payer Model" in f.message for f in r.reasons)
    assert any("hospital facility" in f.message for f in r.reasons)


def test_row_6_maryland_professional_item_falls_to_the_state_law_or_federal_idr() -> None:
    """audit row 6: with the APMA answered "no", an insured professional item is screened against
    Maryland's specified state law (review), a self-insured one goes to federal IDR."""
    insured = screen(facts(state="MD", billed_as="professional", all_payer_model_applies=False))
    assert insured.status == "needs_review"
    assert "Maryland surprise-billing law" in insured.reasons[0].facts["state_law"]
    self_insured = screen(
        facts(
            state="MD",
            plan_type="self_insured_erisa",
            billed_as="professional",
            all_payer_model_applies=False,
        )
    )
    assert self_insured.status == "eligible", self_insured.reasons


@pytest.mark.parametrize("plan_type", ["fully_insured_group", "self_insured_erisa", "individual_market"])
def test_row_6_apma_governs_hospital_facility_items_for_every_plan_type(plan_type: str) -> None:
    """audit row 6: the APMA sets the amount for a hospital facility item whatever the plan type,
    self-funded included (42 U.S.C. 300gg-111(a)(3)(K)(iii))."""
    r = screen(facts(state="MD", plan_type=plan_type, billed_as="facility", facility_type="hospital"))
    assert hard(r) == [R.NOT_NSA_ELIGIBLE]
    assert r.reasons[0].facts["item"] == "hospital_facility"


# -- row 7: state laws reaching self-funded governmental plans ---------------------------------------
GOV: dict[str, Any] = {"plan_type": "non_federal_governmental", "self_funded": True}


@pytest.mark.parametrize("state", ["WA", "VA", "TX"])
def test_row_7_self_funded_governmental_plan_with_state_law_unknown_needs_review(state: str) -> None:
    """audit row 7: the state's law reaches self-funded governmental plans directly, so with the
    specified-state-law answer unknown the item needs review (b4e4bbf: eligible)."""
    r = screen(facts(state=state, **GOV))
    assert r.status == "needs_review"
    assert "self-funded non-federal governmental plans directly" in r.reasons[0].message


@pytest.mark.parametrize("state", ["WA", "VA", "TX"])
def test_row_7_self_funded_governmental_plan_with_state_law_applying_is_not_nsa_eligible(state: str) -> None:
    """audit row 7: with the state law applying, ineligible [NOT_NSA_ELIGIBLE] (b4e4bbf:
    needs_review [OTHER] "not subject to state law")."""
    r = screen(facts(state=state, specified_state_law_applies=True, **GOV))
    assert r.status == "ineligible"
    assert r.codes == [R.NOT_NSA_ELIGIBLE]


def test_row_7_governmental_reach_unknown_is_review_and_false_is_federal() -> None:
    """audit row 7: where the table does not know whether the law reaches governmental plans (null)
    the item needs review; a table that says it does not is federal IDR."""
    r = screen(facts(state="CA", **GOV))
    assert r.status == "needs_review"
    assert "not known whether it reaches self-funded governmental plans" in r.reasons[0].message
    table = StateLawTable.model_validate(
        {
            "source": "test",
            "as_of": "2026-12-01",
            "confidence": "L",
            "note": "",
            "states": {
                "KS": {
                    "name": "Kansas",
                    "applies_to": ["fully_insured_group"],
                    "applies_to_self_funded_governmental": False,
                    "source": "test",
                    "verified": False,
                }
            },
        }
    )
    assert screen(facts(**GOV), state_laws=table).status == "eligible"


# -- row 8: Alaska ----------------------------------------------------------------------------------
@pytest.mark.parametrize("plan_type", ["fully_insured_group", "individual_market"])
def test_row_8_alaska_insured_claim_needs_review(plan_type: str) -> None:
    """audit row 8: Alaska is in the state table (fully insured, individual): review, not eligible."""
    r = screen(facts(state="AK", plan_type=plan_type))
    assert r.status == "needs_review"
    assert "Alaska" in r.reasons[0].message
    assert any("repealed" in n for n in r.notes)


# -- rows 3 and 9: the one cooling-off window function -----------------------------------------------
PROVIDER_PRIOR: dict[str, Any] = {"same_parties_and_item_as_prior": True, "prior_initiated_by": "provider"}


def test_row_9_open_negotiation_ending_on_the_last_cooling_off_day_gets_the_30_day_window() -> None:
    """audit row 9: B30 (2023-04-14) is the last cooling-off day, so IDR may be initiated within 30
    business days from the day after (through 2023-05-26); b4e4bbf: INITIATION_LATE."""
    r = screen(
        facts(
            **PROVIDER_PRIOR,
            prior_determination_on=date(2023, 1, 14),
            open_negotiation_started_on=date(2023, 3, 6),
            idr_initiated_on=date(2023, 4, 25),
        )
    )
    assert r.status == "eligible", r.reasons
    assert any("2023-05-26" in n for n in r.notes)


def test_row_9_open_negotiation_ending_before_the_determination_gets_no_relief() -> None:
    """audit row 9: B30 falls on the determination day, B31 inside the cooling-off: the normal window
    applies (and is barred), so 2023-05-01 is late; b4e4bbf gave the 30-day window (eligible)."""
    r = screen(
        facts(
            same_parties_and_item_as_prior=True,
            prior_determination_on=date(2023, 4, 14),
            open_negotiation_started_on=date(2023, 3, 6),
            idr_initiated_on=date(2023, 5, 1),
        )
    )
    assert r.status == "ineligible"
    assert hard(r) == [R.INITIATION_LATE]
    assert r.reasons[0].facts["idr_initiation_deadline"] == "2023-04-20"


@settings(max_examples=300, deadline=None)
@given(
    on=st.dates(min_value=date(2023, 1, 2), max_value=date(2026, 6, 30)),
    det_before=st.integers(min_value=-120, max_value=40),
    n=st.integers(min_value=31, max_value=120),
)
def test_row_3_and_9_screen_uses_the_shared_window_function(on: date, det_before: int, n: int) -> None:
    """audit rows 3 and 9: the screen's deadline is the one :func:`initiation_window` picks (the same
    function the workflow uses): post-cooling-off only when B30 falls inside the cooling-off."""
    period_end = CAL.business_day_beginning(on, 30)
    det = period_end + timedelta(days=det_before)
    ends = det + timedelta(days=90)
    idr = CAL.business_day_beginning(on, n)
    r = screen(
        facts(
            **PROVIDER_PRIOR, prior_determination_on=det, open_negotiation_started_on=on, idr_initiated_on=idr
        )
    )
    if initiation_window(period_end, det, ends) == "post_cooling_off":
        deadline = CAL.business_day_beginning(ends + timedelta(days=1), 30)
    else:
        deadline = CAL.business_day_beginning(on, 34)
    barred = det < idr <= ends
    expected = ([R.INITIATION_LATE] if idr > deadline else []) + (
        [R.COOLING_OFF_NOT_COMPLETED] if barred else []
    )
    assert r.codes == expected


# -- row 10: only the party that initiated the prior dispute is barred --------------------------------
ROW_10: dict[str, Any] = {
    "same_parties_and_item_as_prior": True,
    "prior_determination_on": date(2025, 3, 3),
    "open_negotiation_started_on": date(2025, 3, 14),
    "idr_initiated_on": date(2025, 4, 29),
}


def test_row_10_prior_dispute_initiated_by_the_plan_does_not_bar_the_provider() -> None:
    """audit row 10: the plan initiated the prior dispute, so the provider may initiate inside its
    window (b4e4bbf: COOLING_OFF_NOT_COMPLETED, and no way to say who initiated)."""
    assert screen(facts(**ROW_10, prior_initiated_by="plan")).status == "eligible"
    barred = screen(facts(**ROW_10, prior_initiated_by="provider"))
    assert barred.codes == [R.COOLING_OFF_NOT_COMPLETED]


def test_row_10_unknown_initiator_needs_review_when_it_decides_the_answer() -> None:
    """audit row 10: with prior_initiated_by unknown the two possibilities differ, so review."""
    r = screen(facts(**ROW_10))
    assert r.status == "needs_review"
    assert "prior_initiated_by" in r.reasons[0].message
    assert "COOLING_OFF_NOT_COMPLETED" in r.reasons[0].message


# -- row 13: IDR with open negotiation unknown --------------------------------------------------------
def test_row_13_idr_with_open_negotiation_unknown_needs_review() -> None:
    """audit row 13: the audit's probe gives needs_review, not eligible."""
    r = screen(facts(state="AL", idr_initiated_on=date(2025, 3, 25)))
    assert r.status == "needs_review"
    assert "open_negotiation_started_on" in r.reasons[0].message


# -- row 14: the batched cooling-off by the prior dispute's open negotiation --------------------------
ROW_14: dict[str, Any] = {
    "same_parties_and_item_as_prior": True,
    "prior_dispute_batched": True,
    "prior_determination_on": date(2026, 10, 1),
    "open_negotiation_started_on": date(2026, 11, 2),
    "idr_initiated_on": date(2026, 12, 17),
}


def test_row_14_prior_batched_determination_before_2026_rules_is_90_calendar_days() -> None:
    """audit row 14: the prior batched dispute was determined 2026-10-01, so its open negotiation
    began before 2026-11-01: 90 calendar days, to 2026-12-30 (b4e4bbf: eligible, by the current
    claim's open negotiation); the explanation says what was assumed."""
    r = screen(facts(**ROW_14, prior_initiated_by="provider"))
    assert r.codes == [R.COOLING_OFF_NOT_COMPLETED]
    assert r.reasons[0].facts["cooling_off_ends"] == "2026-12-30"
    assert "before 2026-11-01" in r.explanation
    assert "batching-2026" not in r.rule_sets
    # without the initiator (the b4e4bbf request shape): not eligible either
    assert screen(facts(**ROW_14)).status == "needs_review"


def test_row_14_prior_open_negotiation_start_picks_the_rule_set() -> None:
    """audit row 14: a prior batched dispute whose open negotiation began on or after 2026-11-01 has
    the 30-business-day cooling-off; without that date, both are tried and the item needs review
    when they differ, saying so."""
    base = {
        **ROW_14,
        "prior_initiated_by": "provider",
        "prior_determination_on": date(2027, 1, 4),
        "open_negotiation_started_on": date(2027, 1, 4),
        "idr_initiated_on": date(2027, 2, 22),
    }
    known = screen(facts(**base, prior_open_negotiation_started_on=date(2026, 11, 2)))
    assert "batching-2026" in known.rule_sets
    assert known.status == "eligible", known.reasons
    old = screen(facts(**base, prior_open_negotiation_started_on=date(2026, 10, 30)))
    assert old.codes == [R.COOLING_OFF_NOT_COMPLETED]
    unknown = screen(facts(**base))
    assert unknown.status == "needs_review"
    assert "prior_open_negotiation_started_on" in unknown.explanation


def test_section_3_bundled_prior_dispute_uses_the_single_cooling_off() -> None:
    """audit section 3 (bundled vs batched): a bundled prior dispute is a single determination, so
    its cooling-off is 90 calendar days even under the 2026 batching rules."""
    r = screen(
        facts(
            **{**ROW_14, "prior_dispute_batched": False},
            prior_dispute_bundled=True,
            prior_initiated_by="provider",
            prior_open_negotiation_started_on=date(2026, 11, 2),
        )
    )
    assert r.reasons[0].facts["cooling_off_ends"] == "2026-12-30"
    with pytest.raises(ValidationError):
        facts(prior_dispute_batched=True, prior_dispute_bundled=True)


# -- row 19: open negotiation before the initial payment ---------------------------------------------
def test_row_19_open_negotiation_before_the_initial_payment_is_flagged() -> None:
    """audit row 19: the audit's probe gives needs_review (b4e4bbf: eligible)."""
    r = screen(
        facts(initial_payment_received_on=date(2025, 2, 10), open_negotiation_started_on=date(2025, 2, 3))
    )
    assert r.status == "needs_review"
    assert "before the initial payment" in r.reasons[0].message


# -- section 3: facts the request could not express ---------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"provider_nonparticipating": False}, "provider_nonparticipating"),
        (
            {"service_category": "non_emergency_at_facility", "facility_participating": False},
            "facility_participating",
        ),
        ({"service_category": "non_emergency_at_facility", "facility_type": "other"}, "facility_type"),
        ({"date_of_service": date(2021, 12, 15)}, "date_of_service"),
    ],
)
def test_section_3_facts_that_make_an_item_ineligible(extra: dict[str, Any], field: str) -> None:
    """audit section 3: participating provider, out-of-network or office setting for a non-emergency
    item, and a date of service before any NSA plan year, each give a hard finding."""
    r = screen(facts(**extra))
    assert r.status == "ineligible"
    assert field in r.reasons[0].facts


def test_section_3_unknown_facts_are_never_silently_eligible() -> None:
    """audit section 3: an unknown fact the answer turns on gives review; one it does not is listed
    as not checked."""
    early = screen(facts(date_of_service=date(2022, 6, 1)))
    assert early.status == "needs_review" and "plan_year_starts_on" in early.reasons[0].message
    assert screen(facts(date_of_service=date(2023, 6, 1))).status == "eligible"
    consent = screen(facts(service_category="post_stabilization", notice_and_consent_given=True))
    assert consent.status == "needs_review"
    assert "can_travel_by_nonmedical_transport" in consent.reasons[0].message
    plain = screen(facts(service_category="non_emergency_at_facility"))
    assert plain.status == "eligible"
    assert "provider_nonparticipating" in plain.explanation and "facility_type" in plain.explanation


@pytest.mark.parametrize(
    "extra",
    [
        {"service_category": "post_stabilization", "can_travel_by_nonmedical_transport": False},
        {"service_category": "post_stabilization", "in_condition_to_consent": False},
        {"service_category": "non_emergency_at_facility", "unforeseen_urgent_medical_need": True},
        {"service_category": "non_emergency_at_facility", "no_participating_provider_available": True},
    ],
)
def test_section_3_consent_that_cannot_waive(extra: dict[str, Any]) -> None:
    """audit section 3: post-stabilization conditions other than consent, and the consent
    exceptions: consent does not waive the protections (b4e4bbf: NOT_NSA_ELIGIBLE)."""
    r = screen(facts(notice_and_consent_given=True, **extra))
    assert r.status == "eligible", r.reasons
    assert any("cannot waive" in n or "stay emergency services" in n for n in r.notes)
