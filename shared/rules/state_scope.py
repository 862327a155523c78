"""State scope: specified state laws and All-Payer Model Agreements (idr-rules Part B 1.2; audit
2026-11 rows 6, 7, 8 and section 2).

A **specified State law** sets the out-of-network amount "to the extent such State law applies to
such plan ... subject to section 1144 of title 29" (42 U.S.C. 300gg-111(a)(3)(I)): it reaches insured
coverage, self-insured ERISA plans only when they lawfully opt in, and non-federal governmental plans
directly when the state's law says so (ERISA does not preempt it for them). An **All-Payer Model
Agreement** sets the amount only for "such item or service so furnished" that the State approves
under the model (300gg-111(a)(3)(K)(iii)), whatever the plan type: Maryland's model sets hospital
rates, so it governs hospital facility items and nothing else.

The state table is data (``data/state_laws.json``): every entry carries its ``source`` and whether it
was ``verified`` against a primary or CMS source; an unknown answer is stored as ``null``.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from shared.rules.eligibility_model import (
    EXCLUDED_PROGRAMS,
    HOSPITAL_FACILITIES,
    NOT_SUBJECT_PLANS,
    EligibilityFacts,
    IneligibilityReason,
    PlanType,
    ScreenState,
    iso,
)

STATE_LAWS_FILE = Path(__file__).parent / "data" / "state_laws.json"


class AllPayerModel(BaseModel):
    """An All-Payer Model Agreement: the items it sets the amount for, for every plan type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "All-Payer Model Agreement"
    items: list[Literal["hospital_facility"]] = ["hospital_facility"]
    source: str = ""
    verified: bool = False


