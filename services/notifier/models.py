"""Tables of the notifier (schema ``notifier``): who hears about a tenant's alerts, and what was sent."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
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
    # pending (waiting for its next_attempt_at) | sending (the channel is being called) | sent |
    # failed (for good) | unconfirmed (the sender stopped mid-send: not sent again)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("provider_message_id", String(300)),
    Column("detail", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the durable retry schedule: when a pending row is due; for a sending row, when its claim
    # expires (the sender died mid-send: the row becomes unconfirmed)
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    # when a channel first answered 429 for this delivery: it fails once that is too long ago
    Column("rate_limited_since", DateTime(timezone=True), nullable=True),
    # the alert's envelope (no patient data), from which the sender renders the message
    Column("envelope", JSONB, nullable=True),
    UniqueConstraint("event_id", "channel", "target", name="uq_deliveries_event_channel_target"),
    Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
    schema=SCHEMA,
)

inbox = inbox_table(SCHEMA)
outbox = outbox_table(SCHEMA)
