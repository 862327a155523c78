"""Models of the dispute service: workflow and activity contracts, and the HTTP API's answers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ClaimAdjudicated
from shared.lifecycle import ExtensionGranted, MemberInfo, MemberResult
from shared.rules.batching import BatchItem
from shared.rules.overrides import OverrideIn


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimLifecycleInput(Contract):
    tenant_id: str
    claim_id: str
    state: ClaimState | None = None  # set by continue-as-new
    payment_escalation_days: int = 7  # PaymentOverdue repeats this often until paid or closed
    negotiation_task_queue: str = "negotiation"


class ClaimEventSignal(Contract):
    """A claim event delivered to the workflow (signal-with-start); de-duplicated by event id."""

    event_id: UUID
    occurred_at: datetime
    facts: ClaimAdjudicated


class DeadlineView(Contract):
    name: str
    due_on: date
    due_at: datetime
    rule_id: str
    rule_set: str
    explanation: str


class ReminderPlan(Contract):
    deadline: str
    business_days_before: int
    fire_at: datetime


class PlanRequest(Contract):
    initial_payment_received_on: date | None = None
    open_negotiation_started_on: date | None = None
    idr_initiated_on: date | None = None
    idre_selected_on: date | None = None
    determination_on: date | None = None
    prior_determination_on: date | None = None  # a cooling-off that holds this claim
    bill_sent_on: date | None = None
    batched: bool = False
    tenant_id: str | None = None  # whose calendar overrides apply
    state: str | None = None  # state-scoped extensions
    extensions: list[ExtensionGranted] = []  # granted for this claim
    remind: list[str] = []  # deadlines that get reminders


class Plan(Contract):
    deadlines: list[DeadlineView]
    reminders: list[ReminderPlan]


class EmitRequest(Contract):
    """An event to stage in the dispute outbox; the id is deterministic, so a retry cannot duplicate."""

    event_id: UUID
    event_type: str
    tenant_id: str
    claim_id: str
    occurred_at: datetime
    payload: dict[str, Any]


class AlertRequest(Contract):
    """A deadline alert: the activity counts the business days left as of ``as_of``."""

    event_id: UUID
    tenant_id: str
    claim_id: str
    as_of: datetime
    deadline: DeadlineView
    payer_name: str
    stage: str
    missed: bool = False
    overdue: PaymentPosition | None = None  # a PaymentOverdue escalation instead of a deadline alert


class PaymentPosition(Contract):
    amount_owed: Decimal
    amount_received: Decimal
    days_overdue: int
    escalation_level: int


class Transition(Contract):
    stage: str
    at: datetime
    reason: str
    by: str = "system"


class SentReminder(Contract):
    deadline: str
    due_on: date | None = None
    business_days_before: int
    sent_at: datetime
    event_id: UUID


class ActionRecord(Contract):
    action: str
    at: datetime
    actor: str
    details: dict[str, Any]


class ClaimStatus(Contract):
    tenant_id: str
    claim_id: str
    workflow_id: str
    stage: str
    payer_name: str | None
    event_sequence: int | None
    deadlines: dict[str, DeadlineView]
    next_deadline: DeadlineView | None
    reminders_sent: list[SentReminder]
    transitions: list[Transition]
    actions: list[ActionRecord] = []
    dates: dict[str, date] = {}
    dispute_number: str | None = None
    idr_entity: str | None = None
    amount_owed: Decimal | None = None
    amount_received: Decimal = Decimal("0")
    payment_escalations: int = 0
    facts: ClaimAdjudicated | None = None  # what the claim event said (no patient data)


class DeadlineOut(Contract):
    due_on: date
    rule_id: str
    rule_set: str
    explanation: str
    moved_by: list[str]


class ScheduleOut(Contract):
    deadlines: dict[str, DeadlineOut]
    administrative_fee_per_party: Decimal | None = None
    idre_fee_range: tuple[Decimal, Decimal] | None = None
    fee_rule_set: str | None = None


class OverrideOut(Contract):
    id: int
    override: OverrideIn


class BatchRequest(Contract):
    items: list[BatchItem] = Field(max_length=1000)
    bundled: bool = False


class ClaimState(Contract):
    """Everything the lifecycle workflow knows: carried whole across continue-as-new."""

    tenant_id: str
    claim_id: str
    facts: ClaimAdjudicated | None = None
    seen_events: list[str] = []
    stage: str = "received"
    stage_before_review: str | None = None
    transitions: list[Transition] = []
    actions: list[ActionRecord] = []
    deadlines: dict[str, DeadlineView] = {}
    reminders_sent: list[SentReminder] = []
    passed: list[str] = []  # "name@due_on" of deadlines whose cut-off has been handled
    dates: dict[str, date] = {}
    extensions: list[ExtensionGranted] = []
    dispute_number: str | None = None
    idr_entity: str | None = None
    offer_submitted: bool = False
    fees_paid: bool = False
    provider_prevailed: bool | None = None
    amount_owed: Decimal | None = None
    amount_received: Decimal = Decimal("0")
    fee_refund_received: bool = False
    payment_escalations: int = 0
    pending_events: list[EmitRequest] = []


ClaimLifecycleInput.model_rebuild()


class BatchStatus(Contract):
    batch_id: str
    tenant_id: str
    stage: str
    members: list[str]
    member_info: list[MemberInfo]
    actions: list[ActionRecord]
    results: dict[str, list[MemberResult]]
