"""Database plumbing: the naming convention, engines and sessions, the outbox and inbox tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def outbox_table(schema: str) -> Table:
    """Events written in the same transaction as the domain rows; the relay publishes them."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("message_key", String(300), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("tenant_id", String(64), nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        schema=schema,
    )


def inbox_table(schema: str) -> Table:
    """Events a consumer has applied: recorded in the same transaction as the effect."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
        schema=schema,
    )


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> AsyncEngine:
    # hide_parameters: a failed statement is logged without its values (they can be patient data)
    return create_async_engine(
        url or get_settings().database_url, pool_pre_ping=True, pool_size=5, hide_parameters=True
    )


def session_factory(engine: AsyncEngine | None = None) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine or get_engine(), expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine | None = None) -> AsyncIterator[AsyncSession]:
    """A transaction that commits on success and rolls back on any error."""
    async with session_factory(engine)() as session, session.begin():
        yield session


async def database_ready(engine: AsyncEngine | None = None) -> bool:
    try:
        async with (engine or get_engine()).connect() as conn:
            await conn.execute(text("select 1"))
        return True
    except Exception:
        return False


def action_requests_table(schema: str) -> Table:
    """Idempotency records of action endpoints: the first answer to a key, replayed on a retry.

    A row without ``status_code`` is a request still running (or one whose process died): a retry
    runs it again with the same Temporal update id, which the workflow applies at most once.
    """
    return Table(
        "action_requests",
        metadata,
        Column("tenant_id", String(64), nullable=False),
        Column("key", String(300), nullable=False),
        Column("path", String(300), nullable=False),
        Column("request_sha256", String(64), nullable=False),
        Column("update_id", String(100), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("completed_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("tenant_id", "key"),
        schema=schema,
    )
