"""The one event envelope, the event models and the registry that maps event types to topics.

Payloads carry what the process needs (claim and line identifiers, codes, amounts, dates) and never
patient names or member ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import get_settings

EVENT_NAMESPACE = uuid.UUID("5b0c1c9e-3f0e-4c57-9a55-4a1f3c0d1d7e")


def deterministic_event_id(*parts: str) -> uuid.UUID:
    """The same parts always give the same event id, so a retried emitter cannot duplicate."""
    return uuid.uuid5(EVENT_NAMESPACE, "/".join(parts))


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic_setting: ClassVar[str]


class ClaimLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line_number: int
    service_code: str
    code_system: str
    service_date: date
    billed: Decimal
    paid: Decimal
    qpa: Decimal | None = None
    cost_sharing: Decimal | None = None  # the patient's share (PR); None: not known


class ClaimAdjudicated(EventPayload):
    """A claim's initial payment or denial is known: the open-negotiation clock may start."""

    event_type: ClassVar[str] = "ClaimAdjudicated"
    topic_setting: ClassVar[str] = "topic_claims"
    claim_id: str
    event_sequence: int
    source_system: str
    payer_name: str
    plan_type: str
    payer_contact_email: str | None = None
    provider_npi: str
    provider_tin: str
    provider_name: str
    service_category: str
    state: str
    bill_sent_on: date | None = None
    # None while the plan has neither paid nor denied (its 30-day clock from bill_sent_on runs)
    initial_payment_received_on: date | None = None
    lines: list[ClaimLine]
    # set when the open negotiation notice went out before the claim reached idrflow
    open_negotiation_started_on: date | None = None


class ClaimStageChanged(EventPayload):
    event_type: ClassVar[str] = "ClaimStageChanged"
    topic_setting: ClassVar[str] = "topic_lifecycle"
    stage: str
    previous_stage: str | None = None
    reason: str
    next_deadline_name: str | None = None
    next_deadline_on: date | None = None


class DeadlineApproaching(EventPayload):
    event_type: ClassVar[str] = "DeadlineApproaching"
    topic_setting: ClassVar[str] = "topic_alerts"
    deadline_name: str
    due_on: date
    due_at: datetime
    business_days_left: int
    payer_name: str
    stage: str
    action: str
    explanation: str


class DeadlineMissed(EventPayload):
    event_type: ClassVar[str] = "DeadlineMissed"
    topic_setting: ClassVar[str] = "topic_alerts"
    deadline_name: str
    due_on: date
    payer_name: str
    stage: str
    consequence: str


class PaymentOverdue(EventPayload):
    """The plan has not paid the amount determined within 30 calendar days; repeated as it escalates."""

    event_type: ClassVar[str] = "PaymentOverdue"
    topic_setting: ClassVar[str] = "topic_alerts"
    deadline_name: str
    due_on: date
    amount_owed: Decimal
    amount_received: Decimal
    amount_outstanding: Decimal
    days_overdue: int
    escalation_level: int
    payer_name: str
    stage: str
    action: str


class ClaimCorrectionRejected(EventPayload):
    """A corrected claim event the rules cannot plan: the claim goes on with its previous facts."""

    event_type: ClassVar[str] = "ClaimCorrectionRejected"
    topic_setting: ClassVar[str] = "topic_alerts"
    event_sequence: int
    fields: list[str]
    reason: str
    payer_name: str
    stage: str


class OpenNegotiationNoticeIssued(EventPayload):
    """A generated open negotiation notice, to be sent to the other party by the notifier."""

    event_type: ClassVar[str] = "OpenNegotiationNoticeIssued"
    topic_setting: ClassVar[str] = "topic_notices"
    notice_id: uuid.UUID
    recipient: str
    subject: str
    html: str
    pdf_base64: str
    pdf_sha256: str


class OpenNegotiationNoticeDelivered(EventPayload):
    """Proof that a notice went out (or why it did not)."""

    event_type: ClassVar[str] = "OpenNegotiationNoticeDelivered"
    topic_setting: ClassVar[str] = "topic_notices"
    notice_id: uuid.UUID
    recipient: str
    channel: str
    status: Literal["sent", "failed"]
    message_id: str | None = None
    sent_at: datetime | None = None
    detail: str | None = None


class DeadLetter(EventPayload):
    """An operator alert: a consumer could never apply a message and dead-lettered it (``idrflow dlq
    show <dead_letter_id>``). Ids, the topic and the error class only: never the message or the
    error text, which may quote the payload."""

    event_type: ClassVar[str] = "DeadLetter"
    topic_setting: ClassVar[str] = "topic_alerts"
    dead_letter_id: uuid.UUID
    consumer: str
    topic: str
    partition: int
    offset: int
    error_type: str
    original_event_id: uuid.UUID | None = None
    original_event_type: str | None = None


class RemittancePayment(EventPayload):
    """A matched 835 claim (or FHIR EOB) paid money toward a claim whose initial payment idrflow
    already knows: the plan's payment of an award or settlement. The dispute service applies it as
    the claim's ``payment-received`` action once (the event id is the update id)."""

    event_type: ClassVar[str] = "RemittancePayment"
    topic_setting: ClassVar[str] = "topic_claims"
    remittance_id: int
    amount: Decimal
    paid_on: date
    reference: str  # the trace (check/EFT) number and the payer's claim control number
    source: Literal["835", "fhir-eob"] = "835"


REGISTRY: dict[str, type[EventPayload]] = {
    m.event_type: m
    for m in (
        ClaimAdjudicated,
        ClaimStageChanged,
        DeadlineApproaching,
        DeadlineMissed,
        PaymentOverdue,
        ClaimCorrectionRejected,
        OpenNegotiationNoticeIssued,
        OpenNegotiationNoticeDelivered,
        DeadLetter,
        RemittancePayment,
    )
}


def topic_for(event_type: str) -> str:
    model = REGISTRY[event_type]
    topic: str = getattr(get_settings(), model.topic_setting)
    return topic


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    schema_version: int
    occurred_at: datetime
    tenant_id: str
    claim_id: str
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        tenant_id: str,
        claim_id: str,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        return cls(
            event_id=event_id or uuid.uuid4(),
            event_type=payload.event_type,
            schema_version=payload.schema_version,
            occurred_at=occurred_at or datetime.now(UTC),
            tenant_id=tenant_id,
            claim_id=claim_id,
            payload=payload.model_dump(mode="json"),
        )

    def parse_payload(self) -> EventPayload:
        try:
            model = REGISTRY[self.event_type]
        except KeyError:
            raise ValueError(f"unknown event type {self.event_type!r}") from None
        return model.model_validate(self.payload)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)
