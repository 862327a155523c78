"""HTTP routes of the negotiation service: the open negotiation notice, offers and settlement."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from services.dispute.schemas import ClaimStatus
from services.dispute.service import claim_status
from services.negotiation.initiation import (
    InitiationNoticeOut,
    InitiationNoticeRequest,
    initiation_content,
    render_initiation,
)
from services.negotiation.models import action_requests
from services.negotiation.schemas import NoticeOut, NoticeRequest
from services.negotiation.service import find_notice, issue_notice, list_notices, notice_document
from services.negotiation.workflows import NegotiationStatus
from shared.actions import ACTION_PROBLEMS, add_update_route
from shared.idempotency import REPLAYED_RESPONSE_HEADERS, IdempotencyKey, run_idempotent, uuid_for
from shared.ids import ClaimIdPath
from shared.lifecycle import NoticeSent, OfferMade, ResponseNoticeReceived, Settlement
from shared.openapi import exact_input, problems
from shared.temporal import claim_workflow_id, negotiation_workflow_id, query_workflow
from shared.tenants import CurrentTenant

# the Notice of IDR Initiation's body, its attestation a JSON boolean only (see shared.openapi)
InitiationNoticeIn = exact_input(InitiationNoticeRequest, "InitiationNoticeRequest")
NOT_FOUND = problems(404, _404="No such notice for this claim")

router = APIRouter(
    prefix="/v1/claims/{claim_id}/open-negotiation", tags=["open negotiation"], responses=ACTION_PROBLEMS
)


@router.post(
    "/notices",
    response_model=NoticeOut,
    status_code=202,
    responses={202: {"description": "The notice, issued", "headers": REPLAYED_RESPONSE_HEADERS}},
)
async def create_notice(
    claim_id: ClaimIdPath,
    body: NoticeRequest,
    tenant: CurrentTenant,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Generate the open negotiation notice (HTML and PDF, stored with its SHA-256) and send it to the
    payer by email through the notifier. When the notifier confirms delivery, the proof (message id,
    time, recipient) is stored with the notice and the claim's open negotiation starts.

    While a notice for the claim is issued or sent, another is a 409 naming it unless the body says
    ``"resend": true``. With an ``Idempotency-Key``, a retry returns the first notice (one notice, one
    email)."""

    async def run(update_id: str | None) -> NoticeOut:
        notice_id = uuid_for(update_id) if update_id else None
        if notice_id and (issued := await find_notice(tenant.tenant_id, notice_id)):
            return issued  # an earlier attempt with this key issued it
        status = await claim_status(
            request.app.state.temporal,
            tenant.tenant_id,
            claim_id,
            stage="open_negotiation_window",
            why="a notice starts open negotiation",
        )
        assert status.facts is not None
        return await issue_notice(tenant.tenant_id, status.facts, body, notice_id=notice_id)

    return await run_idempotent(
        request, action_requests, tenant.tenant_id, idempotency_key, body, run, status_code=202
    )


@router.post("/idr-initiation-notice", response_model=InitiationNoticeOut)
async def idr_initiation_notice(
    claim_id: ClaimIdPath,
    body: InitiationNoticeIn,  # type: ignore[valid-type]
    tenant: CurrentTenant,
    request: Request,
) -> InitiationNoticeOut:
    """The Notice of IDR Initiation for a claim in its initiation window: its required contents
    (QPA per item, the open negotiation start, plan type, state, contacts, the attestation, the
    preferred entity) checked, every missing one named in a 422, and the document rendered (HTML
    and PDF). Check it here before initiating in the portal."""
    status = await claim_status(
        request.app.state.temporal,
        tenant.tenant_id,
        claim_id,
        stage="idr_initiation_window",
        why="the notice is prepared in the IDR initiation window",
    )
    assert status.facts is not None
    content = initiation_content(status.facts, status.dates.get("open_negotiation_started_on"), body)
    return await asyncio.to_thread(render_initiation, content)


@router.get("/notices", response_model=list[NoticeOut])
async def get_notices(claim_id: ClaimIdPath, tenant: CurrentTenant) -> list[NoticeOut]:
    """The claim's notices with their delivery proof."""
    return await list_notices(tenant.tenant_id, claim_id)


@router.get(
    "/notices/{notice_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The notice (PDF)"}, **NOT_FOUND},
)
async def notice_pdf(claim_id: ClaimIdPath, notice_id: UUID, tenant: CurrentTenant) -> Response:
    row = await notice_document(tenant.tenant_id, notice_id)
    return Response(row.pdf, media_type="application/pdf", headers={"X-Content-SHA256": row.pdf_sha256})


@router.get("/notices/{notice_id}.html", response_class=HTMLResponse, responses=NOT_FOUND)
async def notice_html(claim_id: ClaimIdPath, notice_id: UUID, tenant: CurrentTenant) -> HTMLResponse:
    row = await notice_document(tenant.tenant_id, notice_id)
    return HTMLResponse(row.html)


@router.get("", response_model=NegotiationStatus)
async def status(claim_id: ClaimIdPath, tenant: CurrentTenant, request: Request) -> NegotiationStatus:
    """The offers and settlement so far."""
    return await query_workflow(
        request.app.state.temporal,
        negotiation_workflow_id(tenant.tenant_id, claim_id),
        "status",
        NegotiationStatus,
        f"No open negotiation for claim {claim_id!r}: send the notice first.",
    )


add_update_route(
    router,
    "/notice",
    update="open_negotiation_notice_sent",
    body=NoticeSent,
    result=ClaimStatus,
    workflow_id=claim_workflow_id,
    requests_table=action_requests,
    summary="The open negotiation notice was sent (to whom, how): the 30-business-day period starts",
)
add_update_route(
    router,
    "/response-notice",
    update="response_notice_received",
    body=ResponseNoticeReceived,
    result=ClaimStatus,
    workflow_id=claim_workflow_id,
    requests_table=action_requests,
    summary="The other party's open negotiation response notice arrived (2026 rule, when switched on)",
)
add_update_route(
    router,
    "/offers",
    update="offer",
    body=OfferMade,
    result=NegotiationStatus,
    workflow_id=negotiation_workflow_id,
    requests_table=action_requests,
    summary="An offer or counteroffer, amounts per line",
)
add_update_route(
    router,
    "/settlement",
    update="settle",
    body=Settlement,
    result=NegotiationStatus,
    workflow_id=negotiation_workflow_id,
    requests_table=action_requests,
    summary="The parties settled: open negotiation ends and the claim is settled",
)
