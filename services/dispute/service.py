"""Domain operations of the dispute service: the tenant's calendar overrides."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from services.dispute.models import calendar_overrides
from services.dispute.schemas import ClaimStatus
from shared.db import get_engine, unit_of_work
from shared.http import Problem
from shared.rules.calendar import Overrides
from shared.rules.overrides import OverrideIn, to_overrides
from shared.temporal import claim_workflow_id, query_workflow


async def list_overrides(tenant_id: str, engine: AsyncEngine | None = None) -> list[tuple[int, OverrideIn]]:
    async with (engine or get_engine()).connect() as conn:
        rows = (
            await conn.execute(
                select(calendar_overrides)
                .where(calendar_overrides.c.tenant_id == tenant_id)
                .order_by(calendar_overrides.c.start, calendar_overrides.c.id)
            )
        ).all()
    return [
        (
            r.id,
            OverrideIn(
                kind=r.kind,
                start=r.start,
                end=r.end,
                name=r.name,
                reference=r.reference,
                moves_to=r.moves_to,
                deadlines=r.deadlines,
                states=r.states,
            ),
        )
        for r in rows
    ]


async def tenant_overrides(tenant_id: str, engine: AsyncEngine | None = None) -> Overrides:
    return to_overrides([o for _, o in await list_overrides(tenant_id, engine)])


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


async def remove_override(tenant_id: str, override_id: int, engine: AsyncEngine | None = None) -> bool:
    async with unit_of_work(engine) as session:
        result = await session.execute(
            delete(calendar_overrides).where(
                calendar_overrides.c.tenant_id == tenant_id, calendar_overrides.c.id == override_id
            )
        )
    return bool(getattr(result, "rowcount", 0))


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
