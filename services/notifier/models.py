"""Tables of the notifier (schema ``notifier``): who hears about a tenant's alerts, and what was sent."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)

from shared.db import inbox_table, metadata, outbox_table

SCHEMA = "notifier"

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # email | slack
    Column("target", String(500), nullable=False),  # an address or a webhook URL
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "channel", "target"),
    schema=SCHEMA,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Uuid, nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(500), nullable=False),
    Column("status", String(16), nullable=False),  # sent | failed
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("provider_message_id", String(300)),
    Column("detail", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", "channel", "target", name="uq_deliveries_event_channel_target"),
    schema=SCHEMA,
)

inbox = inbox_table(SCHEMA)
outbox = outbox_table(SCHEMA)
