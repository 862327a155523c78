"""Tenants and their API keys (schema ``platform``, shared by every service's HTTP API).

Only a SHA-256 of each key is stored. A request authenticates with ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Column, DateTime, String, Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import get_engine, metadata, unit_of_work
from shared.http import Problem
from shared.ids import check_tenant_id, valid_tenant_id
from shared.logs import log_tenant
from shared.settings import get_settings

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("api_key_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema="platform",
)


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key(tenant_id: str) -> str:
    return f"idr_{tenant_id}_{secrets.token_urlsafe(24)}"


async def upsert_tenant(tenant_id: str, name: str, api_key: str, engine: AsyncEngine | None = None) -> None:
    """Create the tenant, or give it this API key and name if it exists (the id is checked)."""
    check_tenant_id(tenant_id)
    stmt = insert(tenants).values(tenant_id=tenant_id, name=name, api_key_sha256=hash_key(api_key))
    stmt = stmt.on_conflict_do_update(
        index_elements=[tenants.c.tenant_id],
        set_={"name": stmt.excluded.name, "api_key_sha256": stmt.excluded.api_key_sha256},
    )
    async with unit_of_work(engine) as session:
        await session.execute(stmt)
    _known.clear()  # a key rotated by this process stops working here at once


# a known key's tenant, for a few seconds: every request checks its key, and this spares a database
# round trip per request; a rotated or removed key stops working within api_key_cache_seconds
_known: dict[str, tuple[Tenant, float]] = {}


async def tenant_for_key(api_key: str, engine: AsyncEngine | None = None) -> Tenant | None:
    digest = hash_key(api_key)
    ttl = get_settings().api_key_cache_seconds
    now = time.monotonic()
    cached = _known.get(digest)
    if cached is not None and cached[1] > now and engine is None:
        return cached[0]
    tenant = await _lookup(digest, engine)
    if tenant is not None and ttl > 0 and engine is None:
        if len(_known) > 10_000:
            _known.clear()
        _known[digest] = (tenant, now + ttl)
    return tenant


async def _lookup(digest: str, engine: AsyncEngine | None) -> Tenant | None:
    async with (engine or get_engine()).connect() as conn:
        row = (
            await conn.execute(
                select(tenants.c.tenant_id, tenants.c.name).where(tenants.c.api_key_sha256 == digest)
            )
        ).first()
    return Tenant(row.tenant_id, row.name) if row else None


async def current_tenant(request: Request) -> Tenant:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(
            401,
            "unauthenticated",
            "Missing API key",
            "Send the tenant's API key as 'Authorization: Bearer <key>'.",
            field="Authorization",
        )
    tenant = await tenant_for_key(key.strip())
    if tenant is None:
        raise Problem(
            401, "unauthenticated", "Unknown API key", "The API key is not valid.", field="Authorization"
        )
    log_tenant.set(tenant.tenant_id)
    if not valid_tenant_id(tenant.tenant_id):  # made before ids were checked: could reach another's claims
        raise Problem(
            401,
            "unauthenticated",
            "Tenant id not allowed",
            f"The tenant id {tenant.tenant_id!r} may collide with another tenant's; create it again with a "
            "valid id (idrflow tenants create).",
            field="Authorization",
        )
    return tenant


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
