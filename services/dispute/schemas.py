"""Models of the dispute service: workflow and activity contracts, and the HTTP API's answers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events import ClaimAdjudicated, ClaimLine
from shared.lifecycle import CalendarDate, ExtensionGranted, MemberInfo, MemberResult
from shared.openapi import JsonBool, exact_input
from shared.rules.batching import BatchItem
from shared.rules.deadlines import Triggers
from shared.rules.eligibility import EligibilityFacts
from shared.rules.overrides import OverrideIn as RulesOverrideIn


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tolerant(BaseModel):
    """A contract carried across workflow runs and releases: a field the code no longer knows is
    ignored (removed fields), a field the blob lacks takes its default (added fields)."""

    model_config = ConfigDict(extra="ignore")


class ClaimLifecycleInput(Tolerant):
    tenant_id: str
    claim_id: str
    state: ClaimState | None = None  # set by continue-as-new
    first_plan: FirstPlan | None = None  # set by the consumer for a claim new to the record
    payment_escalation_days: int = 7  # PaymentOverdue repeats this often until paid or closed
    negotiation_task_queue: str = "negotiation"
    forfeiture_grace_days: int = 120  # a forfeited claim can be revived this long
    history_event_limit: int = 0  # continue-as-new past this many history events (0: when suggested)


class ClaimEventSignal(Contract):
    """A claim event delivered to the workflow (signal-with-start); de-duplicated by event id."""

    event_id: UUID
    occurred_at: datetime
    facts: ClaimAdjudicated


class DeadlineView(Tolerant):
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
    prior_batched: bool = False
    prior_open_negotiation_started_on: date | None = None
    bill_sent_on: date | None = None
    batched: bool = False
    tenant_id: str | None = None  # whose calendar overrides apply
    state: str | None = None  # state-scoped extensions
    extensions: list[ExtensionGranted] = []  # granted for this claim
    remind: list[str] = []  # deadlines that get reminders
    agreement_on: date | None = None  # a settlement: the plan's 30-day payment clock
    improper_batch_notice_on: date | None = None  # improperly batched: the resubmission window
    joint_selection: bool = False  # the 1-business-day notice of a joint selection (D5a)
    refund_due: bool = False  # track the provider's refund on the payment clock
    claim_id: str | None = None  # whose reminders are spread (with tenant_id)
    reminder_spread: bool = False  # reminders wake up to reminder_spread_minutes before reminder_time


class Plan(Contract):
    deadlines: list[DeadlineView]
    reminders: list[ReminderPlan]


class FirstPlan(Tolerant):
    """A new claim's first plan, made by the dispute consumer before it starts the workflow, with the
    digest of the request it answers (``planning.request_digest``): the workflow uses it when its own
    first request has that digest (kept in history with the workflow's input), and plans by its
    activity otherwise."""

    request_digest: str
    plan: Plan


class EmitRequest(Tolerant):
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
    kind: str = ""  # reminder-5, missed, overdue-2: as recorded on the claim


class PaymentPosition(Contract):
    amount_owed: Decimal
    amount_received: Decimal
    days_overdue: int
    escalation_level: int
    cost_sharing_known: bool = True  # False: the amount owed is an upper bound


class Transition(Tolerant):
    stage: str
    at: datetime
    reason: str
    by: str = "system"
    previous_stage: str | None = None
    changes: dict[str, Any] | None = None  # what a correction changed: field -> [old, new]


class SentReminder(Tolerant):
    deadline: str
    due_on: date | None = None
    business_days_before: int
    sent_at: datetime
    event_id: UUID


class ActionRecord(Tolerant):
    action: str
    at: datetime
    actor: str
    details: dict[str, Any]
    outcome: str = "applied"  # applied | rejected
    idempotency_key: str | None = None  # the Temporal update id (from the Idempotency-Key header)


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
    refund_owed: Decimal | None = None
    refund_sent: Decimal = Decimal("0")
    facts: ClaimAdjudicated | None = None  # what the claim event said (no patient data)
    final: bool = False  # the workflow has ended (read from the claim record)
    closed_at: datetime | None = None
    amount_at_stake: Decimal | None = None  # what the provider can still recover
    updated_at: datetime | None = None


class ClaimSummary(Contract):
    """One row of the worklist (``GET /v1/claims``), read from ``dispute.claims``."""

    claim_id: str
    stage: str
    final: bool
    payer_name: str | None
    provider_npi: str | None
    provider_tin: str | None
    state: str | None
    service_codes: list[str]
    next_deadline_name: str | None
    next_deadline_on: date | None
    next_deadline_at: datetime | None
    amount_billed: Decimal
    amount_initially_paid: Decimal
    amount_owed: Decimal | None
    amount_received: Decimal
    amount_at_stake: Decimal
    dispute_number: str | None
    idr_entity: str | None
    updated_at: datetime


class ClaimPage(Contract):
    """A page of the worklist, most urgent first; pass ``next_cursor`` back for the next page."""

    items: list[ClaimSummary]
    next_cursor: str | None


class TimelineEntry(Contract):
    """One entry of a claim's audit timeline: a transition, an action (applied or rejected), a
    deadline planned or superseded, or an alert."""

    at: datetime
    # transition | action | action_rejected | deadline_planned | deadline_superseded, or an alert's
    # own kind: reminder-5, missed, overdue-1, correction-rejected, ...
    kind: str
    summary: str
    actor: str | None = None
    details: dict[str, Any] = {}


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
    override: RulesOverrideIn
    replanned: int | None = Field(
        default=None, description="open claims told to plan their deadlines again (on add and delete)"
    )


# the rules' models as HTTP bodies (see shared.openapi.exact_input); where the rules count business
# days from a date, it must lie in the calendar, and the OpenAPI pattern says so
TriggersIn = exact_input(Triggers, "Triggers")
EligibilityFactsIn = exact_input(
    EligibilityFacts,
    "EligibilityFacts",
    state=(str, Field(pattern=r"^[A-Za-z]{2}$", description="USPS state code (any case)")),
)
OverrideIn = exact_input(RulesOverrideIn, "OverrideIn", date_type=CalendarDate)
BatchItemIn = exact_input(BatchItem, "BatchItem", date_type=CalendarDate)


class BatchRequest(Contract):
    items: list[BatchItemIn] = Field(max_length=1000)  # type: ignore[valid-type]
    bundled: JsonBool = False


class Forfeit(Tolerant):
    """Which cut-off forfeited the claim, from which stage: what a revival needs."""

    deadline: str
    due_on: date
    stage_before: str
    at: datetime


class ClaimState(Tolerant):
    """Everything the lifecycle workflow knows: carried whole across continue-as-new. Tolerant of
    added and removed fields, so the state of a previous release loads (tested)."""

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
    refund_owed: Decimal | None = None  # the provider's, when the award is below what the plan paid
    refund_sent: Decimal = Decimal("0")
    prior_initiated_by: str | None = None  # who initiated the dispute whose cooling-off applies
    prior_batched: bool = False  # the prior dispute was batched (its cooling-off may be shorter)
    fee_refund_received: bool = False
    fee_refund_share: str | None = None  # full (prevailed), half (a tie, a settlement during IDR)
    preferred_entity: str | None = None  # named at initiation; deemed selected without an objection
    preferred_entity_objected: bool = False
    selected_jointly: bool = False  # the initiating party tells the Departments within 1 business day
    payment_escalations: int = 0
    pending_events: list[EmitRequest] = []
    incoming_facts: ClaimAdjudicated | None = None  # a correction not yet planned
    rejected_sequence: int = 0  # the latest claim event the rules refused
    forfeit: Forfeit | None = None  # set while forfeited and revivable
    forfeited_since: datetime | None = None  # the first forfeiture: the grace period runs from it
    final: bool = False  # the lifecycle has ended for good
    applied_updates: list[str] = []  # update ids applied (the latest few hundred): a retry is a no-op
    record_seq: int = 0  # writes of the claim record, so a stale write never wins
    recorded_transitions: int = 0
    recorded_actions: int = 0

    @field_validator("facts", "incoming_facts", mode="before")
    @classmethod
    def _known_facts(cls, value: Any) -> Any:
        """Carried facts of another release: fields this release does not know are dropped."""
        return _known(value, ClaimAdjudicated, {"lines": ClaimLine})

    @field_validator("extensions", mode="before")
    @classmethod
    def _known_extensions(cls, value: Any) -> Any:
        return [_known(v, ExtensionGranted, {}) for v in value] if isinstance(value, list) else value


def _known(value: Any, model: type[BaseModel], nested: dict[str, type[BaseModel]]) -> Any:
    """``value`` (a dict from JSON) without the keys ``model`` does not declare, lists of nested
    models included; anything else is returned as it is."""
    if not isinstance(value, dict):
        return value
    kept = {k: v for k, v in value.items() if k in model.model_fields}
    for key, inner in nested.items():
        if isinstance(kept.get(key), list):
            kept[key] = [_known(v, inner, {}) for v in kept[key]]
    return kept


class LineRecord(Contract):
    line_number: int
    provider_offer: Decimal | None = None
    payer_offer: Decimal | None = None
    determined_amount: Decimal | None = None
    prevailing_party: str | None = None


class NumberedTransition(Transition):
    seq: int


class NumberedAction(ActionRecord):
    seq: int


class RecordRequest(Contract):
    """One write of the claim record: the current row, what is new since the last write, and the
    events that announce it, in one transaction (so the record is never behind Kafka)."""

    record_seq: int
    tenant_id: str
    claim_id: str
    at: datetime
    stage: str
    final: bool
    facts: ClaimAdjudicated | None
    dates: dict[str, date]
    deadlines: list[DeadlineView]
    next_deadline: DeadlineView | None
    amount_owed: Decimal | None
    amount_received: Decimal
    payment_escalations: int
    refund_owed: Decimal | None = None
    refund_sent: Decimal = Decimal("0")
    dispute_number: str | None
    idr_entity: str | None
    lines: list[LineRecord]
    transitions: list[NumberedTransition]
    actions: list[NumberedAction]
    events: list[EmitRequest]


ClaimLifecycleInput.model_rebuild()


class BatchStatus(Contract):
    batch_id: str
    tenant_id: str
    stage: str
    members: list[str]
    member_info: list[MemberInfo]
    actions: list[ActionRecord]
    results: dict[str, list[MemberResult]]
    left: list[MemberResult] = []  # members that left the batch (closed, or acted alone), with why


# a model that names a class defined after it is completed here, at import: the workflow modules
# are imported once, outside the sandbox (shared.temporal.workflow_runner), and a model left to
# complete itself on first use inside a workflow could not see this module's later classes
AlertRequest.model_rebuild()
