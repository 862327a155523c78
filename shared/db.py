"""Database plumbing: the naming convention, engines and sessions, the outbox, inbox and dead-letter
tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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
        # a failing row waits until then (rows with its key wait behind it); parked: given up on
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),
        Column("parked_at", DateTime(timezone=True), nullable=True),
        # the relay's scan: unpublished rows only, by key then id (the head row of each key)
        Index(
            "ix_outbox_unpublished",
            "message_key",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
        schema=schema,
    )


def inbox_table(schema: str) -> Table:
    """Events a consumer has applied: recorded in the same transaction as the effect.

    A schema with an inbox consumes, so it also gets its :func:`dead_letters_table`."""
    table = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
        schema=schema,
    )
    dead_letters_table(schema)
    return table


def dead_letters_table(schema: str) -> Table:
    """Messages a consumer of ``schema`` could never apply (also sent to ``<topic>.dlq``).

    ``idrflow dlq`` lists them and replays one through the schema's outbox (``replayed_at``).
    Defined once per schema; later calls return the same table."""
    existing = metadata.tables.get(f"{schema}.dead_letters")
    if existing is not None:
        return existing
    return Table(
        "dead_letters",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("consumer", String(100), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", Text, nullable=True),
        Column("event_id", Uuid, nullable=True),
        Column("event_type", Text, nullable=True),
        Column("tenant_id", Text, nullable=True),
        Column("claim_id", Text, nullable=True),
        Column("error_type", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("replayed_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("consumer", "topic", "partition", "offset", name="uq_dead_letters_position"),
        Index("ix_dead_letters_open", "created_at", postgresql_where=text("replayed_at IS NULL")),
        schema=schema,
    )


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> AsyncEngine:
    # hide_parameters: a failed statement is logged without its values (they can be patient data)
    settings = get_settings()
    return create_async_engine(
        url or settings.database_url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        hide_parameters=True,
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
