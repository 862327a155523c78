"""The claim workflow's clock: durable timers for reminders and cut-offs, the alerts they send and
the payment escalation. Deterministic; alerts are written by an activity (record + outbox)."""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from services.dispute.checks import ClaimChecks
    from services.dispute.schemas import (
        AlertRequest,
        ClaimState,
        DeadlineView,
        PaymentPosition,
        ReminderPlan,
        SentReminder,
    )
    from shared.events import deterministic_event_id
    from shared.rules.calendar import new_york_date

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

# workflow.patched ids (claims already running replay the commands they recorded; see tests/replay)
# planning and writing the record run as local activities: in the workflow task that needs them, their
# results still recorded in history (markers); the first pass plans once, with the facts' dates
LOCAL_STEPS = "local-plan-and-record"
# reminders wake up to reminder_spread_minutes before the reminder time, by claim (reminder_offset)
REMINDER_SPREAD = "reminder-spread"
# a claim that arrives after a reminder was due gets no catch-up alert when its next reminder comes
# later the same New York day (the two read alike, hours apart)
NO_SAME_DAY_CATCH_UP = "no-same-day-catch-up"
SAME_DAY = timedelta(hours=12)
# an alert is staged by a local activity in the workflow task its timer wakes: one task per alert, not
# two and an activity task (the 09:00 wave is that many fewer round trips through the server)
LOCAL_ALERT = "local-alert"
# a new claim's first plan comes with its input (the dispute consumer planned it: ``FirstPlan``), so the
# first workflow task has one local activity, the record, not two
PLANNED_BEFORE_START = "planned-before-start"

T = TypeVar("T")


async def step(name: str, arg: Any, result_type: type[T], *, local: bool) -> T:
    """Run the activity ``name``: a local activity when ``local`` (patched), else a regular one."""
    if local:
        result: T = await workflow.execute_local_activity(
            name, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY, result_type=result_type
        )
        return result
    done: T = await workflow.execute_activity(
        name, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY, result_type=result_type
    )
    return done


def reminder_offset(tenant_id: str, claim_id: str, deadline: str, window: timedelta, at: time) -> timedelta:
    """How long before the reminder time this claim's reminders of ``deadline`` wake: a stable hash
    of (tenant, claim, deadline) modulo ``window`` (never more than the reminder time's distance from
    midnight, so a reminder stays on its day), so a burst of claims does not all wake at once."""
    since_midnight = timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)
    seconds = int(min(window, since_midnight).total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{tenant_id}\x1f{claim_id}\x1f{deadline}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)


class ClaimClock(ClaimChecks):
    """Mixed into the claim workflow: timers wake early when ``self.version`` changes."""

    s: ClaimState
    version: int
    escalation_days: int
    _reminders: list[ReminderPlan]

    async def _alert(
        self, deadline: DeadlineView, reminder: ReminderPlan | None, overdue: PaymentPosition | None = None
    ) -> None:
        s = self.s
        assert s.facts is not None
        if overdue is not None:
            kind = f"overdue-{overdue.escalation_level}"
        else:
            kind = "missed" if reminder is None else f"reminder-{reminder.business_days_before}"
        event_id = deterministic_event_id(
            self._wid(), "alert", deadline.name, deadline.due_on.isoformat(), kind
        )
        now = workflow.now()
        await step(
            "emit_alert",
            AlertRequest(
                event_id=event_id,
                tenant_id=s.tenant_id,
                claim_id=s.claim_id,
                as_of=now,
                deadline=deadline,
                payer_name=s.facts.payer_name,
                stage=s.stage,
                missed=reminder is None and overdue is None,
                overdue=overdue,
                kind=kind,
            ),
            int,
            local=workflow.patched(LOCAL_ALERT),
        )
        if reminder is not None:
            s.reminders_sent.append(
                SentReminder(
                    deadline=deadline.name,
                    due_on=deadline.due_on,
                    business_days_before=reminder.business_days_before,
                    sent_at=now,
                    event_id=event_id,
                )
            )

    async def _sleep_until(self, when: datetime, version: int) -> bool:
        """Sleep on a durable timer until ``when``; True if something changed first."""
        delay = when - workflow.now()
        if delay <= timedelta(0):
            return self.version != version
        try:
            await workflow.wait_condition(lambda: self.version != version, timeout=delay)
            return True
        except TimeoutError:
            return self.version != version

    async def _run_clock(self, deadline: DeadlineView, version: int) -> bool:
        """Send each reminder when due, then wait for the cut-off. True if re-planning is needed."""
        reminders = [r for r in self._reminders if r.deadline == deadline.name]
        sent = {
            r.business_days_before
            for r in self.s.reminders_sent
            if r.deadline == deadline.name and r.due_on == deadline.due_on
        }
        pending = [r for r in reminders if r.business_days_before not in sent]
        now = workflow.now()
        overdue = [r for r in pending if r.fire_at <= now]
        closest_sent = min(sent, default=None)
        if (
            overdue
            and now < deadline.due_at
            and (closest_sent is None or overdue[-1].business_days_before < closest_sent)
            and not self._reminder_later_today(pending, now, deadline.due_at)
        ):
            # the claim arrived late: one alert now with the true time left, not a burst of stale ones
            await self._alert(deadline, overdue[-1])
            self._details()
        for reminder in (r for r in pending if r.fire_at > now):
            if await self._sleep_until(reminder.fire_at, version):
                return True
            await self._alert(deadline, reminder)
            self._details()
        # due_at is the last timely second (23:59:59 local); the deadline is missed once it has passed
        return await self._sleep_until(deadline.due_at + timedelta(seconds=1), version)

    @staticmethod
    def _reminder_later_today(pending: list[ReminderPlan], now: datetime, due_at: datetime) -> bool:
        """A pending reminder fires later today (New York), within hours and before the deadline's
        cut-off: the catch-up would only repeat it."""
        today = new_york_date(now)
        return any(
            now < r.fire_at <= min(due_at, now + SAME_DAY) and new_york_date(r.fire_at) == today
            for r in pending
        ) and workflow.patched(NO_SAME_DAY_CATCH_UP)

    async def _escalate_payment(self, d: DeadlineView, version: int) -> bool:
        """After the payment deadline: PaymentOverdue now and every few days until paid or closed.
        True when an escalation was sent."""
        s = self.s
        level = s.payment_escalations
        when = d.due_at + timedelta(seconds=1) + timedelta(days=self.escalation_days * level)
        if await self._sleep_until(when, version):
            return False
        s.payment_escalations += 1
        owed = s.amount_owed or Decimal(0)
        position = PaymentPosition(
            amount_owed=owed,
            amount_received=s.amount_received,
            days_overdue=max((new_york_date(workflow.now()) - d.due_on).days, 1),
            escalation_level=s.payment_escalations,
            cost_sharing_known=s.facts is not None
            and all(line.cost_sharing is not None for line in s.facts.lines),
        )
        await self._alert(d, None, overdue=position)
        self._details()
        return True
