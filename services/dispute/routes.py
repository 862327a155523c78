"""HTTP routes of the dispute service."""

from __future__ import annotations

from fastapi import APIRouter, Request
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from services.dispute.schemas import ClaimStatus
from services.dispute.workflows import ClaimLifecycleWorkflow
from shared.http import PROBLEM_JSON, Problem
from shared.temporal import claim_workflow_id
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["claims"])


@router.get(
    "/claims/{claim_id}",
    response_model=ClaimStatus,
    responses={
        401: {"content": {PROBLEM_JSON: {}}, "description": "Missing or unknown API key"},
        404: {"content": {PROBLEM_JSON: {}}, "description": "No such claim for this tenant"},
    },
)
async def get_claim(claim_id: str, tenant: CurrentTenant, request: Request) -> ClaimStatus:
    """The claim's stage and every deadline known so far, read from its workflow."""
    client: Client = request.app.state.temporal
    handle = client.get_workflow_handle(claim_workflow_id(tenant.tenant_id, claim_id))
    try:
        status: ClaimStatus = await handle.query(ClaimLifecycleWorkflow.status)
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise Problem(
                404,
                "claim-not-found",
                "Claim not found",
                f"No claim {claim_id!r} for this tenant (a claim just posted appears within seconds).",
                field="claim_id",
            ) from exc
        raise
    return status
