"""Activities of the dispute worker: every piece of I/O and every calendar computation.

Deadlines are computed here, not in workflow code, so the dates are recorded in workflow history
and a calendar change can never break the replay of a running claim.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from services.dispute.models import outbox
from services.dispute.schemas import AlertRequest, DeadlineView, EmitRequest, Plan, PlanRequest, ReminderPlan
from services.dispute.service import tenant_overrides
from shared.db import unit_of_work
from shared.events import DeadlineApproaching, DeadlineMissed, Envelope, EventPayload
from shared.kafka.outbox import add_to_outbox
from shared.rules.calendar import BusinessCalendar, Overrides, calendar_with
from shared.rules.deadlines import (
    Triggers,
    business_days_left,
    compute_schedule,
    cutoff_utc,
    reminder_schedule,
)
from shared.settings import Settings

ACTIONS = {
    "open_negotiation_initiation_deadline": (
        "Send the open negotiation notice to {payer} by {due} ({cutoff}); "
        "without it the claim cannot go to federal IDR."
    ),
}
CONSEQUENCES = {
    "open_negotiation_initiation_deadline": (
        "Open negotiation was not started in time: the claim is no longer eligible for federal IDR "
        "(OPEN_NEGOTIATION_NOT_INITIATED) unless the Departments grant an extension."
    ),
}


class DisputeActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings, calendar: BusinessCalendar) -> None:
        self.engine = engine
        self.settings = settings
        self.calendar = calendar

    @activity.defn(name="plan_deadlines")
    async def plan_deadlines(self, req: PlanRequest) -> Plan:
        s = self.settings
        overrides = await tenant_overrides(req.tenant_id, self.engine) if req.tenant_id else Overrides()
        calendar = calendar_with(overrides.closures) if overrides.closures else self.calendar
        triggers = Triggers(initial_payment_received_on=req.initial_payment_received_on, state=req.state)
        schedule = compute_schedule(triggers, overrides=overrides, calendar=calendar)
        deadline = schedule.deadlines["open_negotiation_initiation_deadline"]
        view = DeadlineView(
            name=deadline.name,
            due_on=deadline.due_on,
            due_at=cutoff_utc(deadline.due_on, s.deadline_cutoff, s.business_timezone),
            rule_id=deadline.rule_id,
            rule_set=deadline.rule_set,
            explanation=deadline.explanation,
        )
        reminders = [
            ReminderPlan(deadline=r.deadline, business_days_before=r.business_days_before, fire_at=r.fire_at)
            for r in reminder_schedule(
                calendar, deadline, s.reminder_business_days_before, s.reminder_time, s.business_timezone
            )
        ]
        return Plan(deadlines=[view], reminders=reminders)

    async def _stage(self, envelope: Envelope) -> bool:
        async with unit_of_work(self.engine) as session:
            return await add_to_outbox(session, outbox, envelope)

    @activity.defn(name="emit_event")
    async def emit_event(self, req: EmitRequest) -> bool:
        envelope = Envelope(
            event_id=req.event_id,
            event_type=req.event_type,
            schema_version=1,
            occurred_at=req.occurred_at,
            tenant_id=req.tenant_id,
            claim_id=req.claim_id,
            payload=req.payload,
        )
        envelope.parse_payload()  # refuse a payload that does not match its event model
        return await self._stage(envelope)

    @activity.defn(name="emit_alert")
    async def emit_alert(self, req: AlertRequest) -> int:
        """Stage a DeadlineApproaching (or DeadlineMissed) alert; return business days left."""
        s = self.settings
        today = req.as_of.astimezone(ZoneInfo(s.business_timezone)).date()
        left = business_days_left(self.calendar, today, req.deadline.due_on)
        d = req.deadline
        payload: EventPayload
        if req.missed:
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
        await self._stage(envelope)
        return left

    def all(self) -> list[object]:
        return [self.plan_deadlines, self.emit_event, self.emit_alert]
