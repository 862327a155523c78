"""ClaimLifecycleWorkflow: one per claim, id ``claim:{tenant}:{claim_id}``. Deterministic code only.

A stage machine over idr-rules D0-D13. Each stage has at most one governing deadline (a durable
timer with reminders); its cut-off passing has a consequence (forfeited, Departments' selection,
default risk, payment escalation, ...). People and systems act through validated updates, which
reject impossible actions with a reason. Dates come from an activity (the rules engine), so they are
recorded in history; every transition is recorded and published as ``ClaimStageChanged``.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from services.dispute.schemas import (
        ActionRecord,
        AlertRequest,
        BatchStatus,
        ClaimEventSignal,
        ClaimLifecycleInput,
        ClaimState,
        ClaimStatus,
        DeadlineView,
        EmitRequest,
        PaymentPosition,
        Plan,
        PlanRequest,
        ReminderPlan,
        SentReminder,
        Transition,
    )
    from shared.events import ClaimStageChanged, deterministic_event_id
    from shared.lifecycle import (
        TERMINAL,
        Action,
        BatchDetermination,
        BatchInput,
        BatchOfferSubmitted,
        Closing,
        CoolingOffApplies,
        Determination,
        EligibilityDecision,
        EligibilityObjection,
        EntitySelected,
        ExtensionGranted,
        FanOut,
        FeeRefundReceived,
        FeesPaid,
        IdrInitiated,
        MemberInfo,
        MemberJoined,
        MemberResult,
        NegotiationInput,
        NegotiationOutcome,
        NoticeSent,
        OfferSubmitted,
        PaymentReceived,
        ResponseNoticeReceived,
        Settlement,
        Stage,
    )
    from shared.rules.calendar import new_york_date
    from shared.temporal import (
        IDR_CLAIM_ID,
        IDR_NEXT_DEADLINE,
        IDR_PAYER,
        IDR_SERVICE_CODE,
        IDR_STAGE,
        IDR_TENANT,
        claim_workflow_id,
        negotiation_workflow_id,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

# deadlines that get reminders (the ones a person must act on)
REMIND = frozenset(
    {
        "open_negotiation_initiation_deadline",
        "idr_initiation_deadline",
        "post_cooling_off_initiation_deadline",
        "offer_and_fee_deadline",
    }
)
IDR_STAGES = (
    Stage.IDR_INITIATED,
    Stage.IDRE_SELECTION,
    Stage.ELIGIBILITY_REVIEW,
    Stage.OFFERS_AND_FEES,
    Stage.AWAITING_DETERMINATION,
)


def _key(d: DeadlineView) -> str:
    return f"{d.name}@{d.due_on.isoformat()}"


@workflow.defn
class ClaimLifecycleWorkflow:
    @workflow.init
    def __init__(self, inp: ClaimLifecycleInput) -> None:
        # built from the input before any signal or update of this run is handled (continue-as-new)
        self.s = inp.state or ClaimState(tenant_id=inp.tenant_id, claim_id=inp.claim_id)
        self.version = 0
        self.planned_version = -1
        self.escalation_days = 7
        self.negotiation_queue = "negotiation"
        self._child: asyncio.Task[NegotiationOutcome] | None = None
        self._reminders: list[ReminderPlan] = []

    # ---------------------------------------------------------------------------------------
    # messages
    # ---------------------------------------------------------------------------------------
    @workflow.signal(name="claim_event")
    def claim_event(self, signal: ClaimEventSignal) -> None:
        key = str(signal.event_id)
        if key in self.s.seen_events:
            return
        self.s.seen_events.append(key)
        if self.s.facts is None or signal.facts.event_sequence > self.s.facts.event_sequence:
            self.s.facts = signal.facts
            self._bump()

    @workflow.query(name="status")
    def status(self) -> ClaimStatus:
        s = self.s
        upcoming = sorted(
            (d for d in s.deadlines.values() if _key(d) not in s.passed and s.stage not in TERMINAL),
            key=lambda d: d.due_at,
        )
        active = self._active_deadline()
        return ClaimStatus(
            tenant_id=s.tenant_id,
            claim_id=s.claim_id,
            workflow_id=claim_workflow_id(s.tenant_id, s.claim_id),
            stage=s.stage,
            payer_name=s.facts.payer_name if s.facts else None,
            event_sequence=s.facts.event_sequence if s.facts else None,
            deadlines=dict(s.deadlines),
            next_deadline=active or (upcoming[0] if upcoming else None),
            reminders_sent=list(s.reminders_sent),
            transitions=list(s.transitions),
            actions=list(s.actions),
            dates=dict(s.dates),
            dispute_number=s.dispute_number,
            idr_entity=s.idr_entity,
            amount_owed=s.amount_owed,
            amount_received=s.amount_received,
            payment_escalations=s.payment_escalations,
            facts=s.facts,
        )

    # -- open negotiation ---------------------------------------------------------------------
    @workflow.update(name="open_negotiation_notice_sent")
    async def open_negotiation_notice_sent(self, a: NoticeSent) -> ClaimStatus:
        self._record("open_negotiation_notice_sent", a)
        self.s.dates["open_negotiation_started_on"] = a.sent_on
        self._set_stage(
            Stage.OPEN_NEGOTIATION, f"open negotiation notice sent to {a.recipient} by {a.channel}", a
        )
        return await self._replanned()

    @open_negotiation_notice_sent.validator
    def _v_notice(self, a: NoticeSent) -> None:
        self._require(Stage.OPEN_NEGOTIATION_WINDOW)
        received = self.s.dates.get("initial_payment_received_on")
        if received and a.sent_on < received:
            raise ValueError(f"sent_on: before the initial payment was received ({received.isoformat()})")
        self._not_future(a.sent_on, "sent_on")
        self._within("open_negotiation_initiation_deadline", a.sent_on, "sent_on")

    @workflow.update(name="response_notice_received")
    async def response_notice_received(self, a: ResponseNoticeReceived) -> ClaimStatus:
        self._record("response_notice_received", a)
        self._bump()
        return await self._replanned()

    @response_notice_received.validator
    def _v_response(self, a: ResponseNoticeReceived) -> None:
        self._require(Stage.OPEN_NEGOTIATION)
        if "open_negotiation_response_deadline" not in self.s.deadlines:
            raise ValueError(
                "stage: the open negotiation response notice (2026 rule) is not in force for this claim"
            )
        self._not_before(a.received_on, "open_negotiation_started_on", "received_on")
        self._not_future(a.received_on, "received_on")

    # -- IDR initiation -----------------------------------------------------------------------
    @workflow.update(name="cooling_off_applies")
    async def cooling_off_applies(self, a: CoolingOffApplies) -> ClaimStatus:
        self._record("cooling_off_applies", a)
        self.s.dates["prior_determination_on"] = a.prior_determination_on
        if self.s.stage == Stage.IDR_INITIATION_WINDOW:
            self._set_stage(
                Stage.COOLING_OFF, "a prior determination's 90-day cooling-off holds this claim", a
            )
        return await self._replanned()

    @cooling_off_applies.validator
    def _v_cooling(self, a: CoolingOffApplies) -> None:
        self._require(Stage.OPEN_NEGOTIATION, Stage.IDR_INITIATION_WINDOW)
        self._not_future(a.prior_determination_on, "prior_determination_on")
        if a.prior_determination_on + timedelta(days=90) < self._today():
            ended = a.prior_determination_on + timedelta(days=90)
            raise ValueError(f"prior_determination_on: that cooling-off already ended on {ended.isoformat()}")

    @workflow.update(name="idr_initiated")
    async def idr_initiated(self, a: IdrInitiated) -> ClaimStatus:
        self._record("idr_initiated", a)
        self.s.dates["idr_initiated_on"] = a.initiated_on
        self.s.dispute_number = a.dispute_number
        self._set_stage(Stage.IDR_INITIATED, f"IDR initiated, dispute {a.dispute_number}", a)
        return await self._replanned()

    @idr_initiated.validator
    def _v_initiated(self, a: IdrInitiated) -> None:
        d = self.s.deadlines
        if self.s.stage == Stage.OPEN_NEGOTIATION and "idr_initiation_window_opens" in d:
            raise ValueError(
                f"initiated_on: the open negotiation period runs until "
                f"{d['open_negotiation_period_end'].due_on.isoformat()}; IDR may be initiated from "
                f"{d['idr_initiation_window_opens'].due_on.isoformat()} (business day 31)"
            )
        self._require(Stage.IDR_INITIATION_WINDOW)
        if "prior_determination_on" in self.s.dates:
            held = d["held_by_cooling_off_until"].due_on
            if a.initiated_on <= held:
                raise ValueError(f"initiated_on: the cooling-off holds this claim until {held.isoformat()}")
            self._within("post_cooling_off_initiation_deadline", a.initiated_on, "initiated_on")
            self._not_future(a.initiated_on, "initiated_on")
            return
        opens = d["idr_initiation_window_opens"].due_on
        if a.initiated_on < opens:
            raise ValueError(
                f"initiated_on: {a.initiated_on.isoformat()} is before business day 31 ({opens.isoformat()}) "
                "of open negotiation"
            )
        self._within("idr_initiation_deadline", a.initiated_on, "initiated_on", "business day 34")
        self._not_future(a.initiated_on, "initiated_on")

    # -- IDR entity ---------------------------------------------------------------------------
    @workflow.update(name="entity_selected")
    async def entity_selected(self, a: EntitySelected) -> ClaimStatus:
        self._record("entity_selected", a)
        self.s.dates["idre_selected_on"] = a.selected_on
        self.s.idr_entity = a.entity
        if self.s.stage == Stage.ELIGIBILITY_REVIEW:  # selected while an objection is pending
            self.s.stage_before_review = Stage.OFFERS_AND_FEES
            self._bump()
        else:
            self._set_stage(Stage.OFFERS_AND_FEES, f"IDR entity {a.entity} selected ({a.by})", a)
        return await self._replanned()

    @entity_selected.validator
    def _v_selected(self, a: EntitySelected) -> None:
        self._require(Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.ELIGIBILITY_REVIEW)
        if "idre_selected_on" in self.s.dates:
            raise ValueError(f"stage: an IDR entity ({self.s.idr_entity}) is already selected")
        self._not_before(a.selected_on, "idr_initiated_on", "selected_on")
        self._not_future(a.selected_on, "selected_on")

    @workflow.update(name="eligibility_objection")
    async def eligibility_objection(self, a: EligibilityObjection) -> ClaimStatus:
        self._record("eligibility_objection", a)
        self.s.stage_before_review = self.s.stage
        self._set_stage(Stage.ELIGIBILITY_REVIEW, f"eligibility objection: {a.reason}", a)
        return await self._replanned()

    @eligibility_objection.validator
    def _v_objection(self, a: EligibilityObjection) -> None:
        self._require(Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.OFFERS_AND_FEES)

    @workflow.update(name="eligibility_decision")
    async def eligibility_decision(self, a: EligibilityDecision) -> ClaimStatus:
        self._record("eligibility_decision", a)
        if a.eligible:
            if self.s.stage == Stage.ELIGIBILITY_REVIEW:
                back = self.s.stage_before_review or Stage.OFFERS_AND_FEES
                self.s.stage_before_review = None
                self._set_stage(back, "the IDR entity found the dispute eligible", a)
                if back == Stage.OFFERS_AND_FEES:
                    self._offers_complete(a)
            else:
                self._bump()
        else:
            refund = (
                " The IDR entity fee is refunded in full; the administrative fee is kept."
                if self.s.fees_paid
                else ""
            )
            self._set_stage(
                Stage.INELIGIBLE, f"found ineligible: {a.reason or 'no reason given'}.{refund}", a
            )
        return await self._replanned()

    @eligibility_decision.validator
    def _v_decision(self, a: EligibilityDecision) -> None:
        self._require(
            Stage.ELIGIBILITY_REVIEW, Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.OFFERS_AND_FEES
        )

    # -- offers, fees, determination --------------------------------------------------------
    @workflow.update(name="offer_submitted")
    async def offer_submitted(self, a: OfferSubmitted) -> ClaimStatus:
        self._record("offer_submitted", a)
        self.s.offer_submitted = True
        self._offers_complete(a)
        return await self._replanned()

    @offer_submitted.validator
    def _v_offer(self, a: OfferSubmitted) -> None:
        self._require(Stage.OFFERS_AND_FEES, Stage.ELIGIBILITY_REVIEW)
        self._lines(list(a.amounts), "amounts")
        self._not_before(a.submitted_on, "idre_selected_on", "submitted_on")

    @workflow.update(name="fees_paid")
    async def fees_paid(self, a: FeesPaid) -> ClaimStatus:
        self._record("fees_paid", a)
        self.s.fees_paid = True
        self._offers_complete(a)
        return await self._replanned()

    @fees_paid.validator
    def _v_fees(self, a: FeesPaid) -> None:
        self._require(Stage.OFFERS_AND_FEES, Stage.ELIGIBILITY_REVIEW)
        self._not_before(a.paid_on, "idre_selected_on", "paid_on")

    @workflow.update(name="determination")
    async def determination(self, a: Determination) -> ClaimStatus:
        self._record("determination", a)
        facts = self.s.facts
        assert facts is not None
        paid = {line.line_number: line.paid for line in facts.lines}
        owed = sum((max(award.amount - paid[award.line_number], Decimal(0)) for award in a.lines), Decimal(0))
        won = sum(1 for award in a.lines if award.prevailing_party == "provider")
        self.s.provider_prevailed = won * 2 > len(a.lines)
        self.s.amount_owed = owed
        self.s.dates["determination_on"] = a.determined_on
        outcome = (
            "provider prevailed"
            if won == len(a.lines)
            else "payer prevailed"
            if won == 0
            else "split decision"
        )
        kind = "default decision, " if a.default else ""
        if owed > 0:
            self._set_stage(Stage.PAYMENT_DUE, f"{kind}{outcome}; ${owed:,.2f} owed by the plan", a)
        else:
            self._set_stage(Stage.PAID, f"{kind}{outcome}; no additional payment owed", a)
        return await self._replanned()

    @determination.validator
    def _v_determination(self, a: Determination) -> None:
        self._require(Stage.OFFERS_AND_FEES, Stage.AWAITING_DETERMINATION)
        numbers = [line.line_number for line in a.lines]
        self._lines(numbers, "lines")
        if len(set(numbers)) != len(numbers):
            raise ValueError("lines: a line number appears twice")
        self._not_before(a.determined_on, "idre_selected_on", "determined_on")
        self._not_future(a.determined_on, "determined_on")

    # -- payment ------------------------------------------------------------------------------
    @workflow.update(name="payment_received")
    async def payment_received(self, a: PaymentReceived) -> ClaimStatus:
        self._record("payment_received", a)
        self.s.amount_received += a.amount
        owed = self.s.amount_owed or Decimal(0)
        if self.s.amount_received >= owed:
            self._set_stage(
                Stage.PAID, f"paid in full (${self.s.amount_received:,.2f}, last by {a.source})", a
            )
        else:
            self._bump()  # partial: the clock goes on with the new balance
        return await self._replanned()

    @payment_received.validator
    def _v_payment(self, a: PaymentReceived) -> None:
        self._require(Stage.PAYMENT_DUE)
        self._not_before(a.received_on, "determination_on", "received_on")

    @workflow.update(name="fee_refund_received")
    async def fee_refund_received(self, a: FeeRefundReceived) -> ClaimStatus:
        self._record("fee_refund_received", a)
        self.s.fee_refund_received = True
        if self.s.stage == Stage.PAID:
            self._set_stage(Stage.CLOSED, f"IDR entity fee refund of ${a.amount:,.2f} received", a)
        else:
            self._bump()  # payment is still owed: keep chasing it
        return await self._replanned()

    @fee_refund_received.validator
    def _v_refund(self, a: FeeRefundReceived) -> None:
        self._require(Stage.PAID, Stage.PAYMENT_DUE)

    # -- any time -----------------------------------------------------------------------------
    @workflow.update(name="settlement")
    async def settlement(self, a: Settlement) -> ClaimStatus:
        self._record("settlement", a)
        after_initiation = self.s.stage in IDR_STAGES
        note = (
            " Notify the Departments and the IDR entity (about 3 business days)." if after_initiation else ""
        )
        self._set_stage(Stage.SETTLED, f"settled for ${a.amount:,.2f}.{note}", a)
        return await self._replanned()

    @settlement.validator
    def _v_settlement(self, a: Settlement) -> None:
        if self.s.stage == Stage.OPEN_NEGOTIATION:
            raise ValueError("stage: during open negotiation, settle through the negotiation service")
        self._require(
            Stage.OPEN_NEGOTIATION_WINDOW, Stage.IDR_INITIATION_WINDOW, Stage.COOLING_OFF, *IDR_STAGES
        )

    @workflow.update(name="extension_granted")
    async def extension_granted(self, a: ExtensionGranted) -> ClaimStatus:
        self._record("extension_granted", a)
        self.s.extensions.append(a)
        self._bump()
        return await self._replanned()

    @extension_granted.validator
    def _v_extension(self, a: ExtensionGranted) -> None:
        self._open()
        if a.deadline == "payment_deadline":
            raise ValueError("deadline: the payment deadline cannot be extended (idr-rules D12)")
        current = self.s.deadlines.get(a.deadline)
        if current is None:
            raise ValueError(f"deadline: {a.deadline!r} is not one of this claim's deadlines")
        if a.new_date <= current.due_on:
            raise ValueError(f"new_date: must be after the current deadline {current.due_on.isoformat()}")

    @workflow.update(name="withdrawn")
    async def withdrawn(self, a: Closing) -> ClaimStatus:
        self._record("withdrawn", a)
        self._set_stage(Stage.WITHDRAWN, a.reason, a)
        return await self._replanned()

    @workflow.update(name="administratively_closed")
    async def administratively_closed(self, a: Closing) -> ClaimStatus:
        self._record("administratively_closed", a)
        self._set_stage(Stage.ADMINISTRATIVELY_CLOSED, a.reason, a)
        return await self._replanned()

    @workflow.update(name="closed")
    async def closed(self, a: Closing) -> ClaimStatus:
        self._record("closed", a)
        self._set_stage(Stage.CLOSED, a.reason, a)
        return await self._replanned()

    @withdrawn.validator
    def _v_withdrawn(self, a: Closing) -> None:
        self._open()

    @administratively_closed.validator
    def _v_admin(self, a: Closing) -> None:
        self._open()

    @closed.validator
    def _v_closed(self, a: Closing) -> None:
        self._open()

    # ---------------------------------------------------------------------------------------
    # helpers
    # ---------------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.version += 1

    def _today(self) -> date:
        """Today in New York, where deadlines end."""
        return new_york_date(workflow.now())

    def _open(self) -> None:
        if self.s.stage in TERMINAL:
            raise ValueError(f"stage: the claim is {self.s.stage}")

    def _require(self, *stages: str) -> None:
        if self.s.stage not in stages:
            raise ValueError(
                f"stage: not possible while the claim is {self.s.stage} (needs {' or '.join(stages)})"
            )

    def _not_future(self, day: date, field: str) -> None:
        if day > self._today():
            raise ValueError(f"{field}: {day.isoformat()} is in the future")

    def _not_before(self, day: date, earlier: str, field: str) -> None:
        known = self.s.dates.get(earlier)
        if known and day < known:
            raise ValueError(f"{field}: {day.isoformat()} is before {earlier} ({known.isoformat()})")

    def _within(self, deadline: str, day: date, field: str, label: str = "the deadline") -> None:
        d = self.s.deadlines.get(deadline)
        if d is None:
            raise ValueError(f"{field}: the {deadline} is not computed yet; try again in a moment")
        if day > d.due_on:
            raise ValueError(
                f"{field}: {day.isoformat()} is after {label} ({d.due_on.isoformat()}); "
                "only a Departments' extension allows it"
            )

    def _lines(self, numbers: list[int], field: str) -> None:
        facts = self.s.facts
        known = {line.line_number for line in facts.lines} if facts else set()
        unknown = sorted(set(numbers) - known)
        if unknown:
            raise ValueError(f"{field}: no line number(s) {unknown} on this claim (lines {sorted(known)})")

    def _record(self, name: str, a: Action) -> None:
        details: dict[str, Any] = a.model_dump(mode="json", exclude={"actor"})
        self.s.actions.append(ActionRecord(action=name, at=workflow.now(), actor=a.actor, details=details))

    def _offers_complete(self, a: Action) -> None:
        if self.s.offer_submitted and self.s.fees_paid and self.s.stage == Stage.OFFERS_AND_FEES:
            self._set_stage(Stage.AWAITING_DETERMINATION, "offer submitted and fees paid", a)
        else:
            self._bump()

    def _wid(self) -> str:
        return claim_workflow_id(self.s.tenant_id, self.s.claim_id)

    def _set_stage(self, stage: str, reason: str, by: Action | None = None) -> None:
        previous = self.s.stage
        self.s.stage = stage
        now = workflow.now()
        self.s.transitions.append(
            Transition(stage=stage, at=now, reason=reason, by=by.actor if by else "system")
        )
        active = self._active_deadline()
        payload = ClaimStageChanged(
            stage=stage,
            previous_stage=previous,
            reason=reason,
            next_deadline_name=active.name if active else None,
            next_deadline_on=active.due_on if active else None,
        )
        self.s.pending_events.append(
            EmitRequest(
                event_id=deterministic_event_id(self._wid(), "stage", str(len(self.s.transitions)), stage),
                event_type=payload.event_type,
                tenant_id=self.s.tenant_id,
                claim_id=self.s.claim_id,
                occurred_at=now,
                payload=payload.model_dump(mode="json"),
            )
        )
        self._bump()

    def _active_name(self) -> str | None:
        s = self.s
        match s.stage:
            case Stage.AWAITING_INITIAL_PAYMENT:
                return "initial_payment_deadline"
            case Stage.OPEN_NEGOTIATION_WINDOW:
                return "open_negotiation_initiation_deadline"
            case Stage.OPEN_NEGOTIATION:
                return "open_negotiation_period_end"
            case Stage.COOLING_OFF:
                return "held_by_cooling_off_until"
            case Stage.IDR_INITIATION_WINDOW:
                if "prior_determination_on" in s.dates:
                    return "post_cooling_off_initiation_deadline"
                return "idr_initiation_deadline"
            case Stage.IDR_INITIATED:
                return "idre_joint_selection_deadline"
            case Stage.IDRE_SELECTION:
                return "departments_idre_selection_deadline"
            case Stage.ELIGIBILITY_REVIEW:
                if "eligibility_determination_deadline" in s.deadlines:
                    return "eligibility_determination_deadline"
                if s.stage_before_review == Stage.OFFERS_AND_FEES:
                    return "offer_and_fee_deadline"  # losing by default still threatens
                return None
            case Stage.OFFERS_AND_FEES:
                return "offer_and_fee_deadline"
            case Stage.AWAITING_DETERMINATION:
                return "determination_deadline"
            case Stage.PAYMENT_DUE:
                return "payment_deadline"
            case Stage.PAID:
                tracking = s.provider_prevailed and s.fees_paid and not s.fee_refund_received
                return "idre_fee_refund_deadline" if tracking else None
        return None

    def _active_deadline(self) -> DeadlineView | None:
        name = self._active_name()
        return self.s.deadlines.get(name) if name else None

    def _details(self) -> None:
        s = self.s
        lines = [f"**Stage:** {s.stage}"]
        if s.facts:
            lines.append(f"**Payer:** {s.facts.payer_name} ({s.facts.plan_type})")
        active = self._active_deadline()
        if active:
            lines.append(
                f"**Next deadline:** {active.name} {active.due_on.isoformat()}: {active.explanation}"
            )
        if s.dispute_number:
            lines.append(
                f"**Dispute:** {s.dispute_number}" + (f", entity {s.idr_entity}" if s.idr_entity else "")
            )
        if s.amount_owed is not None:
            lines.append(f"**Owed:** ${s.amount_owed:,.2f}; received ${s.amount_received:,.2f}")
        if s.transitions:
            last = s.transitions[-1]
            lines.append(f"**Last change:** {last.at:%Y-%m-%d} by {last.by}: {last.reason}")
        workflow.set_current_details("\n\n".join(lines))

    async def _plan(self) -> None:
        s = self.s
        assert s.facts is not None
        active = self._active_name()
        plan: Plan = await workflow.execute_activity(
            "plan_deadlines",
            PlanRequest(
                bill_sent_on=s.facts.bill_sent_on,
                initial_payment_received_on=s.dates.get("initial_payment_received_on"),
                open_negotiation_started_on=s.dates.get("open_negotiation_started_on"),
                idr_initiated_on=s.dates.get("idr_initiated_on"),
                idre_selected_on=s.dates.get("idre_selected_on"),
                determination_on=s.dates.get("determination_on"),
                prior_determination_on=s.dates.get("prior_determination_on"),
                tenant_id=s.tenant_id,
                state=s.facts.state,
                extensions=list(s.extensions),
                remind=[active] if active in REMIND else [],
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=Plan,
        )
        s.deadlines = {d.name: d for d in plan.deadlines}
        self._reminders = plan.reminders

    async def _flush(self) -> None:
        """Publish queued stage changes and refresh what an operator sees in the Temporal UI."""
        while self.s.pending_events:
            event = self.s.pending_events[0]
            await workflow.execute_activity(
                "emit_event",
                event,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                result_type=bool,
            )
            self.s.pending_events.pop(0)
        active = self._active_deadline()
        workflow.upsert_search_attributes(
            [
                IDR_STAGE.value_set(self.s.stage),
                IDR_NEXT_DEADLINE.value_set(active.due_at) if active else IDR_NEXT_DEADLINE.value_unset(),
            ]
        )
        self._details()

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
        await workflow.execute_activity(
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
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=int,
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

    async def _replanned(self) -> ClaimStatus:
        """Answer an action once the deadlines it starts are computed (or the claim has ended)."""
        version = self.version
        await workflow.wait_condition(lambda: self.planned_version >= version or self.s.stage in TERMINAL)
        return self.status()

    async def _handlers_done_or_changed(self, version: int) -> None:
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self.version != version)

    async def _changed_since(self, version: int) -> None:
        await workflow.wait_condition(lambda: self.version != version)

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

    async def _deadline_passed(self, d: DeadlineView) -> None:
        """The consequence of a governing deadline's cut-off passing in the current stage."""
        s = self.s
        s.passed.append(_key(d))
        match s.stage:
            case Stage.OPEN_NEGOTIATION_WINDOW | Stage.IDR_INITIATION_WINDOW:
                self._set_stage(Stage.FORFEITED, f"{d.name} {d.due_on.isoformat()} passed")
                await self._flush()
                await self._alert(d, None)
            case Stage.COOLING_OFF:
                self._set_stage(Stage.IDR_INITIATION_WINDOW, "the cooling-off has ended")
            case Stage.ELIGIBILITY_REVIEW if d.name == "offer_and_fee_deadline":
                if not (s.offer_submitted and s.fees_paid):
                    await self._alert(d, None)
            case Stage.IDR_INITIATED:
                self._set_stage(
                    Stage.IDRE_SELECTION,
                    "no joint selection recorded; the Departments select by business day 6",
                )
            case Stage.OFFERS_AND_FEES:
                missing = not (s.offer_submitted and s.fees_paid)
                self._set_stage(Stage.AWAITING_DETERMINATION, f"{d.name} {d.due_on.isoformat()} passed")
                if missing:
                    await self._alert(d, None)
            case Stage.PAID:
                await self._alert(d, None)
                self._set_stage(Stage.CLOSED, "IDR entity fee refund not recorded by its deadline")
            case _:  # Departments' selection, IDR entity's determination: tell someone, keep waiting
                await self._alert(d, None)

    async def _escalate_payment(self, d: DeadlineView, version: int) -> None:
        """After the payment deadline: PaymentOverdue now and every few days until paid or closed."""
        s = self.s
        level = s.payment_escalations
        when = d.due_at + timedelta(seconds=1) + timedelta(days=self.escalation_days * level)
        if await self._sleep_until(when, version):
            return
        s.payment_escalations += 1
        owed = s.amount_owed or Decimal(0)
        position = PaymentPosition(
            amount_owed=owed,
            amount_received=s.amount_received,
            days_overdue=max((self._today() - d.due_on).days, 1),
            escalation_level=s.payment_escalations,
        )
        await self._alert(d, None, overdue=position)
        self._details()

    async def _negotiate(self, version: int) -> None:
        """Open negotiation runs in the child workflow on the negotiation task queue."""
        s = self.s
        assert s.facts is not None
        if self._child is None:
            end = s.deadlines["open_negotiation_period_end"]
            handle = await workflow.start_child_workflow(
                "OpenNegotiationWorkflow",
                NegotiationInput(
                    tenant_id=s.tenant_id,
                    claim_id=s.claim_id,
                    started_on=s.dates["open_negotiation_started_on"],
                    period_end_at=(end.due_at + timedelta(seconds=1)).isoformat(),
                    line_numbers=[line.line_number for line in s.facts.lines],
                ),
                id=negotiation_workflow_id(s.tenant_id, s.claim_id),
                task_queue=self.negotiation_queue,
                result_type=NegotiationOutcome,
            )
            self._child = handle
        child = self._child
        await workflow.wait_condition(lambda: child.done() or self.version != version)
        if not child.done() or s.stage != Stage.OPEN_NEGOTIATION:
            return
        try:
            result = child.result()
        except ChildWorkflowError as exc:  # terminated or failed: no settlement was recorded
            workflow.logger.warning("open negotiation workflow ended without a result: %s", exc)
            result = NegotiationOutcome(settled=False)
        for offer in result.offers:
            self._record(f"offer_{offer.party}", offer)
        if result.settled and result.settlement:
            self._set_stage(
                Stage.SETTLED,
                f"settled in open negotiation for ${result.settlement.amount:,.2f}",
                result.settlement,
            )
        else:
            s.passed.append(_key(s.deadlines["open_negotiation_period_end"]))
            self._set_stage(Stage.IDR_INITIATION_WINDOW, "the 30-business-day open negotiation period ended")

    # ---------------------------------------------------------------------------------------
    # the run
    # ---------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ClaimLifecycleInput) -> str:
        self.escalation_days = inp.payment_escalation_days
        self.negotiation_queue = inp.negotiation_task_queue
        await workflow.wait_condition(lambda: self.s.facts is not None)
        s = self.s
        assert s.facts is not None
        workflow.upsert_search_attributes(
            [
                IDR_TENANT.value_set(s.tenant_id),
                IDR_CLAIM_ID.value_set(s.claim_id),
                IDR_PAYER.value_set(s.facts.payer_name),
                IDR_SERVICE_CODE.value_set(sorted({line.service_code for line in s.facts.lines})),
            ]
        )
        facts_version = s.facts.event_sequence  # before any await: a newer event is noticed below
        if s.stage == Stage.RECEIVED and s.facts.initial_payment_received_on is None:
            await self._plan()
            due = s.deadlines["initial_payment_deadline"]
            self._set_stage(
                Stage.AWAITING_INITIAL_PAYMENT,
                f"bill sent {s.facts.bill_sent_on}; the plan must pay or deny by {due.due_on.isoformat()}",
            )
        elif s.stage == Stage.RECEIVED and s.facts.initial_payment_received_on is not None:
            s.dates["initial_payment_received_on"] = s.facts.initial_payment_received_on
            await self._plan()
            due = s.deadlines["open_negotiation_initiation_deadline"]
            self._set_stage(
                Stage.OPEN_NEGOTIATION_WINDOW,
                f"initial payment received {s.dates['initial_payment_received_on'].isoformat()}; "
                f"open negotiation must start by {due.due_on.isoformat()}",
            )
            started = s.facts.open_negotiation_started_on
            if started and started <= due.due_on:
                s.dates["open_negotiation_started_on"] = started
                self._set_stage(
                    Stage.OPEN_NEGOTIATION,
                    f"open negotiation began {started.isoformat()} (from the claim event)",
                )
        while s.stage not in TERMINAL:
            version = self.version
            if s.facts.event_sequence != facts_version:  # a corrected claim: the receipt date may move
                facts_version = s.facts.event_sequence
                received = s.facts.initial_payment_received_on
                if s.stage == Stage.OPEN_NEGOTIATION_WINDOW and received:
                    s.dates["initial_payment_received_on"] = received
                elif s.stage == Stage.AWAITING_INITIAL_PAYMENT and received:
                    s.dates["initial_payment_received_on"] = received
                    self._set_stage(
                        Stage.OPEN_NEGOTIATION_WINDOW,
                        f"initial payment or denial received {received.isoformat()}",
                    )
            await self._plan()
            await self._flush()
            self.planned_version = version
            if s.stage in TERMINAL:
                break
            if workflow.info().is_continue_as_new_suggested() and s.stage != Stage.OPEN_NEGOTIATION:
                await self._handlers_done_or_changed(version)
                if self.version == version:
                    workflow.continue_as_new(
                        ClaimLifecycleInput(
                            tenant_id=s.tenant_id,
                            claim_id=s.claim_id,
                            state=s,
                            payment_escalation_days=self.escalation_days,
                            negotiation_task_queue=self.negotiation_queue,
                        )
                    )
                continue
            if s.stage == Stage.OPEN_NEGOTIATION:
                await self._negotiate(version)
                continue
            active = self._active_deadline()
            if active is None or _key(active) in s.passed:
                if s.stage == Stage.PAYMENT_DUE and active is not None:
                    await self._escalate_payment(active, version)
                    continue
                if s.stage == Stage.PAID and active is None:
                    self._set_stage(Stage.CLOSED, "paid; nothing left to track")
                    continue
                await self._changed_since(version)
                continue
            if await self._run_clock(active, version):
                continue
            if s.stage == Stage.PAYMENT_DUE:
                s.passed.append(_key(active))
                continue
            await self._deadline_passed(active)
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s.stage


