"""Eligibility screen for federal IDR (idr-rules Part B section 1, deadlines D1-D4 and D12).

:func:`screen` runs every check it has facts for and reports each failure as a :class:`Finding`
with one of the certified IDR entities' closure reasons (Part B 1.3). A fact left ``None`` is
unknown: checks that need it are skipped when the answer does not turn on it (and listed as "not
checked"), and the item needs review when it does. Hard findings make the claim ``ineligible``;
findings that need a person (for example an unknown specified-state-law answer in a state listed in
the state-law table) make it ``needs_review``.

The checks live by concept: scope here; state laws and All-Payer Models in
:mod:`shared.rules.state_scope` (the table is data, ``data/state_laws.json``); timing and the
cooling-off in :mod:`shared.rules.eligibility_timing`.
"""

from __future__ import annotations

from datetime import date

from shared.rules.calendar import BusinessCalendar, federal_calendar
from shared.rules.eligibility_model import (
    CONSENT_WAIVABLE,
    EXCLUDED_PROGRAMS,
    NOT_SUBJECT_PLANS,
    EligibilityFacts,
    EligibilityResult,
    FacilityType,
    Finding,
    IneligibilityReason,
    PlanType,
    ScreenState,
    ServiceCategory,
    Severity,
    Status,
    iso,
    yn,
)
from shared.rules.eligibility_timing import COOLING_OFF_CALENDAR_DAYS, TIMING_RULE_SET, check_timing
from shared.rules.rulesets import RuleConfig
from shared.rules.state_scope import (
    STATE_LAWS_FILE,
    AllPayerModel,
    StateLaw,
    StateLawTable,
    check_state_law,
    load_state_laws,
)

__all__ = [
    "CONSENT_WAIVABLE",
    "COOLING_OFF_CALENDAR_DAYS",
    "EXCLUDED_PROGRAMS",
    "NOT_SUBJECT_PLANS",
    "NSA_PLAN_YEARS_FROM",
    "SCOPE_RULE_SET",
    "STATE_LAWS_FILE",
    "TIMING_RULE_SET",
    "AllPayerModel",
    "EligibilityFacts",
    "EligibilityResult",
    "FacilityType",
    "Finding",
    "IneligibilityReason",
    "PlanType",
    "ServiceCategory",
    "Severity",
    "StateLaw",
    "StateLawTable",
    "Status",
    "load_state_laws",
    "screen",
]

SCOPE_RULE_SET = "nsa-scope-2022"  # Part B 1.1 and 1.2
NSA_PLAN_YEARS_FROM = date(2022, 1, 1)
# a plan year is at most 12 months, so a service on or after this date is in a plan year that began
# on or after NSA_PLAN_YEARS_FROM
ANY_PLAN_YEAR_IN_SCOPE_FROM = date(2023, 1, 1)


