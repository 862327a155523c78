"""HTTP endpoints for the lifecycle actions: each one a validated update of the claim's workflow."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from services.dispute.models import action_requests
from services.dispute.schemas import ClaimStatus
from shared.actions import ACTION_PROBLEMS, add_update_route
from shared.lifecycle import (
    Action,
    Closing,
    CoolingOffApplies,
    Determination,
    EligibilityDecision,
    EligibilityObjection,
    EntityDeclined,
    EntitySelected,
    ExtensionGranted,
    FeeRefundReceived,
    FeesPaid,
    IdrInitiated,
    OfferSubmitted,
    PaymentReceived,
    PreferredEntityObjected,
    RefundSent,
    Settlement,
)
from shared.temporal import claim_workflow_id


@dataclass(frozen=True)
class ActionSpec:
    path: str
    update: str
    model: type[Action]
    summary: str


ACTIONS = (
    ActionSpec(
        "idr-initiated",
        "idr_initiated",
        IdrInitiated,
        "IDR initiated (business days 31-34, CMS dispute number)",
    ),
    ActionSpec(
        "cooling-off",
        "cooling_off_applies",
        CoolingOffApplies,
        "A prior determination's cooling-off holds it",
    ),
    ActionSpec(
        "entity-selected",
        "entity_selected",
        EntitySelected,
        "IDR entity selected (joint or by the Departments)",
    ),
    ActionSpec(
        "preferred-entity-objected",
        "preferred_entity_objected",
        PreferredEntityObjected,
        "The other party objected to the preferred IDR entity (no deemed selection)",
    ),
    ActionSpec(
        "entity-declined",
        "entity_declined",
        EntityDeclined,
        "The IDR entity cannot serve (conflict of interest, decertified): another is selected",
    ),
    ActionSpec(
        "eligibility-objection", "eligibility_objection", EligibilityObjection, "Eligibility objection raised"
    ),
    ActionSpec(
        "eligibility-decision",
        "eligibility_decision",
        EligibilityDecision,
        "The entity's eligibility decision",
    ),
    ActionSpec("offer-submitted", "offer_submitted", OfferSubmitted, "Offer submitted to the IDR entity"),
    ActionSpec("fees-paid", "fees_paid", FeesPaid, "Administrative and IDR entity fees paid"),
    ActionSpec(
        "determination", "determination", Determination, "Payment determination (per line, default or not)"
    ),
    ActionSpec(
        "payment-received", "payment_received", PaymentReceived, "Payment received (manual or a matched 835)"
    ),
    ActionSpec(
        "fee-refund-received", "fee_refund_received", FeeRefundReceived, "IDR entity fee refund received"
    ),
    ActionSpec(
        "refund-sent",
        "refund_sent",
        RefundSent,
        "The provider refunded what the plan paid above the amount determined",
    ),
    ActionSpec("settlement", "settlement", Settlement, "Settled after open negotiation"),
    ActionSpec("extension", "extension_granted", ExtensionGranted, "The Departments granted an extension"),
    ActionSpec("withdraw", "withdrawn", Closing, "Withdraw the dispute"),
    ActionSpec("administrative-closure", "administratively_closed", Closing, "Administratively closed"),
    ActionSpec("close", "closed", Closing, "Close the claim (e.g. an unpaid award referred elsewhere)"),
)


def action_router() -> APIRouter:
    router = APIRouter(prefix="/v1/claims/{claim_id}/actions", tags=["actions"], responses=ACTION_PROBLEMS)
    for spec in ACTIONS:
        add_update_route(
            router,
            f"/{spec.path}",
            update=spec.update,
            body=spec.model,
            result=ClaimStatus,
            workflow_id=claim_workflow_id,
            requests_table=action_requests,
            summary=spec.summary,
        )
    return router
