"""OpenNegotiationWorkflow: the 30-business-day open negotiation period of one claim, a child of its
lifecycle workflow (id ``negotiation:{tenant}:{claim_id}``, task queue ``negotiation``).

Offers and counteroffers are recorded as validated updates; a settlement ends it early; otherwise it
ends when the period's last business day has passed. Deterministic code only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared.lifecycle import NegotiationInput, NegotiationOutcome, OfferMade, Settlement


class NegotiationStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_id: str
    started_on: str
    period_ends_at: str
    settled: bool
    offers: list[OfferMade]
    settlement: Settlement | None


@workflow.defn(name="OpenNegotiationWorkflow")
class OpenNegotiationWorkflow:
    def __init__(self) -> None:
        self.inp: NegotiationInput | None = None
        self.moved = 0  # how often the period's end moved (a closure or an extension)
        self.offers: list[OfferMade] = []
        self.settled: Settlement | None = None

    @workflow.query(name="status")
    def status(self) -> NegotiationStatus:
        assert self.inp is not None
        return NegotiationStatus(
            claim_id=self.inp.claim_id,
            started_on=self.inp.started_on.isoformat(),
            period_ends_at=self.inp.period_end_at,
            settled=self.settled is not None,
            offers=list(self.offers),
            settlement=self.settled,
        )

    @workflow.signal(name="period_end_moved")
    def period_end_moved(self, period_end_at: str) -> None:
        """The parent re-planned the period's end (a closure or an extension moved it)."""
        if self.inp is not None and period_end_at != self.inp.period_end_at:
            self.inp = self.inp.model_copy(update={"period_end_at": period_end_at})
            self.moved += 1

    @workflow.update(name="offer")
    def offer(self, a: OfferMade) -> NegotiationStatus:
        self.offers.append(a)
        return self.status()

    @offer.validator
    def _v_offer(self, a: OfferMade) -> None:
        self._open(a.offered_on, "offered_on")
        assert self.inp is not None
        unknown = sorted(set(a.amounts) - set(self.inp.line_numbers))
        if unknown:
            raise ValueError(
                f"amounts: no line number(s) {unknown} on this claim (lines {self.inp.line_numbers})"
            )
        if any(v < 0 for v in a.amounts.values()):
            raise ValueError("amounts: an offer cannot be negative")

    @workflow.update(name="settle")
    def settle(self, a: Settlement) -> NegotiationStatus:
        self.settled = a
        return self.status()

    @settle.validator
    def _v_settle(self, a: Settlement) -> None:
        self._open(a.settled_on, "settled_on")

    def _open(self, day: date, field: str) -> None:
        if self.inp is None:
            raise ValueError("stage: open negotiation has not started")
        if self.settled is not None:
            raise ValueError(f"stage: already settled on {self.settled.settled_on.isoformat()}")
        if workflow.now() >= datetime.fromisoformat(self.inp.period_end_at):
            raise ValueError("stage: the open negotiation period has ended")
        if day < self.inp.started_on:
            raise ValueError(f"{field}: before open negotiation began ({self.inp.started_on.isoformat()})")

    def _settled_or_moved(self, moved: int) -> Callable[[], bool]:
        return lambda: self.settled is not None or self.moved != moved

    @workflow.run
    async def run(self, inp: NegotiationInput) -> NegotiationOutcome:
        self.inp = inp
        while self.settled is None:
            remaining = datetime.fromisoformat(self.inp.period_end_at) - workflow.now()
            if remaining <= timedelta(0):
                break
            try:
                await workflow.wait_condition(self._settled_or_moved(self.moved), timeout=remaining)
            except TimeoutError:
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        return NegotiationOutcome(
            settled=self.settled is not None, settlement=self.settled, offers=self.offers
        )
