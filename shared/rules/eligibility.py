"""Eligibility screen for federal IDR (idr-rules Part B section 1, deadlines D1-D4 and D12).

:func:`screen` runs every check it has facts for and reports each failure as a :class:`Finding`
with one of the certified IDR entities' closure reasons (Part B 1.3). A fact left ``None`` skips the
checks that need it, so a partial screen (before open negotiation, before initiation) works. Hard
findings make the claim ``ineligible``; findings that need a person (for example an unknown
specified-state-law answer in a state listed in the state-law table) make it ``needs_review``.

The state-law table is data (``data/state_laws.json``, confidence L), loaded by
:func:`load_state_laws`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.rules.calendar import BusinessCalendar, federal_calendar
from shared.rules.rulesets import RuleConfig, batching_for

SCOPE_RULE_SET = "nsa-scope-2022"  # Part B 1.1 and 1.2
TIMING_RULE_SET = "idr-timing-2022"  # 149.510(b) and (c)(4)(vii): D1-D4, D3b, D12
NSA_PLAN_YEARS_FROM = date(2022, 1, 1)
COOLING_OFF_CALENDAR_DAYS = 90
STATE_LAWS_FILE = Path(__file__).parent / "data" / "state_laws.json"


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
EXCLUDED_PROGRAMS: frozenset[str] = frozenset(
    {"medicare", "medicare_advantage", "medicaid", "chip", "tricare", "va", "ihs"}
)
NOT_SUBJECT_PLANS: frozenset[str] = frozenset(
    {"short_term_limited_duration", "excepted_benefits", "retiree_only"}
)
CONSENT_WAIVABLE: frozenset[str] = frozenset({"post_stabilization", "non_emergency_at_facility"})

Status = Literal["eligible", "ineligible", "needs_review"]
Severity = Literal["ineligible", "review"]


# -- the state-law table ----------------------------------------------------------------------------
class StateLaw(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # insured plan types the state law can reach (governmental/church: their fully insured versions)
    applies_to: list[PlanType]
    self_funded_opt_in_allowed: bool
    all_payer_model: bool = False


class StateLawTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    as_of: date
    confidence: str
    note: str
    states: dict[str, StateLaw]

    @field_validator("states")
    @classmethod
    def _two_letter_codes(cls, v: dict[str, StateLaw]) -> dict[str, StateLaw]:
        bad = [k for k in v if len(k) != 2 or not k.isalpha() or not k.isupper()]
        if bad:
            raise ValueError(f"state keys must be 2 upper-case letters: {bad}")
        return v

    def get(self, state: str) -> StateLaw | None:
        return self.states.get(state.upper())

    @property
    def rule_set(self) -> str:
        return f"state-laws@{self.as_of.isoformat()}"


@lru_cache(maxsize=1)
def _default_state_laws() -> StateLawTable:
    return StateLawTable.model_validate(json.loads(STATE_LAWS_FILE.read_text(encoding="utf-8")))


def load_state_laws(path: Path | None = None) -> StateLawTable:
    """The state-law table: the packaged ``data/state_laws.json`` (cached) or the file at ``path``."""
    if path is None:
        return _default_state_laws()
    return StateLawTable.model_validate(json.loads(path.read_text(encoding="utf-8")))


# -- facts and result -------------------------------------------------------------------------------
class EligibilityFacts(BaseModel):
    """What is known about one item or service; ``None`` means unknown (the check is skipped)."""

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

    @field_validator("state")
    @classmethod
    def _state_code(cls, v: str) -> str:
        if not v.isalpha():
            raise ValueError("state must be a 2-letter code")
        return v.upper()


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


# -- the screen -------------------------------------------------------------------------------------
def _iso(d: date) -> str:
    return d.isoformat()


def _yn(v: bool) -> str:
    return "true" if v else "false"


class _Screen:
    def __init__(self, facts: EligibilityFacts, cal: BusinessCalendar, config: RuleConfig) -> None:
        self.f = facts
        self.cal = cal
        self.config = config
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.rule_sets: list[str] = [SCOPE_RULE_SET]
        self.skipped: list[str] = []

    def add(
        self,
        code: IneligibilityReason,
        message: str,
        facts: dict[str, str],
        severity: Severity = "ineligible",
    ) -> None:
        self.findings.append(Finding(code=code, message=message, facts=facts, severity=severity))

    def use(self, rule_set: str) -> None:
        if rule_set not in self.rule_sets:
            self.rule_sets.append(rule_set)

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
        if f.notice_and_consent_given:
            if f.service_category in CONSENT_WAIVABLE and not f.ancillary_service:
                self.add(
                    not_nsa,
                    f"valid notice and consent was given for a non-ancillary {f.service_category} service, "
                    "which waives the protections (45 CFR 149.410/149.420)",
                    {
                        "service_category": f.service_category,
                        "notice_and_consent_given": "true",
                        "ancillary_service": _yn(f.ancillary_service),
                    },
                )
            elif f.service_category in CONSENT_WAIVABLE or f.service_category == "emergency":
                why = "an ancillary service" if f.ancillary_service else "an emergency service"
                self.notes.append(f"notice and consent was given but cannot waive {why}; ignored")
        if not f.covered_by_plan:
            self.add(
                IneligibilityReason.NOT_COVERED_BY_PLAN,
                "the item or service is not covered by the plan",
                {"covered_by_plan": "false"},
            )
        if f.plan_year_starts_on is not None and f.plan_year_starts_on < NSA_PLAN_YEARS_FROM:
            self.add(
                IneligibilityReason.BEFORE_APPLICABLE_PLAN_YEAR,
                f"the plan year began on {_iso(f.plan_year_starts_on)}; the No Surprises Act applies to "
                f"plan years beginning on or after {_iso(NSA_PLAN_YEARS_FROM)}",
                {
                    "plan_year_starts_on": _iso(f.plan_year_starts_on),
                    "nsa_plan_years_from": _iso(NSA_PLAN_YEARS_FROM),
                },
            )
        if f.all_payer_model_applies:
            self.add(
                not_nsa,
                f"an All-Payer Model Agreement sets the out-of-network amount in {f.state}",
                {"all_payer_model_applies": "true", "state": f.state},
            )

    # -- specified state law / All-Payer Model (Part B 1.2) --------------------------------------
    def _state_law_scope(self) -> Literal["insured", "opt_in", "unknown_funding", "none"]:
        f = self.f
        if f.plan_type in ("fully_insured_group", "individual_market"):
            return "insured"
        if f.plan_type in ("non_federal_governmental", "church_plan"):
            if f.self_funded is False:
                return "insured"
            if f.self_funded is None:
                return "unknown_funding"
            return "opt_in" if f.self_funded_opt_in else "none"
        if f.plan_type == "self_insured_erisa":
            return "opt_in" if f.self_funded_opt_in else "none"
        return "none"  # FEHB (OPM rules), excluded programs and plans already screened out

    def state_law(self, table: StateLawTable) -> None:
        f = self.f
        scope = self._state_law_scope()
        if f.plan_type in EXCLUDED_PROGRAMS or f.plan_type in NOT_SUBJECT_PLANS or f.plan_type == "uninsured":
            return
        base = {"state": f.state, "plan_type": f.plan_type}
        if f.specified_state_law_applies is True:
            if scope == "none":
                self.add(
                    IneligibilityReason.OTHER,
                    f"a specified state law is said to apply, but a {f.plan_type} plan that has not opted "
                    "in is not subject to state law; confirm the plan type and opt-in",
                    {**base, "specified_state_law_applies": "true"},
                    "review",
                )
            else:
                self.add(
                    IneligibilityReason.NOT_NSA_ELIGIBLE,
                    f"a specified state law of {f.state} sets the out-of-network amount; "
                    "use the state process",
                    {**base, "specified_state_law_applies": "true"},
                )
            return
        if f.specified_state_law_applies is False:
            return
        entry = table.get(f.state)
        self.use(table.rule_set)
        src = f"source: {table.source}; as of {_iso(table.as_of)}; confidence {table.confidence}"
        if entry is not None and entry.all_payer_model and f.all_payer_model_applies is None:
            if scope == "insured":
                self.add(
                    IneligibilityReason.NOT_NSA_ELIGIBLE,
                    f"{entry.name} ({f.state}) is listed as an All-Payer Model state; for a fully insured "
                    f"plan the state sets the out-of-network amount ({src})",
                    {**base, "state_law": f"{entry.name} All-Payer Model", "state_law_source": table.source},
                )
                return
            self.add(
                IneligibilityReason.OTHER,
                f"{entry.name} ({f.state}) is listed as an All-Payer Model state; confirm whether the "
                f"model sets the amount for this item (all_payer_model_applies) ({src})",
                {**base, "state_law": f"{entry.name} All-Payer Model", "state_law_source": table.source},
                "review",
            )
        if scope == "none":
            return
        if scope == "opt_in":
            if entry is None:
                msg = (
                    f"the self-insured plan reports opting into a specified state law, but {f.state} is not "
                    f"in the state-law table; confirm which state law applies ({src})"
                )
            elif not entry.self_funded_opt_in_allowed:
                msg = (
                    f"the self-insured plan reports opting into the {entry.name} surprise-billing law, which "
                    f"the table does not list as allowing opt-in; confirm it applies ({src})"
                )
            else:
                msg = (
                    f"the self-insured plan opted into the {entry.name} surprise-billing law "
                    f"(specified state law); confirm it covers this item, if so use the state process ({src})"
                )
            facts = {**base, "self_funded_opt_in": "true", "state_law_source": table.source}
            if entry is not None:
                facts["state_law"] = f"{entry.name} surprise-billing law"
            self.add(IneligibilityReason.OTHER, msg, facts, "review")
            return
        if entry is None:
            return
        if scope == "unknown_funding":
            self.add(
                IneligibilityReason.OTHER,
                f"{entry.name} ({f.state}) has a specified state law for insured plans and it is not known "
                f"whether this {f.plan_type} is fully insured or self-funded; confirm ({src})",
                {**base, "state_law": f"{entry.name} surprise-billing law", "state_law_source": table.source},
                "review",
            )
            return
        if f.plan_type in entry.applies_to:
            self.add(
                IneligibilityReason.OTHER,
                f"{entry.name} ({f.state}) has a specified state law / state surprise-billing payment "
                f"process for {f.plan_type} plans; confirm whether it covers this item, if so use the "
                f"state process, not federal IDR ({src})",
                {**base, "state_law": f"{entry.name} surprise-billing law", "state_law_source": table.source},
                "review",
            )

    # -- timing (D1, D2, D3, D3b, D4, D12) --------------------------------------------------------
    def _extension_covers(self, day: date) -> date | None:
        """The Departments' extension date when it makes ``day`` timely (D12), else None."""
        ext = self.f.extension_until
        return ext if ext is not None and day <= ext else None

    def _cooling_off_ends(self) -> date | None:
        f = self.f
        if f.prior_determination_on is None or not f.same_parties_and_item_as_prior:
            return None
        unit, n = "calendar", COOLING_OFF_CALENDAR_DAYS
        if f.prior_dispute_batched:
            key = f.open_negotiation_started_on or f.idr_initiated_on or f.prior_determination_on
            rules = batching_for(key, self.config)
            self.use(rules.rule_set)
            unit, n = rules.batched_cooling_off
        if unit == "business":
            return self.cal.business_days_after(f.prior_determination_on, n)
        return f.prior_determination_on + timedelta(days=n)

    def timing(self) -> None:
        f = self.f
        cal = self.cal
        if f.initial_payment_received_on is not None:
            self.use(TIMING_RULE_SET)
            on_deadline = cal.business_day_beginning(f.initial_payment_received_on, 30)
            base = {
                "initial_payment_received_on": _iso(f.initial_payment_received_on),
                "open_negotiation_initiation_deadline": _iso(on_deadline),
            }
            if f.open_negotiation_started_on is None and f.idr_initiated_on is not None:
                self.add(
                    IneligibilityReason.OPEN_NEGOTIATION_NOT_INITIATED,
                    f"IDR was initiated on {_iso(f.idr_initiated_on)} without open negotiation, which had "
                    f"to begin by {_iso(on_deadline)}",
                    {**base, "idr_initiated_on": _iso(f.idr_initiated_on)},
                )
            elif f.open_negotiation_started_on is not None and f.open_negotiation_started_on > on_deadline:
                ext = self._extension_covers(f.open_negotiation_started_on)
                if ext is not None:
                    self.notes.append(
                        f"open negotiation began after {_iso(on_deadline)} but within the Departments' "
                        f"extension to {_iso(ext)}"
                    )
                else:
                    self.add(
                        IneligibilityReason.OPEN_NEGOTIATION_NOT_INITIATED,
                        f"open negotiation began on {_iso(f.open_negotiation_started_on)}, after the "
                        f"deadline of {_iso(on_deadline)} (30 business days beginning on the day the "
                        "initial payment or denial was received)",
                        {**base, "open_negotiation_started_on": _iso(f.open_negotiation_started_on)},
                    )
        else:
            self.skipped.append("open negotiation initiation deadline (no initial_payment_received_on)")
        if f.notice_of_initiation_submitted is False:
            facts = {"notice_of_initiation_submitted": "false"}
            if f.idr_initiated_on is not None:
                facts["idr_initiated_on"] = _iso(f.idr_initiated_on)
            self.add(
                IneligibilityReason.NOTICE_OF_INITIATION_NOT_SUBMITTED,
                "the Notice of IDR Initiation was not submitted to the other party and the Departments",
                facts,
            )
        cooling_off_ends = self._cooling_off_ends()
        if f.open_negotiation_started_on is None or f.idr_initiated_on is None:
            self.skipped.append(
                "IDR initiation window (needs open_negotiation_started_on and idr_initiated_on)"
            )
        if f.open_negotiation_started_on is None:
            if cooling_off_ends is not None and f.idr_initiated_on is not None:
                self._cooling_off_check(f.idr_initiated_on, cooling_off_ends)
            return
        self.use(TIMING_RULE_SET)
        on = f.open_negotiation_started_on
        period_end = cal.business_day_beginning(on, 30)
        opens = cal.business_day_beginning(on, 31)
        deadline = cal.business_day_beginning(on, 34)
        deadline_name = "idr_initiation_deadline"
        suspended = (
            cooling_off_ends is not None
            and f.prior_determination_on is not None
            and opens <= cooling_off_ends
            and deadline >= f.prior_determination_on
        )
        if suspended and cooling_off_ends is not None:
            # D3b: the window was held up by the cooling-off; 30 business days beginning the day after
            deadline = cal.business_day_beginning(cooling_off_ends + timedelta(days=1), 30)
            deadline_name = "post_cooling_off_initiation_deadline"
            self.notes.append(
                f"the initiation window fell in the cooling-off period ending {_iso(cooling_off_ends)}; "
                f"IDR may be initiated after it, through {_iso(deadline)}"
            )
        idr = f.idr_initiated_on
        if idr is None:
            return
        window = {
            "open_negotiation_started_on": _iso(on),
            "idr_initiated_on": _iso(idr),
        }
        if idr < opens:
            self.add(
                IneligibilityReason.OPEN_NEGOTIATION_NOT_COMPLETE,
                f"IDR was initiated on {_iso(idr)}, before the open negotiation period ended on "
                f"{_iso(period_end)}; the earliest initiation date is {_iso(opens)}",
                {
                    **window,
                    "open_negotiation_period_end": _iso(period_end),
                    "idr_initiation_window_opens": _iso(opens),
                },
            )
        elif idr > deadline:
            ext = self._extension_covers(idr)
            if ext is not None:
                self.notes.append(
                    f"IDR was initiated after the {deadline_name} of {_iso(deadline)} but within the "
                    f"Departments' extension to {_iso(ext)}"
                )
            else:
                facts = {**window, deadline_name: _iso(deadline)}
                if f.extension_until is not None:
                    facts["extension_until"] = _iso(f.extension_until)
                self.add(
                    IneligibilityReason.INITIATION_LATE,
                    f"IDR was initiated on {_iso(idr)}, after the {deadline_name} of {_iso(deadline)}"
                    + (f" and after the extension to {_iso(f.extension_until)}" if f.extension_until else ""),
                    facts,
                )
        if cooling_off_ends is not None:
            self._cooling_off_check(idr, cooling_off_ends)

    def _cooling_off_check(self, idr: date, cooling_off_ends: date) -> None:
        f = self.f
        assert f.prior_determination_on is not None
        self.use(TIMING_RULE_SET)
        if f.prior_determination_on <= idr <= cooling_off_ends:
            self.add(
                IneligibilityReason.COOLING_OFF_NOT_COMPLETED,
                f"IDR was initiated on {_iso(idr)} against the same party for the same or a similar item "
                f"during the cooling-off period after the determination of "
                f"{_iso(f.prior_determination_on)}, which ends on {_iso(cooling_off_ends)}",
                {
                    "prior_determination_on": _iso(f.prior_determination_on),
                    "cooling_off_ends": _iso(cooling_off_ends),
                    "idr_initiated_on": _iso(idr),
                    "prior_dispute_batched": _yn(f.prior_dispute_batched),
                },
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
    s.scope()
    s.state_law(state_laws or load_state_laws())
    s.timing()
    s.duplicate()
    return s.result()
