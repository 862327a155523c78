"""Models of the dispute service: workflow and activity contracts, and the HTTP API's answers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ClaimAdjudicated
from shared.rules.batching import BatchItem
from shared.rules.overrides import OverrideIn


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimLifecycleInput(Contract):
    tenant_id: str
    claim_id: str


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
    initial_payment_received_on: date
    tenant_id: str | None = None  # whose calendar overrides apply
    state: str | None = None  # state-scoped extensions


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


class Transition(Contract):
    stage: str
    at: datetime
    reason: str
    by: str = "system"


class SentReminder(Contract):
    deadline: str
    business_days_before: int
    sent_at: datetime
    event_id: UUID


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
