"""HTTP routes of the intake service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from services.intake.schemas import INTAKE_KEY, ClaimAccepted, ClaimIn
from services.intake.service import accept_claim
from shared.http import FastJSONRoute
from shared.openapi import v1_problems
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["claims"], route_class=FastJSONRoute)

PROBLEMS = v1_problems(
    400,
    409,
    _409="Idempotency key reused with another body, or event sequence taken",
    _422="Validation error naming each field and reason (NPI check digit, dates in order and in the "
    "business-day calendar, a NUL or control character included)",
)

IntakeKey = Annotated[
    str | None,
    Header(
        max_length=300,
        pattern=INTAKE_KEY,
        description="Makes a retry safe (1-300 printable ASCII characters); without it the key is "
        "source_system:claim_id:event_sequence",
    ),
]


@router.post(
    "/claims",
    status_code=202,
    response_model=ClaimAccepted,
    responses=PROBLEMS,
)
async def post_claim(
    claim: ClaimIn, tenant: CurrentTenant, idempotency_key: IntakeKey = None
) -> JSONResponse:
    """Accept a claim event (initial payment or denial known). Durable in PostgreSQL before the
    202; the lifecycle workflow starts from the published ``ClaimAdjudicated`` event."""
    outcome = await accept_claim(tenant.tenant_id, claim, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)
