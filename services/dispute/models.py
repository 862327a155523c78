"""Tables of the dispute service (schema ``dispute``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Identity, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import inbox_table, metadata, outbox_table

SCHEMA = "dispute"

outbox = outbox_table(SCHEMA)
inbox = inbox_table(SCHEMA)

calendar_overrides = Table(
    "calendar_overrides",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # closure | extension
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("moves_to", Date),
    Column("name", String(200), nullable=False),
    Column("reference", String(500), nullable=False, server_default=""),
    Column("deadlines", JSONB),  # list of deadline names, or null for all
    Column("states", JSONB),  # list of state codes, or null for all
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)
