"""HTTP endpoints for batched disputes: form a batch (checked by the batching rules), add members,
run the IDR phases once for all, read it. Forming is idempotent on ``batch_id``; adding a member
and the actions honour ``Idempotency-Key`` (see ``shared.idempotency``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services.dispute.models import action_requests
from services.dispute.schemas import BatchStatus
from services.dispute.service import claim_status
from services.dispute.workflows import IdrBatchWorkflow
from shared.actions import ACTION_PROBLEMS, Actor, add_update_route
from shared.http import Problem
from shared.idempotency import IdempotencyKey, run_idempotent
from shared.ids import CLAIM_ID, BatchIdPath
from shared.lifecycle import (
    Action,
    BatchDetermination,
    BatchInput,
    BatchOfferSubmitted,
    EntitySelected,
    FeesPaid,
    IdrInitiated,
    MemberInfo,
    MemberJoined,
    actor_of,
)
from shared.rules.batching import BatchCheck, BatchItem, check_batch
from shared.settings import get_settings
from shared.temporal import execute_update, query_workflow
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=ACTION_PROBLEMS)


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_id: str = Field(pattern=CLAIM_ID)
    members: list[MemberInfo] = Field(min_length=2, max_length=500)


def batch_workflow_id(tenant_id: str, batch_id: str) -> str:
    return f"batch:{tenant_id}:{batch_id}"


async def _items(client: Client, tenant_id: str, members: list[MemberInfo]) -> list[BatchItem]:
    """Each member claim's lines as batch items, from its workflow; every member must be in its
    IDR initiation window."""
    items = []
    for m in members:
        status = await claim_status(
            client,
            tenant_id,
            m.claim_id,
            stage="idr_initiation_window",
            field="members",
            why="members must be in their IDR initiation window",
        )
        f = status.facts
        assert f is not None
        for line in f.lines:
            items.append(
                BatchItem(
                    claim_id=f.claim_id,
                    line_number=line.line_number,
                    provider_npi=f.provider_npi,
                    provider_tin=f.provider_tin,
                    payer_id=f.payer_name,
                    plan_id=m.plan_id or f.payer_name,
                    plan_type=f.plan_type,
                    service_code=line.service_code,
                    code_system=line.code_system,
                    service_date=line.service_date,
                    open_negotiation_started_on=status.dates["open_negotiation_started_on"],
                    service_category=f.service_category,
                    condition_group=m.condition_group,
                    encounter_id=m.encounter_id,
                )
            )
    return items


def _refuse(check: BatchCheck) -> None:
    if not check.ok:
        raise Problem(
            422,
            "batch-not-allowed",
            "These claims cannot be batched",
            "; ".join(f"{v.code}: {v.reason}" for v in check.violations),
            errors=[
                {"field": "members", "reason": f"{v.code}: {v.reason}", "items": v.items}
                for v in check.violations
            ],
        )


def _member_set(members: list[MemberInfo]) -> list[str]:
    return sorted(m.model_dump_json() for m in members)


async def _existing(client: Client, tenant_id: str, body: BatchCreate) -> BatchStatus | None:
    """The batch ``body.batch_id`` if it exists with exactly these members (a retried create), None
    if there is none; a 409 if it exists with other members."""
    try:
        status: BatchStatus = await client.get_workflow_handle(
            batch_workflow_id(tenant_id, body.batch_id)
        ).query(IdrBatchWorkflow.status)
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return None
        raise
    if _member_set(status.member_info) != _member_set(body.members):
        raise Problem(
            409,
            "batch-exists",
            "Batch exists",
            f"Batch {body.batch_id} exists with other members; choose another batch_id.",
            field="batch_id",
        )
    return status


@router.post(
    "",
    response_model=BatchStatus,
    status_code=201,
    responses={200: {"description": "The batch already exists with these members (a retry): as it is now"}},
)
async def create_batch(
    body: BatchCreate, tenant: CurrentTenant, request: Request, response: Response
) -> BatchStatus:
    """Form a batch from claims in their IDR initiation window, if the batching rules allow it.
    Idempotent on ``batch_id``: the same batch again answers 200 with the batch as it is now; the
    same ``batch_id`` with other members is a 409."""
    client: Client = request.app.state.temporal
    existing = await _existing(client, tenant.tenant_id, body)
    if existing is None:
        _refuse(check_batch(await _items(client, tenant.tenant_id, body.members)))
        try:
            handle = await client.start_workflow(
                IdrBatchWorkflow.run,
                BatchInput(tenant_id=tenant.tenant_id, batch_id=body.batch_id, members=body.members),
                id=batch_workflow_id(tenant.tenant_id, body.batch_id),
                task_queue=get_settings().dispute_task_queue,
            )
        except WorkflowAlreadyStartedError as exc:  # a twin started it first
            existing = await _existing(client, tenant.tenant_id, body)
            if existing is None:
                raise Problem(
                    409, "batch-exists", "Batch exists", f"Batch {body.batch_id} exists", field="batch_id"
                ) from exc
        else:
            return await handle.query(IdrBatchWorkflow.status)
    response.status_code = 200
    return existing


@router.get("/{batch_id}", response_model=BatchStatus)
async def get_batch(batch_id: BatchIdPath, tenant: CurrentTenant, request: Request) -> BatchStatus:
    return await query_workflow(
        request.app.state.temporal,
        batch_workflow_id(tenant.tenant_id, batch_id),
        "status",
        BatchStatus,
        f"No batch {batch_id!r} for this tenant.",
    )


@router.post("/{batch_id}/members", response_model=BatchStatus)
async def add_member(
    batch_id: BatchIdPath,
    body: MemberInfo,
    tenant: CurrentTenant,
    request: Request,
    x_actor: Actor = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Add a claim while the batch forms; the batching rules are checked with every member."""
    client: Client = request.app.state.temporal
    action = actor_of(MemberJoined(member=body), tenant.tenant_id, x_actor)

    async def run(update_id: str | None) -> BatchStatus:
        batch = await get_batch(batch_id, tenant, request)
        if body.claim_id not in batch.members:  # else the workflow answers (a retry, or a duplicate)
            _refuse(check_batch(await _items(client, tenant.tenant_id, [*batch.member_info, body])))
        return await execute_update(
            client,
            batch_workflow_id(tenant.tenant_id, batch_id),
            "add_member",
            action,
            BatchStatus,
            update_id=update_id,
        )

    return await run_idempotent(request, action_requests, tenant.tenant_id, idempotency_key, action, run)


def _action(path: str, update: str, model: type[Action], summary: str) -> None:
    add_update_route(
        router,
        f"/{{batch_id}}/actions/{path}",
        update=update,
        body=model,
        result=BatchStatus,
        workflow_id=batch_workflow_id,
        requests_table=action_requests,
        key="batch_id",
        summary=summary,
    )


_action("idr-initiated", "idr_initiated", IdrInitiated, "IDR initiated for the whole batch")
_action("entity-selected", "entity_selected", EntitySelected, "IDR entity selected for the batch")
_action("offer-submitted", "offer_submitted", BatchOfferSubmitted, "Offers per claim and line")
_action("fees-paid", "fees_paid", FeesPaid, "One administrative fee and the batched IDR entity fee paid")
_action("determination", "determination", BatchDetermination, "Determination per claim and line (may split)")
