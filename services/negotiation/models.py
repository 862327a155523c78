"""Tables of the negotiation service (schema ``negotiation``): generated notices and their proof."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, LargeBinary, String, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import action_requests_table, inbox_table, metadata, outbox_table

SCHEMA = "negotiation"

notices = Table(
    "notices",
    metadata,
    Column("notice_id", Uuid, primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("claim_id", String(64), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("content", JSONB, nullable=False),  # what the notice says, as data
    Column("html", Text, nullable=False),
    Column("pdf", LargeBinary, nullable=False),
    Column("pdf_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False, server_default="issued"),  # issued | sent | failed
    Column("message_id", String(300)),
    Column("sent_at", DateTime(timezone=True)),
    Column("detail", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

outbox = outbox_table(SCHEMA)
inbox = inbox_table(SCHEMA)

action_requests = action_requests_table(SCHEMA)