@workflow.defn
class IdrBatchWorkflow:
    """One batched dispute (``batch:{tenant}:{batch_id}``): members join by update while it forms;
    the IDR phases run once for all (each action is forwarded to every member claim's workflow) and
    the determination fans out per claim and line, so decisions can be split."""

    def __init__(self) -> None:
        self.inp: BatchInput | None = None
        self.members: list[str] = []
        self.info: list[MemberInfo] = []
        self.stage = "forming"
        self.actions: list[ActionRecord] = []
        self.results: dict[str, list[MemberResult]] = {}

    @workflow.query(name="status")
    def status(self) -> BatchStatus:
        assert self.inp is not None
        return BatchStatus(
            batch_id=self.inp.batch_id,
            tenant_id=self.inp.tenant_id,
            stage=self.stage,
            members=list(self.members),
            member_info=list(self.info),
            actions=list(self.actions),
            results={k: list(v) for k, v in self.results.items()},
        )

    def _record(self, name: str, a: Action) -> None:
        details: dict[str, Any] = a.model_dump(mode="json", exclude={"actor"})
        self.actions.append(ActionRecord(action=name, at=workflow.now(), actor=a.actor, details=details))

    async def _fan_out(
        self, update: str, bodies: dict[str, dict[str, object]], next_stage: str
    ) -> BatchStatus:
        assert self.inp is not None
        results: list[MemberResult] = await workflow.execute_activity(
            "fan_out_update",
            FanOut(tenant_id=self.inp.tenant_id, update=update, bodies=bodies),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
            result_type=list[MemberResult],
        )
        self.results[update] = results
        if all(r.ok for r in results):
            self.stage = next_stage
        return self.status()

    def _same_for_all(self, a: Action) -> dict[str, dict[str, object]]:
        body = a.model_dump(mode="json")
        return {claim_id: dict(body) for claim_id in self.members}

    @workflow.update(name="add_member")
    async def add_member(self, a: MemberJoined) -> BatchStatus:
        self._record("add_member", a)
        self.members.append(a.member.claim_id)
        self.info.append(a.member)
        return self.status()

    @add_member.validator
    def _v_add(self, a: MemberJoined) -> None:
        if self.stage != "forming":
            raise ValueError("stage: members join before the batch's IDR is initiated")
        if a.member.claim_id in self.members:
            raise ValueError(f"claim_id: {a.member.claim_id} is already in the batch")

    @workflow.update(name="idr_initiated")
    async def idr_initiated(self, a: IdrInitiated) -> BatchStatus:
        self._record("idr_initiated", a)
        return await self._fan_out("idr_initiated", self._same_for_all(a), "initiated")

    @idr_initiated.validator
    def _v_initiated(self, a: IdrInitiated) -> None:
        self._require("forming")
        if len(self.members) < 2:
            raise ValueError("members: a batch needs at least two claims")

    @workflow.update(name="entity_selected")
    async def entity_selected(self, a: EntitySelected) -> BatchStatus:
        self._record("entity_selected", a)
        return await self._fan_out("entity_selected", self._same_for_all(a), "offers_and_fees")

    @entity_selected.validator
    def _v_selected(self, a: EntitySelected) -> None:
        self._require("initiated")

    @workflow.update(name="offer_submitted")
    async def offer_submitted(self, a: BatchOfferSubmitted) -> BatchStatus:
        self._record("offer_submitted", a)
        bodies: dict[str, dict[str, object]] = {
            claim_id: {
                "submitted_on": a.submitted_on.isoformat(),
                "amounts": {str(n): str(v) for n, v in a.amounts[claim_id].items()},
                "actor": a.actor,
            }
            for claim_id in self.members
        }
        return await self._fan_out("offer_submitted", bodies, "offers_and_fees")

    @offer_submitted.validator
    def _v_offer(self, a: BatchOfferSubmitted) -> None:
        self._require("offers_and_fees")
        missing = sorted(set(self.members) - set(a.amounts))
        if missing:
            raise ValueError(f"amounts: one offer per line item is needed; none for {missing}")

    @workflow.update(name="fees_paid")
    async def fees_paid(self, a: FeesPaid) -> BatchStatus:
        self._record("fees_paid", a)
        return await self._fan_out("fees_paid", self._same_for_all(a), "offers_and_fees")

    @fees_paid.validator
    def _v_fees(self, a: FeesPaid) -> None:
        self._require("offers_and_fees")

    @workflow.update(name="determination")
    async def determination(self, a: BatchDetermination) -> BatchStatus:
        self._record("determination", a)
        bodies: dict[str, dict[str, object]] = {}
        for claim_id in self.members:
            lines = [
                {
                    "line_number": x.line_number,
                    "prevailing_party": x.prevailing_party,
                    "amount": str(x.amount),
                }
                for x in a.lines
                if x.claim_id == claim_id
            ]
            bodies[claim_id] = {
                "determined_on": a.determined_on.isoformat(),
                "lines": lines,
                "default": a.default,
                "actor": a.actor,
            }
        return await self._fan_out("determination", bodies, "determined")

    @determination.validator
    def _v_determination(self, a: BatchDetermination) -> None:
        self._require("offers_and_fees")
        without = sorted(set(self.members) - {x.claim_id for x in a.lines})
        if without:
            raise ValueError(f"lines: the determination covers every member; none for {without}")
        strangers = sorted({x.claim_id for x in a.lines} - set(self.members))
        if strangers:
            raise ValueError(f"lines: {strangers} are not in this batch")

    def _require(self, stage: str) -> None:
        if self.stage != stage:
            raise ValueError(f"stage: not possible while the batch is {self.stage} (needs {stage})")

    @workflow.run
    async def run(self, inp: BatchInput) -> str:
        self.inp = inp
        self.members = [m.claim_id for m in inp.members]
        self.info = list(inp.members)
        await workflow.wait_condition(lambda: self.stage == "determined")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.stage
