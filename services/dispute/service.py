"""Domain operations of the dispute service: the tenant's calendar overrides (and the claims they
move), a claim's live status. The claim record is written by
``services.dispute.record_writes``."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from services.dispute.models import (
    calendar_overrides,
    claim_deadlines,
    claims,
)
from services.dispute.schemas import ClaimStatus
from shared.db import get_engine, unit_of_work
from shared.http import Problem
from shared.rules.calendar import Overrides
from shared.rules.overrides import OverrideIn, to_overrides
from shared.temporal import claim_workflow_id, query_workflow

log = logging.getLogger(__name__)


async def list_overrides(
    tenant_id: str, engine: AsyncEngine | None = None, session: AsyncSession | None = None
) -> list[tuple[int, OverrideIn]]:
    """The tenant's overrides, read in ``session`` (the caller's transaction) when given."""
    query = (
        select(calendar_overrides)
        .where(calendar_overrides.c.tenant_id == tenant_id)
        .order_by(calendar_overrides.c.start, calendar_overrides.c.id)
    )
    if session is not None:
        rows = (await session.execute(query)).all()
    else:
        async with (engine or get_engine()).connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # one query: no BEGIN, no ROLLBACK
            rows = (await conn.execute(query)).all()
    return [(r.id, _override(r)) for r in rows]


async def tenant_overrides(
    tenant_id: str, engine: AsyncEngine | None = None, session: AsyncSession | None = None
) -> Overrides:
    return to_overrides([o for _, o in await list_overrides(tenant_id, engine, session)])


async def add_override(tenant_id: str, override: OverrideIn, engine: AsyncEngine | None = None) -> int:
    async with unit_of_work(engine) as session:
        new_id = (
            await session.execute(
                insert(calendar_overrides)
                .values(tenant_id=tenant_id, **override.model_dump())
                .returning(calendar_overrides.c.id)
            )
        ).scalar_one()
    return int(new_id)


async def remove_override(
    tenant_id: str, override_id: int, engine: AsyncEngine | None = None
) -> OverrideIn | None:
    """Delete one override; what it said, or None when the tenant has no such override."""
    async with unit_of_work(engine) as session:
        row = (
            await session.execute(
                delete(calendar_overrides)
                .where(calendar_overrides.c.tenant_id == tenant_id, calendar_overrides.c.id == override_id)
                .returning(*calendar_overrides.c)
            )
        ).first()
    return None if row is None else _override(row)


def _override(row: Any) -> OverrideIn:
    return OverrideIn(
        kind=row.kind,
        start=row.start,
        end=row.end,
        name=row.name,
        reference=row.reference,
        moves_to=row.moves_to,
        deadlines=row.deadlines,
        states=row.states,
    )


async def affected_claims(
    tenant_id: str, override: OverrideIn, engine: AsyncEngine | None = None
) -> list[str]:
    """The tenant's open claims whose deadlines an override can move: a closure moves business-day
    deadlines due on or after its first day; an extension moves deadlines inside its range."""
    d = claim_deadlines
    due = d.c.due_on >= override.start
    if override.kind == "extension":  # in its range, or already moved by it (when it is removed)
        due = or_(and_(due, d.c.due_on <= override.end), d.c.due_on == override.moves_to)
    if override.deadlines:
        due = and_(due, d.c.name.in_(list(override.deadlines)))
    query = (
        select(claims.c.claim_id)
        .where(claims.c.tenant_id == tenant_id, claims.c.final.is_(False))
        .where(
            select(d.c.name)
            .where(
                d.c.tenant_id == claims.c.tenant_id,
                d.c.claim_id == claims.c.claim_id,
                d.c.superseded_at.is_(None),
                due,
            )
            .exists()
        )
    )
    if override.states:
        query = query.where(claims.c.state.in_(list(override.states)))
    async with (engine or get_engine()).connect() as conn:
        return [r.claim_id for r in (await conn.execute(query)).all()]


async def unplanned_claims(client: Client, tenant_id: str) -> list[str]:
    """The tenant's running claims not planned yet (``IdrStage`` still ``received``): a claim whose
    first plan the consumer made before a calendar change, and whose record is not written yet."""
    query = (
        "WorkflowType = 'ClaimLifecycleWorkflow' AND ExecutionStatus = 'Running' "
        f"AND IdrTenant = '{tenant_id}' AND IdrStage = 'received'"  # tenant ids are [a-z0-9-]
    )
    prefix = claim_workflow_id(tenant_id, "")
    try:
        return [
            w.id.removeprefix(prefix) async for w in client.list_workflows(query) if w.id.startswith(prefix)
        ]
    except RPCError as exc:  # the override is saved; the claims on the record are still replanned
        log.warning("tenant %s: claims not planned yet could not be listed (%s)", tenant_id, exc.status)
        return []


async def replan_claims(client: Client, tenant_id: str, claim_ids: list[str], concurrency: int = 20) -> int:
    """Tell each claim's workflow that the calendar changed; how many were told (a claim whose
    workflow has ended meanwhile is skipped)."""
    import asyncio

    from temporalio.service import RPCError

    gate = asyncio.Semaphore(concurrency)

    async def one(claim_id: str) -> bool:
        async with gate:
            try:
                await client.get_workflow_handle(claim_workflow_id(tenant_id, claim_id)).signal(
                    "calendar_changed"
                )
                return True
            except RPCError:
                return False

    return sum(await asyncio.gather(*(one(c) for c in claim_ids)))


async def claim_status(
    client: Client,
    tenant_id: str,
    claim_id: str,
    *,
    stage: str | None = None,
    field: str = "stage",
    why: str = "",
) -> ClaimStatus:
    """A claim's status from its workflow (404 if unknown); with ``stage``, a 409 naming ``field``
    unless the claim is in that stage and its facts are known."""
    status = await query_workflow(
        client,
        claim_workflow_id(tenant_id, claim_id),
        "status",
        ClaimStatus,
        f"No claim {claim_id!r} for this tenant (a claim just posted appears within seconds).",
    )
    if stage is not None and (status.stage != stage or status.facts is None):
        raise Problem(
            409,
            "action-rejected",
            "The action is not possible now",
            f"{field}: claim {claim_id} is {status.stage}; {why}",
            field=field,
        )
    return status
