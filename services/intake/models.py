"""Tables of the intake service (schema ``intake``). Patient data lives here and nowhere else."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy import Table as _Table
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import metadata, outbox_table

SCHEMA = "intake"

claims = _Table(
    "claims",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("source_system", String(64), nullable=False),
    Column("latest_event_sequence", Integer, nullable=False),
    Column("payer_name", String(200), nullable=False),
    Column("plan_type", String(64), nullable=False),
    Column("payer_contact_email", String(320)),
    Column("provider_npi", String(10), nullable=False),
    Column("provider_tin", String(9), nullable=False),
    Column("provider_name", String(200), nullable=False),
    Column("patient_name", String(200)),
    Column("patient_member_id", String(80)),
    Column("patient_date_of_birth", Date),
    Column("service_category", String(64), nullable=False),
    Column("state", String(2), nullable=False),
    Column("bill_sent_on", Date),
    Column("initial_payment_received_on", Date),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "claim_id"),
    schema=SCHEMA,
)

claim_lines = _Table(
    "claim_lines",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("line_number", SmallInteger, nullable=False),
    Column("service_code", String(5), nullable=False),
    Column("code_system", String(8), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("billed", Numeric(12, 2), nullable=False),
    Column("paid", Numeric(12, 2), nullable=False),
    Column("qpa", Numeric(12, 2)),
    Column("cost_sharing", Numeric(12, 2)),
    PrimaryKeyConstraint("tenant_id", "claim_id", "line_number"),
    ForeignKeyConstraint(
        ["tenant_id", "claim_id"], [claims.c.tenant_id, claims.c.claim_id], ondelete="CASCADE"
    ),
    schema=SCHEMA,
)

claim_events = _Table(
    "claim_events",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("event_sequence", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("idempotency_key", String(300), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "claim_id", "event_sequence"),
    schema=SCHEMA,
)

idempotency_keys = _Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("key", String(300), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "key"),
    UniqueConstraint("tenant_id", "request_sha256", "key", name="uq_idempotency_keys_request"),
    schema=SCHEMA,
)

outbox = outbox_table(SCHEMA)