class _Screen(ScreenState):
    # -- scope (Part B 1.1, 1.2) ----------------------------------------------------------------
    def scope(self) -> None:
        f = self.f
        not_nsa = IneligibilityReason.NOT_NSA_ELIGIBLE
        if f.plan_type in EXCLUDED_PROGRAMS:
            self.add(
                not_nsa,
                f"{f.plan_type} is a public program outside federal IDR; it has its own payment rules",
                {"plan_type": f.plan_type},
            )
        if f.plan_type == "uninsured":
            self.add(
                not_nsa,
                "uninsured / self-pay patient: no plan to dispute with; use the good-faith estimate and "
                "patient-provider dispute resolution (45 CFR 149.610/149.620) instead",
                {"plan_type": f.plan_type},
            )
        if f.plan_type in NOT_SUBJECT_PLANS:
            self.add(
                IneligibilityReason.PLAN_NOT_SUBJECT_TO_NSA,
                f"{f.plan_type} coverage is not subject to the No Surprises Act",
                {"plan_type": f.plan_type},
            )
        if f.service_category == "ground_ambulance":
            self.add(
                not_nsa,
                "ground ambulance services are not covered by the No Surprises Act (air ambulance is)",
                {"service_category": f.service_category},
            )
        self.participation()
        self.consent()
        if not f.covered_by_plan:
            self.add(
                IneligibilityReason.NOT_COVERED_BY_PLAN,
                "the item or service is not covered by the plan",
                {"covered_by_plan": "false"},
            )
        self.plan_year()
        if f.all_payer_model_applies:
            self.add(
                not_nsa,
                f"an All-Payer Model Agreement sets the out-of-network amount in {f.state}",
                {"all_payer_model_applies": "true", "state": f.state},
            )

    def participation(self) -> None:
        """Out-of-network provider; participating facility of a covered type (149.110-149.130)."""
        f = self.f
        not_nsa = IneligibilityReason.NOT_NSA_ELIGIBLE
        if f.provider_nonparticipating is False:
            self.add(
                not_nsa,
                "the provider or facility participates in the plan's network; federal IDR is for "
                "out-of-network items (the contracted rate applies)",
                {"provider_nonparticipating": "false"},
            )
        elif f.provider_nonparticipating is None:
            self.skipped.append("provider out of network (provider_nonparticipating)")
        if f.service_category != "non_emergency_at_facility":
            return
        if f.facility_participating is False:
            self.add(
                not_nsa,
                "non-emergency services are protected only at a participating facility; this facility "
                "is out of network (45 CFR 149.120)",
                {"service_category": f.service_category, "facility_participating": "false"},
            )
        if f.facility_type == "other":
            self.add(
                not_nsa,
                "non-emergency services are protected only at a hospital, hospital outpatient "
                "department, critical access hospital or ambulatory surgical center (45 CFR 149.30)",
                {"service_category": f.service_category, "facility_type": "other"},
            )
        if f.facility_participating is None or f.facility_type is None:
            self.skipped.append(
                "participating facility of a covered type (facility_participating, facility_type; "
                "taken from the non_emergency_at_facility category)"
            )

    def consent(self) -> None:
        """Notice and consent waives the protections only when every condition holds (149.410/149.420)."""
        f = self.f
        if not f.notice_and_consent_given:
            return
        if f.service_category not in CONSENT_WAIVABLE:
            if f.service_category == "emergency":
                self.notes.append(
                    "notice and consent was given but cannot waive an emergency service; ignored"
                )
            return
        if f.ancillary_service:
            self.notes.append("notice and consent was given but cannot waive an ancillary service; ignored")
            return
        if f.no_participating_provider_available:
            self.notes.append(
                "notice and consent was given but cannot waive an item no participating provider at the "
                "facility could furnish; ignored"
            )
            return
        if f.unforeseen_urgent_medical_need:
            self.notes.append(
                "notice and consent was given but cannot waive an item furnished for an unforeseen, "
                "urgent medical need; ignored"
            )
            return
        conditions: dict[str, bool | None] = {
            "no_participating_provider_available": f.no_participating_provider_available,
            "unforeseen_urgent_medical_need": f.unforeseen_urgent_medical_need,
        }
        if f.service_category == "post_stabilization":
            if f.can_travel_by_nonmedical_transport is False or f.in_condition_to_consent is False:
                self.notes.append(
                    "notice and consent was given, but post-stabilization services stay emergency "
                    "services unless the patient could travel by nonmedical transport and was in a "
                    "condition to consent (45 CFR 149.110(c)(2)(ii)); ignored"
                )
                return
            conditions["can_travel_by_nonmedical_transport"] = f.can_travel_by_nonmedical_transport
            conditions["in_condition_to_consent"] = f.in_condition_to_consent
        facts = {
            "service_category": f.service_category,
            "notice_and_consent_given": "true",
            "ancillary_service": yn(f.ancillary_service),
        }
        unknown = [k for k, v in conditions.items() if v is None]
        if unknown:
            self.review(
                f"notice and consent was given for a non-ancillary {f.service_category} service; it "
                "waives the protections (45 CFR 149.410/149.420) only if every condition holds; confirm "
                + ", ".join(unknown),
                {**facts, **{k: "unknown" for k in unknown}},
            )
            return
        self.add(
            IneligibilityReason.NOT_NSA_ELIGIBLE,
            f"valid notice and consent was given for a non-ancillary {f.service_category} service, "
            "which waives the protections (45 CFR 149.410/149.420)",
            {**facts, **{k: yn(bool(v)) for k, v in conditions.items()}},
        )

    def plan_year(self) -> None:
        f = self.f
        reason = IneligibilityReason.BEFORE_APPLICABLE_PLAN_YEAR
        if f.plan_year_starts_on is not None and f.plan_year_starts_on < NSA_PLAN_YEARS_FROM:
            self.add(
                reason,
                f"the plan year began on {iso(f.plan_year_starts_on)}; the No Surprises Act applies to "
                f"plan years beginning on or after {iso(NSA_PLAN_YEARS_FROM)}",
                {
                    "plan_year_starts_on": iso(f.plan_year_starts_on),
                    "nsa_plan_years_from": iso(NSA_PLAN_YEARS_FROM),
                },
            )
            return
        dos = f.date_of_service
        if dos is None:
            return
        if dos < NSA_PLAN_YEARS_FROM:
            self.add(
                reason,
                f"the item was furnished on {iso(dos)}, before any plan year the No Surprises Act "
                f"applies to (plan years beginning on or after {iso(NSA_PLAN_YEARS_FROM)})",
                {"date_of_service": iso(dos), "nsa_plan_years_from": iso(NSA_PLAN_YEARS_FROM)},
            )
        elif f.plan_year_starts_on is None and dos < ANY_PLAN_YEAR_IN_SCOPE_FROM:
            self.review(
                f"the item was furnished on {iso(dos)}, which can fall in a plan year that began before "
                f"{iso(NSA_PLAN_YEARS_FROM)}; give plan_year_starts_on",
                {"date_of_service": iso(dos), "nsa_plan_years_from": iso(NSA_PLAN_YEARS_FROM)},
            )

    def duplicate(self) -> None:
        if self.f.duplicate_of_open_dispute:
            self.add(
                IneligibilityReason.DUPLICATE_DLI,
                "the same item (claim number, date of service, service code) is already in an open dispute",
                {"duplicate_of_open_dispute": "true"},
            )

    def result(self) -> EligibilityResult:
        f = self.f
        hard = [x for x in self.findings if x.severity == "ineligible"]
        review = [x for x in self.findings if x.severity == "review"]
        subject = f"{f.service_category} item, {f.plan_type} plan, {f.state}"
        if hard:
            status: Status = "ineligible"
            codes = ", ".join(dict.fromkeys(x.code.value for x in hard))
            explanation = f"Ineligible for federal IDR ({subject}): {codes}"
        elif review:
            status = "needs_review"
            explanation = f"Needs review before federal IDR ({subject}): " + "; ".join(
                x.message for x in review
            )
        else:
            status = "eligible"
            explanation = f"Eligible for federal IDR on the facts given ({subject}); no check failed"
            if self.skipped:
                explanation += "; not checked: " + ", ".join(self.skipped)
        if self.assumptions:
            explanation += "; assumed: " + "; ".join(self.assumptions)
        return EligibilityResult(
            status=status,
            reasons=hard + review,
            rule_sets=self.rule_sets,
            explanation=explanation,
            notes=self.notes,
        )


def screen(
    facts: EligibilityFacts,
    *,
    calendar: BusinessCalendar | None = None,
    state_laws: StateLawTable | None = None,
    config: RuleConfig | None = None,
) -> EligibilityResult:
    """Screen one item for federal IDR eligibility; every failing check is reported, not just the first."""
    s = _Screen(facts, calendar or federal_calendar(), config or RuleConfig())
    s.use(SCOPE_RULE_SET)
    s.scope()
    check_state_law(s, state_laws or load_state_laws())
    check_timing(s)
    s.duplicate()
    return s.result()