class StateLaw(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # insured plan types the specified state law reaches (governmental/church: their insured versions)
    applies_to: list[PlanType]
    # whether self-insured plans may opt in; None = not known
    self_funded_opt_in_allowed: bool | None = None
    self_funded_opt_in_source: str | None = None
    # whether the law reaches self-funded non-federal governmental plans directly; None = not known
    applies_to_self_funded_governmental: bool | None = None
    self_funded_governmental_source: str | None = None
    all_payer_model: AllPayerModel | None = None
    source: str = ""  # what the entry rests on, and where
    verified: bool = False  # checked against a primary (statute, regulator) or CMS source
    note: str | None = None

    @field_validator("all_payer_model", mode="before")
    @classmethod
    def _legacy_flag(cls, v: Any) -> Any:
        """Tables of the earlier shape say ``all_payer_model: true|false``."""
        if v is True:
            return {}
        if v is False:
            return None
        return v


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


# -- the checks -------------------------------------------------------------------------------------
Reach = Literal["insured", "opt_in", "governmental", "governmental_unknown", "unknown_funding", "none"]
ApmItem = Literal["hospital_facility", "air_ambulance", "professional", "ambulatory_surgical_center", "other"]


def _reach(f: EligibilityFacts, entry: StateLaw | None) -> Reach:
    """How a specified state law can reach this plan."""
    if f.plan_type in ("fully_insured_group", "individual_market"):
        return "insured"
    if f.plan_type in ("non_federal_governmental", "church_plan"):
        if f.self_funded is False:
            return "insured"
        if f.self_funded is None:
            return "unknown_funding"
        if f.self_funded_opt_in:
            return "opt_in"
        if f.plan_type == "church_plan":
            return "none"
        # ERISA does not preempt state law for governmental plans: the state's own law decides
        reach = entry.applies_to_self_funded_governmental if entry is not None else False
        if reach is None:
            return "governmental_unknown"
        return "governmental" if reach else "none"
    if f.plan_type == "self_insured_erisa":
        return "opt_in" if f.self_funded_opt_in else "none"
    return "none"  # FEHB (OPM rules), excluded programs and plans already screened out


def _apm_item(f: EligibilityFacts) -> ApmItem | None:
    """What kind of item this is for an All-Payer Model, or None when the facts do not say."""
    if f.service_category == "air_ambulance":
        return "air_ambulance"
    if f.billed_as == "professional":
        return "professional"
    if f.facility_type == "ambulatory_surgical_center":
        return "ambulatory_surgical_center"
    if f.facility_type == "other":
        return "other"
    if f.billed_as == "facility" and f.facility_type in HOSPITAL_FACILITIES:
        return "hospital_facility"
    return None


def _src(table: StateLawTable, entry: StateLaw) -> str:
    checked = "verified" if entry.verified else "unverified"
    return (
        f"entry {checked}: {entry.source or 'no source recorded'}; table source: {table.source}; "
        f"as of {iso(table.as_of)}; confidence {table.confidence}"
    )


def _all_payer_model(s: ScreenState, table: StateLawTable, entry: StateLaw | None) -> None:
    f = s.f
    if f.all_payer_model_applies is not None or entry is None or entry.all_payer_model is None:
        return  # True is a hard finding of the scope check; False: the caller says it does not apply
    apm = entry.all_payer_model
    s.use(table.rule_set)
    kind = _apm_item(f)
    facts = {
        "state": f.state,
        "plan_type": f.plan_type,
        "state_law": f"{entry.name} All-Payer Model",
        "state_law_source": apm.source or table.source,
        "item": kind or "unknown",
    }
    src = f"source: {apm.source or table.source}; {'verified' if apm.verified else 'unverified'}"
    if kind is not None and kind in apm.items:
        s.add(
            IneligibilityReason.NOT_NSA_ELIGIBLE,
            f"the {apm.name} ({f.state}) sets the out-of-network amount for hospital facility items, for "
            f"every plan type (42 U.S.C. 300gg-111(a)(3)(K)(iii)); use the state's rate ({src})",
            facts,
        )
    elif kind is None:
        s.review(
            f"{entry.name} ({f.state}) has an All-Payer Model ({apm.name}) that sets hospital facility "
            "rates for every plan type; confirm whether this is a hospital facility item it covers "
            f"(give billed_as and facility_type, or all_payer_model_applies) ({src})",
            facts,
        )
    else:
        what = kind.replace("_", " ")
        s.review(
            f"{entry.name} ({f.state}) has an All-Payer Model ({apm.name}) for hospital facility items; "
            f"a {what} item is normally outside it, so {entry.name}'s specified state law (insured "
            "plans) or federal IDR applies; confirm and answer all_payer_model_applies=false "
            f"({src})",
            facts,
        )


def check_state_law(s: ScreenState, table: StateLawTable) -> None:
    """Specified state law and All-Payer Model findings for the screen ``s``."""
    f = s.f
    if f.plan_type in EXCLUDED_PROGRAMS or f.plan_type in NOT_SUBJECT_PLANS or f.plan_type == "uninsured":
        return
    entry = table.get(f.state)
    _all_payer_model(s, table, entry)
    reach = _reach(f, entry)
    base = {"state": f.state, "plan_type": f.plan_type}
    if f.specified_state_law_applies is True:
        if reach == "none":
            why = (
                "a self-funded governmental plan that the table says the state law does not reach"
                if f.plan_type == "non_federal_governmental"
                else f"a {f.plan_type} plan that has not opted in"
            )
            s.review(
                f"a specified state law is said to apply, but {why} is not subject to state law; "
                "confirm the plan type and opt-in",
                {**base, "specified_state_law_applies": "true"},
            )
        else:
            s.add(
                IneligibilityReason.NOT_NSA_ELIGIBLE,
                f"a specified state law of {f.state} sets the out-of-network amount; use the state process",
                {**base, "specified_state_law_applies": "true"},
            )
        return
    if f.specified_state_law_applies is False:
        return
    s.use(table.rule_set)
    if entry is None:
        if reach == "opt_in":
            s.review(
                f"the self-insured plan reports opting into a specified state law, but {f.state} is not "
                f"in the state-law table; confirm which state law applies (table source: {table.source})",
                {**base, "self_funded_opt_in": "true", "state_law_source": table.source},
            )
        return
    src = _src(table, entry)
    facts = {
        **base,
        "state_law": f"{entry.name} surprise-billing law",
        "state_law_source": table.source,
        "state_law_entry_source": entry.source,
        "state_law_verified": "true" if entry.verified else "false",
    }
    if entry.note:
        s.notes.append(f"{entry.name}: {entry.note}")
    if reach == "opt_in":
        if entry.self_funded_opt_in_allowed is None:
            how = "reports opting into the {} surprise-billing law, for which the table does not know "
            how += "whether self-insured plans may opt in"
        elif not entry.self_funded_opt_in_allowed:
            how = "reports opting into the {} surprise-billing law, which the table does not list as "
            how += "allowing opt-in"
        else:
            how = "opted into the {} surprise-billing law (specified state law)"
        s.review(
            f"the self-insured plan {how.format(entry.name)}; confirm it covers this item, if so use "
            f"the state process ({src})",
            {**facts, "self_funded_opt_in": "true"},
        )
    elif reach == "unknown_funding":
        s.review(
            f"{entry.name} ({f.state}) has a specified state law for insured plans and it is not known "
            f"whether this {f.plan_type} is fully insured or self-funded; confirm ({src})",
            facts,
        )
    elif reach == "governmental":
        s.review(
            f"{entry.name} ({f.state})'s specified state law reaches self-funded non-federal "
            f"governmental plans directly ({entry.self_funded_governmental_source or 'no source'}); "
            "confirm whether it covers this item, if so use the state process, not federal IDR "
            f"({src})",
            facts,
        )
    elif reach == "governmental_unknown":
        s.review(
            f"{entry.name} ({f.state}) has a specified state law and it is not known whether it "
            "reaches self-funded governmental plans (ERISA does not preempt state law for them); "
            f"confirm whether it covers this plan and item ({src})",
            facts,
        )
    elif reach == "insured" and f.plan_type in entry.applies_to:
        s.review(
            f"{entry.name} ({f.state}) has a specified state law / state surprise-billing payment "
            f"process for {f.plan_type} plans; confirm whether it covers this item, if so use the "
            f"state process, not federal IDR ({src})",
            facts,
        )
