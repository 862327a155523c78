"""HTTP routes of the dispute service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator

from services.dispute.filters import BadCursor, ClaimFilters, stages_of
from services.dispute.records import audit_timeline, claim_record, export_csv, worklist
from services.dispute.schemas import (
    BatchRequest,
    ClaimPage,
    ClaimStatus,
    DeadlineOut,
    EligibilityFactsIn,
    OverrideIn,
    OverrideOut,
    ScheduleOut,
    TimelineEntry,
    TriggersIn,
)
from services.dispute.service import (
    add_override,
    affected_claims,
    list_overrides,
    remove_override,
    replan_claims,
    tenant_overrides,
    unplanned_claims,
)
from shared.db import get_engine
from shared.http import Problem
from shared.ids import ClaimIdPath
from shared.openapi import IsoDate, QueryMoney, problems, query_bool, query_int, v1_problems
from shared.rules.batching import BatchCheck, check_batch
from shared.rules.calendar import calendar_with
from shared.rules.deadlines import compute_schedule
from shared.rules.eligibility import EligibilityResult, screen
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["claims"])

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"  # the shape; whether it decodes is checked by the worklist
PROBLEMS = v1_problems()
NOT_FOUND = v1_problems(404, _404="No such claim for this tenant")
RULES = v1_problems(
    400, _422="Validation error naming each field and reason, or dates the rules cannot answer for"
)


# FastAPI takes the last of a repeated scalar parameter; the OpenAPI document says each is given once
SCALAR_QUERY = (
    "payer",
    "provider_npi",
    "provider_tin",
    "service_code",
    "due_before",
    "due_after",
    "min_amount_at_stake",
    "include_final",
    "limit",
    "cursor",
)


def _given_once(request: Request) -> None:
    for name in SCALAR_QUERY:
        if len(request.query_params.getlist(name)) > 1:
            raise Problem(
                422, "validation-error", "The request is not valid", f"{name}: give it once", field=name
            )


def claim_filters(
    request: Request,
    stage: Annotated[
        list[str] | None, Query(description="one or several stages (repeat or comma-separate)")
    ] = None,
    payer: Annotated[str | None, Query(description="the payer's name, exactly")] = None,
    provider_npi: Annotated[str | None, Query(max_length=10)] = None,
    provider_tin: Annotated[str | None, Query(max_length=9)] = None,
    service_code: Annotated[str | None, Query(max_length=16, description="claims with a line of it")] = None,
    due_before: Annotated[IsoDate | None, Query(description="next deadline on or before, YYYY-MM-DD")] = None,
    due_after: Annotated[IsoDate | None, Query(description="next deadline on or after, YYYY-MM-DD")] = None,
    min_amount_at_stake: Annotated[
        QueryMoney | None, Query(description="what the provider can still recover, at least")
    ] = None,
    include_final: Annotated[
        bool, Query(description="also claims whose lifecycle has ended"), BeforeValidator(query_bool)
    ] = False,
) -> ClaimFilters:
    _given_once(request)
    return ClaimFilters(
        stages=stages_of(stage),
        payer=payer,
        provider_npi=provider_npi,
        provider_tin=provider_tin,
        service_code=service_code,
        due_before=due_before,
        due_after=due_after,
        min_amount_at_stake=min_amount_at_stake,
        include_final=include_final,
    )


Filters = Annotated[ClaimFilters, Depends(claim_filters)]


def _missing(claim_id: str) -> Problem:
    return Problem(
        404,
        "not-found",
        "Not found",
        f"No claim {claim_id!r} for this tenant (a claim just posted appears within seconds).",
        field="claim_id",
    )


@router.get("/claims", response_model=ClaimPage, responses=PROBLEMS)
async def get_claims(
    tenant: CurrentTenant,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500), BeforeValidator(query_int)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page"),
    ] = None,
) -> ClaimPage:
    """The worklist: open claims (all with ``include_final``) by urgency, next deadline first and
    claims without one last, filtered; pages by ``cursor``."""
    try:
        return await worklist(get_engine(), tenant.tenant_id, filters, limit, cursor)
    except BadCursor as exc:
        raise Problem(
            422, "validation-error", "The request is not valid", f"cursor: {exc}", field="cursor"
        ) from exc


@router.get(
    "/claims.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per claim and line"}, **PROBLEMS},
)
async def get_claims_csv(tenant: CurrentTenant, filters: Filters) -> StreamingResponse:
    """The claims of the worklist's filters as CSV, one row per claim and line, CMS-style dispute
    columns; money as plain decimal strings."""
    return StreamingResponse(
        export_csv(get_engine(), tenant.tenant_id, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="claims.csv"'},
    )


@router.get("/claims/{claim_id}", response_model=ClaimStatus, responses=NOT_FOUND)
async def get_claim(claim_id: ClaimIdPath, tenant: CurrentTenant) -> ClaimStatus:
    """The claim's stage, deadlines in force, actions and transitions, read from its record."""
    status = await claim_record(get_engine(), tenant.tenant_id, claim_id)
    if status is None:
        raise _missing(claim_id)
    return status


