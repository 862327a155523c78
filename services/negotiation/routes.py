"""HTTP routes of the negotiation service: the open negotiation notice, offers and settlement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from services.dispute.schemas import ClaimStatus
from services.negotiation.workflows import NegotiationStatus
from shared.http import ACTION_PROBLEMS
from shared.lifecycle import NoticeSent, OfferMade, ResponseNoticeReceived, Settlement, actor_of
from shared.temporal import claim_workflow_id, execute_update, negotiation_workflow_id, query_workflow
from shared.tenants import CurrentTenant

router = APIRouter(
    prefix="/v1/claims/{claim_id}/open-negotiation", tags=["open negotiation"], responses=ACTION_PROBLEMS
)
Actor = Annotated[str | None, Header(max_length=200)]


@router.post("/notice", response_model=ClaimStatus)
async def notice_sent(
    claim_id: str, body: NoticeSent, tenant: CurrentTenant, request: Request, x_actor: Actor = None
) -> ClaimStatus:
    """The open negotiation notice was sent (to whom, how): the 30-business-day period starts."""
    return await execute_update(
        request.app.state.temporal,
        claim_workflow_id(tenant.tenant_id, claim_id),
        "open_negotiation_notice_sent",
        actor_of(body, tenant.tenant_id, x_actor),
        ClaimStatus,
    )


@router.post("/response-notice", response_model=ClaimStatus)
async def response_notice(
    claim_id: str,
    body: ResponseNoticeReceived,
    tenant: CurrentTenant,
    request: Request,
    x_actor: Actor = None,
) -> ClaimStatus:
    """The other party's open negotiation response notice arrived (2026 rule, when switched on)."""
    return await execute_update(
        request.app.state.temporal,
        claim_workflow_id(tenant.tenant_id, claim_id),
        "response_notice_received",
        actor_of(body, tenant.tenant_id, x_actor),
        ClaimStatus,
    )


@router.post("/offers", response_model=NegotiationStatus)
async def offer(
    claim_id: str, body: OfferMade, tenant: CurrentTenant, request: Request, x_actor: Actor = None
) -> NegotiationStatus:
    """An offer or counteroffer, amounts per line."""
    return await execute_update(
        request.app.state.temporal,
        negotiation_workflow_id(tenant.tenant_id, claim_id),
        "offer",
        actor_of(body, tenant.tenant_id, x_actor),
        NegotiationStatus,
    )


@router.post("/settlement", response_model=NegotiationStatus)
async def settle(
    claim_id: str, body: Settlement, tenant: CurrentTenant, request: Request, x_actor: Actor = None
) -> NegotiationStatus:
    """The parties settled: open negotiation ends and the claim is ``settled``."""
    return await execute_update(
        request.app.state.temporal,
        negotiation_workflow_id(tenant.tenant_id, claim_id),
        "settle",
        actor_of(body, tenant.tenant_id, x_actor),
        NegotiationStatus,
    )


@router.get("", response_model=NegotiationStatus)
async def status(claim_id: str, tenant: CurrentTenant, request: Request) -> NegotiationStatus:
    """The offers and settlement so far."""
    return await query_workflow(
        request.app.state.temporal,
        negotiation_workflow_id(tenant.tenant_id, claim_id),
        "status",
        NegotiationStatus,
        f"No open negotiation for claim {claim_id!r}: send the notice first.",
    )
