"""HTTP routes of the dispute service."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.dispute.schemas import BatchRequest, ClaimStatus, DeadlineOut, OverrideOut, ScheduleOut
from services.dispute.service import (
    add_override,
    claim_status,
    list_overrides,
    remove_override,
    tenant_overrides,
)
from shared.http import PROBLEM_JSON, Problem
from shared.rules.batching import BatchCheck, check_batch
from shared.rules.calendar import calendar_with
from shared.rules.deadlines import Triggers, compute_schedule
from shared.rules.eligibility import EligibilityFacts, EligibilityResult, screen
from shared.rules.overrides import OverrideIn
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["claims"])

PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"content": {PROBLEM_JSON: {}}, "description": "Missing or unknown API key"},
    422: {"content": {PROBLEM_JSON: {}}, "description": "Validation error naming each field and reason"},
}


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
    return await claim_status(request.app.state.temporal, tenant.tenant_id, claim_id)


rules = APIRouter(prefix="/v1/rules", tags=["rules"], responses=PROBLEMS)


@rules.post("/deadlines", response_model=ScheduleOut)
async def post_deadlines(triggers: Triggers, tenant: CurrentTenant) -> ScheduleOut:
    """Every deadline the given trigger dates start (idr-rules Part A item 6 and Part B section 2),
    each with its rule id, rule set and a one-line explanation, after this tenant's calendar
    overrides; plus the fees when ``idr_initiated_on`` is given."""
    try:
        schedule = compute_schedule(triggers, overrides=await tenant_overrides(tenant.tenant_id))
    except ValueError as exc:
        raise Problem(
            422, "rule-not-applicable", "The rules cannot answer for these dates", str(exc)
        ) from exc
    return ScheduleOut(
        deadlines={
            n: DeadlineOut(
                due_on=d.due_on,
                rule_id=d.rule_id,
                rule_set=d.rule_set,
                explanation=d.explanation,
                moved_by=list(d.moved_by),
            )
            for n, d in schedule.deadlines.items()
        },
        administrative_fee_per_party=schedule.administrative_fee_per_party,
        idre_fee_range=schedule.idre_fee_range,
        fee_rule_set=schedule.fee_rule_set,
    )


@rules.get("/overrides", response_model=list[OverrideOut])
async def get_overrides(tenant: CurrentTenant) -> list[OverrideOut]:
    """This tenant's closures and extensions, which every deadline it computes takes into account."""
    return [OverrideOut(id=i, override=o) for i, o in await list_overrides(tenant.tenant_id)]


@rules.post("/overrides", response_model=OverrideOut, status_code=201)
async def post_override(override: OverrideIn, tenant: CurrentTenant) -> OverrideOut:
    """Add a closure (days that are not business days) or an extension (deadlines in a range move)."""
    return OverrideOut(id=await add_override(tenant.tenant_id, override), override=override)


@rules.delete("/overrides/{override_id}", status_code=204)
async def delete_override(override_id: int, tenant: CurrentTenant) -> Response:
    if not await remove_override(tenant.tenant_id, override_id):
        raise Problem(
            404, "override-not-found", "Override not found", f"No override {override_id}", field="override_id"
        )
    return Response(status_code=204)


@rules.post("/eligibility", response_model=EligibilityResult)
async def post_eligibility(facts: EligibilityFacts, tenant: CurrentTenant) -> EligibilityResult:
    """Screen a claim for federal IDR: ``eligible``, ``ineligible`` or ``needs_review``, with the
    reason codes of idr-rules Part B section 1.3 and the facts that drove each."""
    overrides = await tenant_overrides(tenant.tenant_id)
    return screen(facts, calendar=calendar_with(overrides.closures))


@rules.post("/batch-check", response_model=BatchCheck)
async def post_batch_check(batch: BatchRequest, tenant: CurrentTenant) -> BatchCheck:
    """Whether line items may be disputed together: same NPI or TIN, same plan, related items under
    the rule set in force, the 30-business-day window, the line-item cap, air ambulance per transport;
    or, with ``bundled``, whether they form one bundled dispute."""
    overrides = await tenant_overrides(tenant.tenant_id)
    return check_batch(batch.items, bundled=batch.bundled, calendar=calendar_with(overrides.closures))