@router.get("/claims/{claim_id}/audit", response_model=list[TimelineEntry], responses=NOT_FOUND)
async def get_claim_audit(claim_id: ClaimIdPath, tenant: CurrentTenant) -> list[TimelineEntry]:
    """Everything that happened to the claim, in time order: transitions, actions (rejected ones
    too), deadlines planned and superseded, alerts."""
    timeline = await audit_timeline(get_engine(), tenant.tenant_id, claim_id)
    if timeline is None:
        raise _missing(claim_id)
    return timeline


rules = APIRouter(prefix="/v1/rules", tags=["rules"], responses=RULES)


@rules.post("/deadlines", response_model=ScheduleOut)
async def post_deadlines(triggers: TriggersIn, tenant: CurrentTenant) -> ScheduleOut:
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
async def post_override(override: OverrideIn, tenant: CurrentTenant, request: Request) -> OverrideOut:
    """Add a closure (days that are not business days) or an extension (deadlines in a range move).
    Every open claim of the tenant whose deadlines it can move plans them again (``replanned``)."""
    new_id = await add_override(tenant.tenant_id, override)
    replanned = await _replan(request, tenant.tenant_id, override)
    return OverrideOut(id=new_id, override=override, replanned=replanned)


@rules.delete(
    "/overrides/{override_id}",
    response_model=OverrideOut,
    responses=problems(404, _404="No such override for this tenant"),
)
async def delete_override(
    override_id: Annotated[int, Path(ge=1, le=2**63 - 1), BeforeValidator(query_int)],
    tenant: CurrentTenant,
    request: Request,
) -> OverrideOut:
    """Remove an override; the open claims it moved plan their deadlines again (``replanned``)."""
    removed = await remove_override(tenant.tenant_id, override_id)
    if removed is None:
        raise Problem(
            404, "override-not-found", "Override not found", f"No override {override_id}", field="override_id"
        )
    replanned = await _replan(request, tenant.tenant_id, removed)
    return OverrideOut(id=override_id, override=removed, replanned=replanned)


async def _replan(request: Request, tenant_id: str, override: OverrideIn) -> int:
    """Running claims see a calendar change at once, not only claims planned afterwards: those on
    the record it can move, and those not planned yet (their first plan, made by the consumer, may
    predate the change). Asked in that order reversed: a claim planned meanwhile is on the record."""
    client = request.app.state.temporal
    unplanned = await unplanned_claims(client, tenant_id)
    claim_ids = sorted({*await affected_claims(tenant_id, override), *unplanned})
    return await replan_claims(client, tenant_id, claim_ids) if claim_ids else 0


@rules.post("/eligibility", response_model=EligibilityResult)
async def post_eligibility(facts: EligibilityFactsIn, tenant: CurrentTenant) -> EligibilityResult:
    """Screen a claim for federal IDR: ``eligible``, ``ineligible`` or ``needs_review``, with the
    reason codes of idr-rules Part B section 1.3 and the facts that drove each."""
    overrides = await tenant_overrides(tenant.tenant_id)
    try:
        return screen(facts, calendar=calendar_with(overrides.closures))
    except ValueError as exc:  # a date the calendar cannot count from
        raise Problem(
            422, "rule-not-applicable", "The rules cannot answer for these dates", str(exc)
        ) from exc


@rules.post("/batch-check", response_model=BatchCheck)
async def post_batch_check(batch: BatchRequest, tenant: CurrentTenant) -> BatchCheck:
    """Whether line items may be disputed together: same NPI or TIN, same plan, related items under
    the rule set in force, the 30-business-day window, the line-item cap, air ambulance per transport;
    or, with ``bundled``, whether they form one bundled dispute."""
    overrides = await tenant_overrides(tenant.tenant_id)
    try:
        return check_batch(batch.items, bundled=batch.bundled, calendar=calendar_with(overrides.closures))
    except ValueError as exc:  # a date the calendar cannot count from (e.g. 2000-01-01)
        raise Problem(
            422, "rule-not-applicable", "The rules cannot answer for these dates", str(exc)
        ) from exc
