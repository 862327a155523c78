"""Tables of the dispute service (schema ``dispute``): the claim record (the system of record for
every claim's stage, facts, deadlines, actions, transitions and alerts, written by the lifecycle
workflow's activities in the same transaction as the outbox rows that announce them), the tenant's
calendar overrides, and the idempotency records of the action endpoints."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.db import action_requests_table, inbox_table, metadata, outbox_table

SCHEMA = "dispute"

outbox = outbox_table(SCHEMA)
inbox = inbox_table(SCHEMA)
action_requests = action_requests_table(SCHEMA)

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

MONEY = Numeric(12, 2)

claims = Table(
    "claims",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("record_seq", BigInteger, nullable=False),  # a stale write never overwrites a newer one
    Column("stage", String(40), nullable=False),
    Column("final", Boolean, nullable=False, server_default=text("false")),  # the workflow has ended
    Column("payer_name", String(200)),
    Column("plan_type", String(64)),
    Column("provider_npi", String(10)),
    Column("provider_tin", String(9)),
    Column("state", String(2)),
    Column("service_category", String(64)),
    Column("service_codes", ARRAY(String(16)), nullable=False, server_default=text("'{}'")),
    Column("event_sequence", Integer),
    Column("next_deadline_name", String(80)),
    Column("next_deadline_on", Date),
    Column("next_deadline_at", DateTime(timezone=True)),
    Column("amount_billed", MONEY, nullable=False, server_default=text("0")),
    Column("amount_initially_paid", MONEY, nullable=False, server_default=text("0")),
    Column("amount_owed", MONEY),
    Column("amount_received", MONEY, nullable=False, server_default=text("0")),
    Column("refund_owed", MONEY),  # the provider's refund when the award is below what the plan paid
    Column("refund_sent", MONEY, nullable=False, server_default=text("0")),
    Column("amount_at_stake", MONEY, nullable=False, server_default=text("0")),
    Column("dispute_number", String(40)),
    Column("idr_entity", String(200)),
    Column("payment_escalations", Integer, nullable=False, server_default=text("0")),
    Column("dates", JSONB, nullable=False, server_default=text("'{}'")),
    Column("facts", JSONB),  # the ClaimAdjudicated in force (no patient data)
    Column("workflow_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("closed_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "claim_id"),
    # the worklist: open claims by urgency, then by the filters
    Index("ix_dispute_claims_urgency", "tenant_id", "next_deadline_at", "claim_id"),
    Index("ix_dispute_claims_stage", "tenant_id", "stage", "next_deadline_at", "claim_id"),
    Index("ix_dispute_claims_payer", "tenant_id", "payer_name", "next_deadline_at", "claim_id"),
    Index("ix_dispute_claims_npi", "tenant_id", "provider_npi", "next_deadline_at"),
    Index("ix_dispute_claims_tin", "tenant_id", "provider_tin", "next_deadline_at"),
    Index("ix_dispute_claims_service_codes", "service_codes", postgresql_using="gin"),
    schema=SCHEMA,
)

claim_lines = Table(
    "claim_lines",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("line_number", SmallInteger, nullable=False),
    Column("service_code", String(16), nullable=False),
    Column("code_system", String(8), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("billed", MONEY, nullable=False),
    Column("paid", MONEY, nullable=False),
    Column("qpa", MONEY),
    Column("cost_sharing", MONEY),
    Column("provider_offer", MONEY),  # to the IDR entity
    Column("payer_offer", MONEY),
    Column("determined_amount", MONEY),
    Column("prevailing_party", String(16)),
    PrimaryKeyConstraint("tenant_id", "claim_id", "line_number"),
    schema=SCHEMA,
)

claim_transitions = Table(
    "claim_transitions",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("stage", String(40), nullable=False),
    Column("previous_stage", String(40)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("changes", JSONB),  # what a correction changed: field -> [old, new]
    PrimaryKeyConstraint("tenant_id", "claim_id", "seq"),
    schema=SCHEMA,
)

claim_actions = Table(
    "claim_actions",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("action", String(60), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("outcome", String(16), nullable=False, server_default="applied"),  # applied | rejected
    Column("idempotency_key", String(300)),  # the Temporal update id (from Idempotency-Key)
    Column("details", JSONB, nullable=False),
    PrimaryKeyConstraint("tenant_id", "claim_id", "seq"),
    schema=SCHEMA,
)

claim_deadlines = Table(
    "claim_deadlines",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("name", String(80), nullable=False),
    Column("due_on", Date, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("rule_id", String(40), nullable=False),
    Column("rule_set", String(80), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("superseded_at", DateTime(timezone=True)),  # null: in force
    PrimaryKeyConstraint("tenant_id", "claim_id", "name", "due_on"),
    schema=SCHEMA,
)

claim_alerts = Table(
    "claim_alerts",
    metadata,
    Column("event_id", Uuid, nullable=False, primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("kind", String(40), nullable=False),  # reminder-5, missed, overdue-2, correction-rejected, ...
    Column("deadline_name", String(80)),
    Column("due_on", Date),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),
    Index("ix_dispute_claim_alerts_claim", "tenant_id", "claim_id", "at"),
    schema=SCHEMA,
)
