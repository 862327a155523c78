"""HTTP routes of the intake service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from services.intake.schemas import ClaimAccepted, ClaimIn
from services.intake.service import accept_claim
from shared.http import PROBLEM_JSON
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["claims"])

PROBLEMS = {
    s: {"content": {PROBLEM_JSON: {}}, "description": d}
    for s, d in {
        400: "Malformed JSON",
        401: "Missing or unknown API key",
        409: "Idempotency key reused with another body, or event sequence taken",
        422: "Validation error naming each field and reason",
    }.items()
}


@router.post("/claims", status_code=202, response_model=ClaimAccepted, responses=PROBLEMS)  # type: ignore[arg-type]
async def post_claim(
    claim: ClaimIn,
    tenant: CurrentTenant,
    idempotency_key: Annotated[str | None, Header(max_length=300)] = None,
) -> JSONResponse:
    """Accept a claim event (initial payment or denial known). Durable in PostgreSQL before the
    202; the lifecycle workflow starts from the published ``ClaimAdjudicated`` event."""
    outcome = await accept_claim(tenant.tenant_id, claim, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)
