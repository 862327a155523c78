"""HTTP routes of the notifier: the delivery log, as proof of what was sent when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from sqlalchemy import select

from services.notifier.models import deliveries
from services.notifier.schemas import Delivery
from shared.db import get_engine
from shared.openapi import query_int, v1_problems
from shared.tenants import CurrentTenant

router = APIRouter(prefix="/v1", tags=["deliveries"], responses=v1_problems())


@router.get("/deliveries", response_model=list[Delivery])
async def list_deliveries(
    tenant: CurrentTenant,
    claim_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500), BeforeValidator(query_int)] = 100,
) -> list[Delivery]:
    """Deliveries of this tenant's alerts and open negotiation notices, newest first (targets are
    not shown)."""
    columns = [c for c in deliveries.c if c.name not in ("envelope", "target")]
    stmt = select(*columns).where(deliveries.c.tenant_id == tenant.tenant_id)
    if claim_id:
        stmt = stmt.where(deliveries.c.claim_id == claim_id)
    stmt = stmt.order_by(deliveries.c.id.desc()).limit(limit)
    async with get_engine().connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [Delivery.model_validate(dict(r)) for r in rows]
