"""Activities of the dispute worker: every piece of I/O and every calendar computation.

Deadlines are computed here, not in workflow code, so the dates are recorded in workflow history
and a calendar change can never break the replay of a running claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.dispute.clock import reminder_offset
from services.dispute.models import outbox
from services.dispute.record_writes import write_alert, write_record
from services.dispute.schemas import (
    AlertRequest,
    ClaimStatus,
    DeadlineView,
    Plan,
    PlanRequest,
    RecordRequest,
    ReminderPlan,
)
from services.dispute.service import tenant_overrides
from shared.db import unit_of_work
from shared.events import DeadlineApproaching, DeadlineMissed, Envelope, EventPayload, PaymentOverdue
from shared.kafka.outbox import add_to_outbox
from shared.lifecycle import (
    Determination,
    EntitySelected,
    FanOut,
    FeesPaid,
    IdrInitiated,
    MemberResult,
    OfferSubmitted,
)
from shared.rules.calendar import BusinessCalendar, Extension, Overrides, calendar_with
from shared.rules.deadlines import (
    Triggers,
    business_days_left,
    compute_schedule,
    cutoff_utc,
    reminder_schedule,
)
from shared.settings import Settings
from shared.temporal import claim_workflow_id


class _MemberAction:
    def __init__(self, update: str, model: type[BaseModel]) -> None:
        self.update = update
        self.model = model


# the IDR-phase actions a batch forwards to its members
MEMBER_ACTIONS = (
    _MemberAction("idr_initiated", IdrInitiated),
    _MemberAction("entity_selected", EntitySelected),
    _MemberAction("offer_submitted", OfferSubmitted),
    _MemberAction("fees_paid", FeesPaid),
    _MemberAction("determination", Determination),
)

ACTIONS = {
    "open_negotiation_initiation_deadline": (
        "Send the open negotiation notice to {payer} by {due} ({cutoff}); "
        "without it the claim cannot go to federal IDR."
    ),
    "idr_initiation_deadline": (
        "Initiate federal IDR in the portal and send the Notice of IDR Initiation to {payer} "
        "by {due} ({cutoff})."
    ),
    "post_cooling_off_initiation_deadline": (
        "The cooling-off has ended: initiate federal IDR for this claim by {due} ({cutoff})."
    ),
    "joint_selection_notice_deadline": (
        "Notify the Departments of the jointly selected IDR entity by {due} ({cutoff})."
    ),
    "improper_batch_resubmission_deadline": (
        "Resubmit the improperly batched dispute, correctly batched, by {due} ({cutoff}); it may be "
        "resubmitted once."
    ),
    "provider_refund_deadline": (
        "Refund {payer} what it paid above the amount determined by {due} ({cutoff}), then record it."
    ),
    "offer_and_fee_deadline": (
        "Submit your offer and pay the administrative and IDR entity fees by {due} ({cutoff}); "
        "a party that misses this loses by default."
    ),
}
CONSEQUENCES = {
    "open_negotiation_initiation_deadline": (
        "Open negotiation was not started in time: the claim is no longer eligible for federal IDR "
        "(OPEN_NEGOTIATION_NOT_INITIATED) unless the Departments grant an extension."
    ),
    "idr_initiation_deadline": (
        "Federal IDR was not initiated within business days 31-34: the claim is no longer eligible "
        "(INITIATION_LATE) unless the Departments grant an extension."
    ),
    "post_cooling_off_initiation_deadline": (
        "IDR was not initiated within 30 business days after the cooling-off: "
        "the claim is no longer eligible."
    ),
    "offer_and_fee_deadline": (
        "No offer and fees were recorded by the deadline: the IDR entity may decide for the other party "
        "by default. Record them now if they were sent."
    ),
    "provider_refund_deadline": (
        "The refund of what the plan paid above the amount determined is past its 30 days: send it and "
        "record it (refund-sent)."
    ),
    "initial_payment_deadline": (
        "The plan has neither paid nor denied within 30 calendar days of the bill: it is out of compliance "
        "with the No Surprises Act. Follow up with the plan or file a complaint (1-800-985-3059)."
    ),
    "departments_idre_selection_deadline": (
        "No IDR entity selection is recorded: check the portal for the Departments' selection and record it."
    ),
    "determination_deadline": (
        "The IDR entity has not issued its determination within 30 business days. There is no penalty; "
        "follow up with the entity."
    ),
    "idre_fee_refund_deadline": (
        "The prevailing party's IDR entity fee has not been refunded within 30 business days: ask the entity."
    ),
}


class DisputeActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        calendar: BusinessCalendar,
        client: Client | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.calendar = calendar
        self.client = client

    @activity.defn(name="fan_out_update")
    async def fan_out_update(self, req: FanOut) -> list[MemberResult]:
        """Send one batch action to each member claim's workflow; report each member's answer."""
        assert self.client is not None, "the worker gives this activity a Temporal client"
        models = {spec.update: spec.model for spec in MEMBER_ACTIONS}
        info = activity.info()
        results = []
        for claim_id, body in req.bodies.items():
            handle = self.client.get_workflow_handle(claim_workflow_id(req.tenant_id, claim_id))
            try:
                status = await handle.execute_update(
                    req.update,
                    models[req.update].model_validate(body),
                    # stable across this activity's retries: a member that already applied it
                    # answers with its status instead of applying it twice
                    id=f"{info.workflow_id}:{info.workflow_run_id}:{info.activity_id}:{claim_id}",
                    result_type=ClaimStatus,
                )
                results.append(MemberResult(claim_id=claim_id, ok=True, stage=status.stage))
            except WorkflowUpdateFailedError as exc:
                reason = str(getattr(exc.cause, "message", exc.cause))
                # "stage: ..." means the member's lifecycle is elsewhere (closed, or acted alone)
                left = (
                    reason.startswith("stage: the claim is ") or "not possible while the claim is" in reason
                )
                results.append(MemberResult(claim_id=claim_id, ok=False, reason=reason, left=left))
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise  # transient: the activity is retried
                results.append(
                    MemberResult(
                        claim_id=claim_id, ok=False, reason="the claim's lifecycle has ended", left=True
                    )
                )
        return results

    @activity.defn(name="plan_deadlines")
    async def plan_deadlines(self, req: PlanRequest) -> Plan:
        """Every deadline the claim's known dates start, after the tenant's overrides and the
        extensions granted for this claim, and the reminders of the deadlines asked for."""
        return await self.plan(req)

    async def plan(self, req: PlanRequest, session: AsyncSession | None = None) -> Plan:
        """``plan_deadlines``, also called by the dispute consumer for a new claim's first pass (the
        overrides read in its ``session``); raises a non-retryable ``ApplicationError`` with the
        rules' reason when they cannot plan."""
        tenant = await tenant_overrides(req.tenant_id, self.engine, session) if req.tenant_id else Overrides()
        try:
            return self.compute_plan(req, tenant)
        except Exception as exc:  # pure computation: the same input fails the same way every time
            raise ApplicationError(refusal_reason(exc), type="InvalidClaimDates", non_retryable=True) from exc

    def compute_plan(self, req: PlanRequest, tenant: Overrides) -> Plan:
        """The plan for ``req`` after the tenant's overrides ``tenant`` (pure; raises when the
        rules cannot plan it)."""
        s = self.settings
        granted = tuple(
            Extension(
                start=date(2000, 1, 1),
                end=e.new_date - timedelta(days=1),
                moves_to=e.new_date,
                name=f"extension granted ({e.reference})",
                reference=e.reference,
                deadlines=frozenset({e.deadline}),
            )
            for e in req.extensions
        )
        overrides = Overrides(closures=tenant.closures, extensions=tenant.extensions + granted)
        calendar = calendar_with(overrides.closures) if overrides.closures else self.calendar
        triggers = Triggers(
            bill_sent_on=req.bill_sent_on,
            initial_payment_received_on=req.initial_payment_received_on,
            open_negotiation_started_on=req.open_negotiation_started_on,
            idr_initiated_on=req.idr_initiated_on,
            idre_selected_on=req.idre_selected_on,
            determination_on=req.determination_on,
            agreement_on=req.agreement_on,
            improper_batch_notice_on=req.improper_batch_notice_on,
            joint_selection=req.joint_selection,
            batched=req.batched,
            state=req.state,
        )
        deadlines = dict(compute_schedule(triggers, overrides=overrides, calendar=calendar).deadlines)
        if req.prior_determination_on:
            prior = compute_schedule(
                Triggers(
                    open_negotiation_started_on=req.prior_open_negotiation_started_on,
                    determination_on=req.prior_determination_on,
                    batched=req.prior_batched,
                    state=req.state,
                ),
                overrides=overrides,
                calendar=calendar,
            ).deadlines
            held = prior["cooling_off_ends"]
            deadlines["held_by_cooling_off_until"] = replace(held, name="held_by_cooling_off_until")
            deadlines["post_cooling_off_initiation_deadline"] = prior["post_cooling_off_initiation_deadline"]
        if req.refund_due and "payment_deadline" in deadlines:
            pay = deadlines["payment_deadline"]
            deadlines["provider_refund_deadline"] = replace(
                pay,
                name="provider_refund_deadline",
                explanation=pay.explanation.replace(
                    "pay the amount determined",
                    "the provider refunds what the plan paid above the amount determined",
                ).replace(
                    "pay the amount agreed", "the provider refunds what the plan paid above the amount agreed"
                ),
            )
        views = [
            DeadlineView(
                name=d.name,
                due_on=d.due_on,
                due_at=cutoff_utc(d.due_on, s.deadline_cutoff, s.business_timezone),
                rule_id=d.rule_id,
                rule_set=d.rule_set,
                explanation=d.explanation,
            )
            for d in deadlines.values()
        ]
        window = timedelta(minutes=s.reminder_spread_minutes if req.reminder_spread else 0)
        tenant_id, claim_id = req.tenant_id or "", req.claim_id or ""
        reminders = [
            ReminderPlan(
                deadline=r.deadline,
                business_days_before=r.business_days_before,
                fire_at=r.fire_at - reminder_offset(tenant_id, claim_id, r.deadline, window, s.reminder_time),
            )
            for name in req.remind
            if name in deadlines
            for r in reminder_schedule(
                calendar,
                deadlines[name],
                s.reminder_business_days_before,
                s.reminder_time,
                s.business_timezone,
            )
        ]
        return Plan(deadlines=views, reminders=reminders)

    @activity.defn(name="record_claim")
    async def record_claim(self, req: RecordRequest) -> int:
        """Write the claim record and stage the events that announce it, in one transaction."""
        async with unit_of_work(self.engine) as session:
            return await write_record(session, req)

    @activity.defn(name="emit_alert")
    async def emit_alert(self, req: AlertRequest) -> int:
        """Stage a DeadlineApproaching (or DeadlineMissed) alert; return business days left."""
        s = self.settings
        today = req.as_of.astimezone(ZoneInfo(s.business_timezone)).date()
        left = business_days_left(self.calendar, today, req.deadline.due_on)
        d = req.deadline
        payload: EventPayload
        if req.overdue is not None:
            o = req.overdue
            outstanding = o.amount_owed - o.amount_received
            payload = PaymentOverdue(
                deadline_name=d.name,
                due_on=d.due_on,
                amount_owed=o.amount_owed,
                amount_received=o.amount_received,
                amount_outstanding=outstanding,
                days_overdue=o.days_overdue,
                escalation_level=o.escalation_level,
                payer_name=req.payer_name,
                stage=req.stage,
                action=(
                    f"{req.payer_name} still owes {'' if o.cost_sharing_known else 'up to '}"
                    f"${outstanding:,.2f} of the ${o.amount_owed:,.2f} owed "
                    f"(due {d.due_on.isoformat()}). "
                    + (
                        ""
                        if o.cost_sharing_known
                        else "The patient's cost sharing is not on the claim: the plan owes less by that "
                        "share; send it as cost_sharing to correct the amount. "
                    )
                    + "Contact the plan; if it does not pay, file a complaint with the No Surprises Help "
                    "Desk (1-800-985-3059)."
                ),
            )
        elif req.missed:
            payload = DeadlineMissed(
                deadline_name=d.name,
                due_on=d.due_on,
                payer_name=req.payer_name,
                stage=req.stage,
                consequence=CONSEQUENCES.get(d.name, "The deadline passed without the required action."),
            )
        else:
            cutoff_local = d.due_at.astimezone(ZoneInfo(s.business_timezone))
            action = ACTIONS.get(d.name, "Act on {payer} by {due} ({cutoff}).").format(
                payer=req.payer_name,
                due=d.due_on.isoformat(),
                cutoff=f"{cutoff_local:%H:%M} {s.business_timezone}",
            )
            payload = DeadlineApproaching(
                deadline_name=d.name,
                due_on=d.due_on,
                due_at=d.due_at,
                business_days_left=left,
                payer_name=req.payer_name,
                stage=req.stage,
                action=action,
                explanation=d.explanation,
            )
        envelope = Envelope.wrap(
            payload,
            tenant_id=req.tenant_id,
            claim_id=req.claim_id,
            event_id=req.event_id,
            occurred_at=req.as_of,
        )
        summary = str(getattr(payload, "action", None) or getattr(payload, "consequence", ""))
        kind = req.kind or ("missed" if req.missed else "reminder")
        async with unit_of_work(self.engine) as session:
            await add_to_outbox(session, outbox, envelope)
            await write_alert(
                session, envelope, kind=kind, summary=summary, deadline_name=d.name, due_on=d.due_on
            )
        return left

    def all(self) -> list[Callable[..., Any]]:
        return [self.plan_deadlines, self.record_claim, self.emit_alert, self.fan_out_update]


def refusal_reason(exc: Exception) -> str:
    """The rules' refusal in words a person can act on."""
    if isinstance(exc, OverflowError):
        return f"a date is too far from today for the calendar ({exc})"
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    return str(exc) or type(exc).__name__
