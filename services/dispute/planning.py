"""What a claim asks the planner: the ``PlanRequest`` of its state (pure, used by the workflow), and
the request of a new claim's first pass, which the dispute consumer plans before it starts the
workflow (``FirstPlan``): the workflow then takes no planning step in its first workflow task."""

from __future__ import annotations

import hashlib
from datetime import date

from services.dispute.schemas import ClaimState, PlanRequest
from shared.events import ClaimAdjudicated

# deadlines that get reminders (the ones a person must act on)
REMIND = (
    "open_negotiation_initiation_deadline",
    "idr_initiation_deadline",
    "post_cooling_off_initiation_deadline",
    "offer_and_fee_deadline",
    "provider_refund_deadline",
    "improper_batch_resubmission_deadline",
)


def plan_request(s: ClaimState, *, spread: bool) -> PlanRequest:
    """The deadlines and reminders ``s`` needs; ``spread``: its reminders wake before the reminder
    time, by claim (the workflow's ``reminder-spread`` patch)."""
    assert s.facts is not None
    return PlanRequest(
        bill_sent_on=s.facts.bill_sent_on,
        initial_payment_received_on=s.dates.get("initial_payment_received_on"),
        open_negotiation_started_on=s.dates.get("open_negotiation_started_on"),
        idr_initiated_on=s.dates.get("idr_initiated_on"),
        idre_selected_on=s.dates.get("idre_selected_on"),
        determination_on=s.dates.get("determination_on"),
        prior_determination_on=s.dates.get("prior_determination_on"),
        prior_batched=s.prior_batched,
        prior_open_negotiation_started_on=s.dates.get("prior_open_negotiation_started_on"),
        tenant_id=s.tenant_id,
        state=s.facts.state,
        extensions=list(s.extensions),
        remind=list(REMIND),
        agreement_on=s.dates.get("agreement_on"),
        improper_batch_notice_on=s.dates.get("improper_batch_notice_on"),
        joint_selection=s.selected_jointly,
        refund_due=bool(s.refund_owed and s.refund_sent < s.refund_owed),
        **({"claim_id": s.claim_id, "reminder_spread": True} if spread else {}),
    )


def first_stage_dates(facts: ClaimAdjudicated) -> dict[str, date]:
    """The dates a claim's first stage is planned from: the initial payment, and the open negotiation
    start the facts carry with it (planned with it, so the first pass plans once; the workflow drops
    it when the plan puts it after its deadline, which that date does not move)."""
    dates: dict[str, date] = {}
    if facts.initial_payment_received_on:
        dates["initial_payment_received_on"] = facts.initial_payment_received_on
        if facts.open_negotiation_started_on:
            dates["open_negotiation_started_on"] = facts.open_negotiation_started_on
    return dates


def first_pass_request(tenant_id: str, claim_id: str, facts: ClaimAdjudicated) -> PlanRequest:
    """The request of a new claim's first pass, as the workflow makes it."""
    state = ClaimState(tenant_id=tenant_id, claim_id=claim_id, facts=facts, dates=first_stage_dates(facts))
    return plan_request(state, spread=True)


def request_digest(req: PlanRequest) -> str:
    """What a ``FirstPlan`` answers: a digest of the request's JSON (the same request, the same
    digest; a release that adds a field to the request never mistakes an older plan for its own)."""
    return hashlib.sha256(req.model_dump_json().encode()).hexdigest()
