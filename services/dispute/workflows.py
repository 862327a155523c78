"""ClaimLifecycleWorkflow: one per claim, id ``claim:{tenant}:{claim_id}``. Deterministic code only.

So far it runs the open-negotiation initiation clock: it asks an activity for the deadline and the
reminder plan, sets the search attributes, sleeps on durable timers until each reminder is due and
emits ``DeadlineApproaching``; if the deadline's cut-off passes it emits ``DeadlineMissed`` and the
claim is ``forfeited``. A newer claim event (higher event sequence) re-plans the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from services.dispute.schemas import (
        AlertRequest,
        ClaimEventSignal,
        ClaimLifecycleInput,
        ClaimStatus,
        DeadlineView,
        EmitRequest,
        Plan,
        PlanRequest,
        ReminderPlan,
        SentReminder,
        Transition,
    )
    from shared.events import ClaimAdjudicated, ClaimStageChanged, deterministic_event_id
    from shared.temporal import (
        IDR_CLAIM_ID,
        IDR_NEXT_DEADLINE,
        IDR_PAYER,
        IDR_SERVICE_CODE,
        IDR_STAGE,
        IDR_TENANT,
        claim_workflow_id,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class Stage:
    RECEIVED = "received"
    OPEN_NEGOTIATION_WINDOW = "open_negotiation_window"
    FORFEITED = "forfeited"


@workflow.defn
class ClaimLifecycleWorkflow:
    def __init__(self) -> None:
        self.tenant_id = ""
        self.claim_id = ""
        self.facts: ClaimAdjudicated | None = None
        self.version = 0
        self.seen_events: set[str] = set()
        self.stage = Stage.RECEIVED
        self.transitions: list[Transition] = []
        self.deadlines: dict[str, DeadlineView] = {}
        self.reminders_sent: list[SentReminder] = []

    # -- messages ----------------------------------------------------------------------------
    @workflow.signal(name="claim_event")
    def claim_event(self, signal: ClaimEventSignal) -> None:
        key = str(signal.event_id)
        if key in self.seen_events:
            return
        self.seen_events.add(key)
        if self.facts is None or signal.facts.event_sequence > self.facts.event_sequence:
            self.facts = signal.facts
            self.version += 1

    @workflow.query(name="status")
    def status(self) -> ClaimStatus:
        upcoming = sorted(
            (d for d in self.deadlines.values() if self.stage not in (Stage.FORFEITED,)),
            key=lambda d: d.due_at,
        )
        return ClaimStatus(
            tenant_id=self.tenant_id,
            claim_id=self.claim_id,
            workflow_id=claim_workflow_id(self.tenant_id, self.claim_id),
            stage=self.stage,
            payer_name=self.facts.payer_name if self.facts else None,
            event_sequence=self.facts.event_sequence if self.facts else None,
            deadlines=dict(self.deadlines),
            next_deadline=upcoming[0] if upcoming else None,
            reminders_sent=list(self.reminders_sent),
            transitions=list(self.transitions),
        )

    # -- helpers -----------------------------------------------------------------------------
    def _wid(self) -> str:
        return claim_workflow_id(self.tenant_id, self.claim_id)

    async def _move_to(self, stage: str, reason: str, next_deadline: DeadlineView | None) -> None:
        previous = self.stage
        self.stage = stage
        now = workflow.now()
        self.transitions.append(Transition(stage=stage, at=now, reason=reason))
        next_attr = (
            IDR_NEXT_DEADLINE.value_set(next_deadline.due_at)
            if next_deadline
            else IDR_NEXT_DEADLINE.value_unset()
        )
        workflow.upsert_search_attributes([IDR_STAGE.value_set(stage), next_attr])
        self._details()
        payload = ClaimStageChanged(
            stage=stage,
            previous_stage=previous,
            reason=reason,
            next_deadline_name=next_deadline.name if next_deadline else None,
            next_deadline_on=next_deadline.due_on if next_deadline else None,
        )
        await workflow.execute_activity(
            "emit_event",
            EmitRequest(
                event_id=deterministic_event_id(self._wid(), "stage", str(len(self.transitions)), stage),
                event_type=payload.event_type,
                tenant_id=self.tenant_id,
                claim_id=self.claim_id,
                occurred_at=now,
                payload=payload.model_dump(mode="json"),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=bool,
        )

    def _details(self) -> None:
        lines = [f"**Stage:** {self.stage}"]
        if self.facts:
            lines.append(f"**Payer:** {self.facts.payer_name} ({self.facts.plan_type})")
        for d in sorted(self.deadlines.values(), key=lambda d: d.due_at):
            lines.append(f"**{d.name}:** {d.due_on.isoformat()}: {d.explanation}")
        if self.reminders_sent:
            last = self.reminders_sent[-1]
            lines.append(
                f"**Last reminder:** {last.business_days_before} business day(s) before, "
                f"{last.sent_at:%Y-%m-%d}"
            )
        workflow.set_current_details("\n\n".join(lines))

    async def _alert(self, deadline: DeadlineView, reminder: ReminderPlan | None) -> None:
        assert self.facts is not None
        missed = reminder is None
        kind = "missed" if missed else f"reminder-{reminder.business_days_before}"  # type: ignore[union-attr]
        event_id = deterministic_event_id(
            self._wid(), "alert", deadline.name, deadline.due_on.isoformat(), kind
        )
        now = workflow.now()
        await workflow.execute_activity(
            "emit_alert",
            AlertRequest(
                event_id=event_id,
                tenant_id=self.tenant_id,
                claim_id=self.claim_id,
                as_of=now,
                deadline=deadline,
                payer_name=self.facts.payer_name,
                stage=self.stage,
                missed=missed,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=int,
        )
        if reminder is not None:
            self.reminders_sent.append(
                SentReminder(
                    deadline=deadline.name,
                    business_days_before=reminder.business_days_before,
                    sent_at=now,
                    event_id=event_id,
                )
            )
            self._details()

    async def _sleep_until(self, when: datetime, version: int) -> bool:
        """Sleep on a durable timer until ``when``; True if a newer claim event arrived first."""
        delay = when - workflow.now()
        if delay <= timedelta(0):
            return self.version != version
        try:
            await workflow.wait_condition(lambda: self.version != version, timeout=delay)
            return True
        except TimeoutError:
            return False

    # -- the run -----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ClaimLifecycleInput) -> str:
        self.tenant_id, self.claim_id = inp.tenant_id, inp.claim_id
        await workflow.wait_condition(lambda: self.facts is not None)
        while True:
            facts = self.facts
            assert facts is not None
            version = self.version
            workflow.upsert_search_attributes(
                [
                    IDR_TENANT.value_set(self.tenant_id),
                    IDR_CLAIM_ID.value_set(self.claim_id),
                    IDR_PAYER.value_set(facts.payer_name),
                    IDR_SERVICE_CODE.value_set(sorted({line.service_code for line in facts.lines})),
                ]
            )
            plan: Plan = await workflow.execute_activity(
                "plan_deadlines",
                PlanRequest(
                    initial_payment_received_on=facts.initial_payment_received_on,
                    tenant_id=self.tenant_id,
                    state=facts.state,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                result_type=Plan,
            )
            self.deadlines = {d.name: d for d in plan.deadlines}
            deadline = self.deadlines["open_negotiation_initiation_deadline"]
            reason = (
                f"initial payment received {facts.initial_payment_received_on.isoformat()}; "
                f"open negotiation must start by {deadline.due_on.isoformat()}"
            )
            await self._move_to(Stage.OPEN_NEGOTIATION_WINDOW, reason, deadline)
            if await self._run_clock(deadline, plan.reminders, version):
                continue  # a newer claim event: plan again
            await self._move_to(
                Stage.FORFEITED, f"{deadline.name} {deadline.due_on.isoformat()} passed", None
            )
            await self._alert(deadline, None)
            return Stage.FORFEITED

    async def _run_clock(self, deadline: DeadlineView, reminders: list[ReminderPlan], version: int) -> bool:
        """Send each reminder when due, then wait for the cut-off. True if re-planning is needed."""
        sent = {
            (r.deadline, r.business_days_before) for r in self.reminders_sent if r.deadline == deadline.name
        }
        pending = [r for r in reminders if (r.deadline, r.business_days_before) not in sent]
        now = workflow.now()
        overdue = [r for r in pending if r.fire_at <= now]
        closest_sent = min((b for _, b in sent), default=None)
        if (
            overdue
            and now < deadline.due_at
            and (closest_sent is None or overdue[-1].business_days_before < closest_sent)
        ):
            # the claim arrived late: one alert now with the true time left, not a burst of stale ones
            await self._alert(deadline, overdue[-1])
        for reminder in (r for r in pending if r.fire_at > now):
            if await self._sleep_until(reminder.fire_at, version):
                return True
            await self._alert(deadline, reminder)
        # due_at is the last timely second (23:59:59 local); the deadline is missed once it has passed
        return await self._sleep_until(deadline.due_at + timedelta(seconds=1), version)
