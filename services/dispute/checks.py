"""The checks behind the claim workflow's update validators: pure reads of the claim's state that
raise ``ValueError("<field>: <reason>")`` for an action that is not possible now. Deterministic."""

from __future__ import annotations

from datetime import date

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from services.dispute.schemas import ClaimState
    from shared.lifecycle import RECOVERABLE, TERMINAL, Stage
    from shared.rules.calendar import new_york_date


class ClaimChecks:
    """Mixed into the claim workflow: ``self.s`` is its state."""

    s: ClaimState

    def _replay(self) -> bool:
        """True when this update's id was already applied (a retry): validators let it through and
        the handler answers with the current status without applying it twice."""
        info = workflow.current_update_info()
        return info is not None and info.id in self.s.applied_updates

    def _today(self) -> date:
        """Today in New York, where deadlines end."""
        return new_york_date(workflow.now())

    def _ended(self) -> bool:
        s = self.s
        return s.final or (s.stage in TERMINAL and s.stage not in RECOVERABLE)

    def _open(self) -> None:
        if self._ended():
            raise ValueError(f"stage: the claim is {self.s.stage}")

    def _require(self, *stages: str) -> None:
        if self.s.stage not in stages:
            raise ValueError(
                f"stage: not possible while the claim is {self.s.stage} (needs {' or '.join(stages)})"
            )

    def _revivable_by(self, *deadlines: str) -> bool:
        """Forfeited at one of these cut-offs, and still inside the grace period."""
        f = self.s.forfeit
        return (
            self.s.stage == Stage.FORFEITED and not self.s.final and f is not None and f.deadline in deadlines
        )

    def _not_future(self, day: date, field: str) -> None:
        if day > self._today():
            raise ValueError(f"{field}: {day.isoformat()} is in the future")

    def _not_before(self, day: date, earlier: str, field: str) -> None:
        known = self.s.dates.get(earlier)
        if known and day < known:
            raise ValueError(f"{field}: {day.isoformat()} is before {earlier} ({known.isoformat()})")

    def _within(self, deadline: str, day: date, field: str, label: str = "the deadline") -> None:
        d = self.s.deadlines.get(deadline)
        if d is None:
            raise ValueError(f"{field}: the {deadline} is not computed yet; try again in a moment")
        if day > d.due_on:
            raise ValueError(
                f"{field}: {day.isoformat()} is after {label} ({d.due_on.isoformat()}); "
                "only a Departments' extension allows it"
            )

    def _lines(self, numbers: list[int], field: str) -> None:
        facts = self.s.facts
        known = {line.line_number for line in facts.lines} if facts else set()
        unknown = sorted(set(numbers) - known)
        if unknown:
            raise ValueError(f"{field}: no line number(s) {unknown} on this claim (lines {sorted(known)})")
