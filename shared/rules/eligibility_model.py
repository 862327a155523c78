"""The eligibility screen's contract: facts in, findings and result out (idr-rules Part B 1).

Split out of :mod:`shared.rules.eligibility` so that the state-scope and timing checks
(:mod:`shared.rules.state_scope`, :mod:`shared.rules.eligibility_timing`) can share it. Import the
public names from :mod:`shared.rules.eligibility`.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.rules.calendar import BusinessCalendar
from shared.rules.rulesets import RuleConfig


class IneligibilityReason(StrEnum):
    """Closure reasons used by certified IDR entities (Part B 1.3)."""

    INITIATION_LATE = "INITIATION_LATE"
    INCORRECTLY_BATCHED = "INCORRECTLY_BATCHED"
    INCORRECTLY_BUNDLED = "INCORRECTLY_BUNDLED"
    NOT_COVERED_BY_PLAN = "NOT_COVERED_BY_PLAN"
    NOT_NSA_ELIGIBLE = "NOT_NSA_ELIGIBLE"
    NOTICE_OF_INITIATION_NOT_SUBMITTED = "NOTICE_OF_INITIATION_NOT_SUBMITTED"
    OPEN_NEGOTIATION_NOT_COMPLETE = "OPEN_NEGOTIATION_NOT_COMPLETE"
    OPEN_NEGOTIATION_NOT_INITIATED = "OPEN_NEGOTIATION_NOT_INITIATED"
    PLAN_NOT_SUBJECT_TO_NSA = "PLAN_NOT_SUBJECT_TO_NSA"
    BEFORE_APPLICABLE_PLAN_YEAR = "BEFORE_APPLICABLE_PLAN_YEAR"
    COOLING_OFF_NOT_COMPLETED = "COOLING_OFF_NOT_COMPLETED"
    DUPLICATE_DLI = "DUPLICATE_DLI"
    OTHER = "OTHER"


ServiceCategory = Literal[
    "emergency", "post_stabilization", "non_emergency_at_facility", "air_ambulance", "ground_ambulance"
]
PlanType = Literal[
    "self_insured_erisa",
    "fully_insured_group",
    "individual_market",
    "fehb",
    "non_federal_governmental",
    "church_plan",
    "short_term_limited_duration",
    "excepted_benefits",
    "retiree_only",
    "medicare",
    "medicare_advantage",
    "medicaid",
    "chip",
    "tricare",
    "va",
    "ihs",
    "uninsured",
]
# 45 CFR 149.30 "health care facility" for non-emergency services; "other" = an office or any other
# setting, where the non-emergency protections do not apply
FacilityType = Literal[
    "hospital",
    "hospital_outpatient_department",
    "critical_access_hospital",
    "ambulatory_surgical_center",
    "other",
]
COVERED_FACILITIES: frozenset[str] = frozenset(
    {"hospital", "hospital_outpatient_department", "critical_access_hospital", "ambulatory_surgical_center"}
)
HOSPITAL_FACILITIES: frozenset[str] = frozenset(
    {"hospital", "hospital_outpatient_department", "critical_access_hospital"}
)
EXCLUDED_PROGRAMS: frozenset[str] = frozenset(
    {"medicare", "medicare_advantage", "medicaid", "chip", "tricare", "va", "ihs"}
)
NOT_SUBJECT_PLANS: frozenset[str] = frozenset(
    {"short_term_limited_duration", "excepted_benefits", "retiree_only"}
)
CONSENT_WAIVABLE: frozenset[str] = frozenset({"post_stabilization", "non_emergency_at_facility"})

Status = Literal["eligible", "ineligible", "needs_review"]
Severity = Literal["ineligible", "review"]


class EligibilityFacts(BaseModel):
    """What is known about one item or service; ``None`` means unknown.

    The screen is run for the provider (or facility) side: the initial payment is the one the
    provider received and the IDR initiation is the provider's. A fact left unknown skips the checks
    that need it when the answer does not turn on it, and makes the result ``needs_review`` when it
    does; it never makes a claim silently eligible.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_category: ServiceCategory
    plan_type: PlanType
    state: str = Field(min_length=2, max_length=2)
    self_funded: bool | None = None  # non-federal governmental and church plans
    self_funded_opt_in: bool | None = None  # a self-insured plan opted into a specified state law
    specified_state_law_applies: bool | None = None  # None: look the state up in the table
    all_payer_model_applies: bool | None = None
    notice_and_consent_given: bool = False
    ancillary_service: bool = False
    covered_by_plan: bool = True
    plan_year_starts_on: date | None = None
    initial_payment_received_on: date | None = None
    open_negotiation_started_on: date | None = None
    idr_initiated_on: date | None = None
    notice_of_initiation_submitted: bool | None = None
    extension_until: date | None = None  # a Departments' extension (D12)
    prior_determination_on: date | None = None
    same_parties_and_item_as_prior: bool = False
    prior_dispute_batched: bool = False
    duplicate_of_open_dispute: bool = False
    # -- added 2026-11 (audit rows 10, 14 and section 3); all optional, None = unknown -----------
    # who submitted the prior dispute: only that party is barred by its cooling-off
    prior_initiated_by: Literal["provider", "plan"] | None = None
    # picks the batched cooling-off rule set (idr-rules Part A item 4)
    prior_open_negotiation_started_on: date | None = None
    # a bundled prior dispute is a single determination, not a batch (single cooling-off)
    prior_dispute_bundled: bool | None = None
    # the provider or facility submitting the claim is out of network for the plan
    provider_nonparticipating: bool | None = None
    # where a non-emergency item was furnished (45 CFR 149.120)
    facility_participating: bool | None = None
    facility_type: FacilityType | None = None
    # who bills the item: the facility (e.g. a hospital's own charge) or a professional
    billed_as: Literal["facility", "professional"] | None = None
    date_of_service: date | None = None
    # post-stabilization notice and consent conditions other than the consent (149.110(c)(2)(ii))
    can_travel_by_nonmedical_transport: bool | None = None
    in_condition_to_consent: bool | None = None
    # consent exceptions other than the ancillary list (149.420)
    no_participating_provider_available: bool | None = None
    unforeseen_urgent_medical_need: bool | None = None

    @field_validator("state")
    @classmethod
    def _state_code(cls, v: str) -> str:
        if not v.isalpha():
            raise ValueError("state must be a 2-letter code")
        return v.upper()

    @model_validator(mode="after")
    def _batched_or_bundled(self) -> EligibilityFacts:
        if self.prior_dispute_batched and self.prior_dispute_bundled:
            raise ValueError("the prior dispute cannot be both batched and bundled")
        return self


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: IneligibilityReason
    message: str  # one human line
    facts: dict[str, str]  # the facts that drove it, as ISO dates / true / false / names
    severity: Severity = "ineligible"


class EligibilityResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status
    reasons: list[Finding]
    rule_sets: list[str]
    explanation: str
    notes: list[str] = []  # informational lines that did not change the status

    @property
    def codes(self) -> list[IneligibilityReason]:
        return [f.code for f in self.reasons]


def iso(d: date) -> str:
    return d.isoformat()


def yn(v: bool) -> str:
    return "true" if v else "false"


class ScreenState:
    """What one screen has gathered so far; the checks append findings, notes and rule sets."""

    def __init__(self, facts: EligibilityFacts, cal: BusinessCalendar, config: RuleConfig) -> None:
        self.f = facts
        self.cal = cal
        self.config = config
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.rule_sets: list[str] = []
        self.skipped: list[str] = []
        self.assumptions: list[str] = []  # fallbacks the explanation must state

    def add(
        self,
        code: IneligibilityReason,
        message: str,
        facts: dict[str, str],
        severity: Severity = "ineligible",
    ) -> None:
        self.findings.append(Finding(code=code, message=message, facts=facts, severity=severity))

    def review(self, message: str, facts: dict[str, str]) -> None:
        self.add(IneligibilityReason.OTHER, message, facts, "review")

    def use(self, rule_set: str) -> None:
        if rule_set not in self.rule_sets:
            self.rule_sets.append(rule_set)
