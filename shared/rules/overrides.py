"""Calendar overrides as data: the file/API format, and conversion to the calendar's types.

A file (JSON) or the dispute service's table holds closures (days that are not business days) and
the Departments' extensions (deadlines falling in a range move to a date, for all deadlines or some
named ones, in all states or some).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.rules.calendar import FIRST_YEAR, LAST_YEAR, Closure, Extension, Overrides

DEADLINE_NAMES = frozenset(
    {
        "initial_payment_deadline",
        "open_negotiation_initiation_deadline",
        "open_negotiation_period_end",
        "open_negotiation_response_deadline",
        "idr_initiation_window_opens",
        "idr_initiation_deadline",
        "idre_joint_selection_deadline",
        "departments_idre_selection_deadline",
        "eligibility_determination_deadline",
        "offer_and_fee_deadline",
        "determination_deadline",
        "payment_deadline",
        "idre_fee_refund_deadline",
        "cooling_off_ends",
        "post_cooling_off_initiation_deadline",
        "improper_batch_resubmission_deadline",
        "conflict_attestation_deadline",
        "joint_selection_notice_deadline",
    }
)


class OverrideIn(BaseModel):
    """One closure or extension, as written in a file or posted to the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["closure", "extension"]
    start: date
    end: date
    name: str = Field(min_length=1, max_length=200)
    reference: str = Field(default="", max_length=500, description="e.g. the CMS notice that granted it")
    moves_to: date | None = Field(default=None, description="extensions: the new deadline date")
    deadlines: list[str] | None = Field(default=None, description="extensions: only these deadline names")
    states: list[str] | None = Field(default=None, description="extensions: only claims in these states")

    @model_validator(mode="after")
    def _consistent(self) -> OverrideIn:
        first, last = date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)
        for field in ("start", "end", "moves_to"):
            day = getattr(self, field)
            if day is not None and not first <= day <= last:
                raise ValueError(
                    f"{field}: {day.isoformat()} is outside the business-day calendar "
                    f"({first.isoformat()}..{last.isoformat()})"
                )
        if self.end < self.start:
            raise ValueError("end: the range ends before it starts")
        if self.kind == "extension":
            if self.moves_to is None:
                raise ValueError("moves_to: an extension needs the date deadlines move to")
            if self.moves_to <= self.end:
                raise ValueError("moves_to: must be after the end of the range it extends")
            unknown = set(self.deadlines or ()) - DEADLINE_NAMES
            if unknown:
                raise ValueError(f"deadlines: unknown deadline names {sorted(unknown)}")
            if self.deadlines and "payment_deadline" in self.deadlines:
                raise ValueError("deadlines: the payment deadline cannot be extended (idr-rules D12)")
        elif self.moves_to or self.deadlines or self.states:
            raise ValueError("kind: a closure takes no moves_to, deadlines or states")
        return self


class OverridesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overrides: list[OverrideIn] = []


def to_overrides(items: list[OverrideIn]) -> Overrides:
    closures = tuple(
        Closure(o.start, o.end, o.name, o.reference)
        for o in sorted(items, key=lambda o: o.start)
        if o.kind == "closure"
    )
    extensions = tuple(
        Extension(
            start=o.start,
            end=o.end,
            moves_to=o.moves_to,
            name=o.name,
            reference=o.reference,
            deadlines=frozenset(o.deadlines) if o.deadlines else None,
            states=frozenset(s.upper() for s in o.states) if o.states else None,
        )
        for o in sorted(items, key=lambda o: o.start)
        if o.kind == "extension" and o.moves_to is not None
    )
    return Overrides(closures=closures, extensions=extensions)


def load_overrides_file(path: Path) -> Overrides:
    return to_overrides(OverridesFile.model_validate_json(path.read_text()).overrides)
