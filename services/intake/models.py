"""Tables of the intake service (schema ``intake``). Patient data lives here and nowhere else."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
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
    Column("billed_total", Numeric(14, 2)),  # the lines' billed amounts: an 835's CLP03 is looked up by it
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

# -- files from integrations (835, 837, FHIR EOB, canonical batches): the raw bytes kept compressed
# for audit; one row per tenant and content hash, so the same file posted twice is recognised
intake_files = _Table(
    "intake_files",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(16), nullable=False),  # x12-835 | x12-837 | fhir-eob | json
    Column("content_type", String(200)),
    Column("filename", String(300)),
    Column("size_bytes", BigInteger, nullable=False),
    Column("body_gz", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("received_on", Date, nullable=False),  # in the business time zone: an 835's receipt date
    Column("summary", JSONB, nullable=False),  # counts by result
    Column("results", JSONB, nullable=False),  # the answer given, per claim (replayed to a retry)
    Column("warnings", JSONB, nullable=False),
    UniqueConstraint("tenant_id", "sha256", name="uq_intake_files_sha256"),
    schema=SCHEMA,
)

# -- each claim of an 835 (or FHIR EOB): matched to a claim idrflow tracks and applied, or kept for
# review with its candidates; never dropped. ``natural_key`` recognises the same remittance claim
# arriving in another file (a re-sent ERA).
remittance_claims = _Table(
    "remittance_claims",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("file_id", BigInteger, nullable=False),
    Column("natural_key", String(400), nullable=False),
    Column("source", String(16), nullable=False),  # 835 | fhir-eob
    Column("claim_ref", String(100), nullable=False),  # CLP01 patient control number / EOB claim id
    Column("payer_claim_control_number", String(100)),
    Column("status_code", String(4)),
    Column("reversal", Boolean, nullable=False, server_default="false"),
    Column("claim_filing_indicator", String(4)),
    Column("payer_name", String(200)),
    Column("payee_npi", String(10)),
    Column("payee_tin", String(20)),
    Column("charge_amount", Numeric(12, 2)),
    Column("paid_amount", Numeric(12, 2)),
    Column("cost_sharing", Numeric(12, 2)),
    Column("payment_date", Date),
    Column("trace_number", String(100)),
    Column("received_on", Date, nullable=False),
    Column("nsa_remark_codes", JSONB, nullable=False),
    Column("facts", JSONB, nullable=False),  # the parsed claim (no patient data), for review
    # matched (applied), unmatched, ambiguous, not_candidate, review (matched, a person decides)
    Column("state", String(16), nullable=False),
    Column("applied_as", String(32)),  # initial_payment | payment | none
    Column("claim_id", String(64)),  # the claim it was matched to
    Column("candidates", JSONB, nullable=False),
    Column("reason", Text),
    Column("event_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant_id", "natural_key", name="uq_remittance_claims_natural_key"),
    Index("ix_remittance_claims_review", "tenant_id", "state", "id"),
    Index("ix_remittance_claims_pccn", "tenant_id", "payer_claim_control_number"),
    schema=SCHEMA,
)

outbox = outbox_table(SCHEMA)

# an 835 claim whose patient control number is unknown is looked for by provider, payer and amount
Index("ix_intake_claims_provider", claims.c.tenant_id, claims.c.provider_npi, claims.c.billed_total)
