"""ClaimLifecycleWorkflow: one per claim, id ``claim:{tenant}:{claim_id}``. Deterministic code only.

A stage machine over idr-rules D0-D13. Each stage has at most one governing deadline (a durable
timer with reminders, see ``clock.py``); its cut-off passing has a consequence (forfeited, the
Departments' selection, default risk, payment escalation, ...). People and systems act through
validated updates (the checks are in ``checks.py``); a retried update (same update id) is applied
once. Dates come from an activity (the rules engine), so they are recorded in history. A change the
rules cannot plan (a correction, an extension, a calendar change) is undone and recorded as
rejected: no input fails the workflow. After every plan the claim record (PostgreSQL) is written
with the events that announce it, so the record outlives the workflow. A forfeited claim can be
revived for a grace period by an extension or an action recorded late with a timely date.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.dispute.batch_workflow import IdrBatchWorkflow
    from services.dispute.clock import LOCAL_STEPS, PLANNED_BEFORE_START, REMINDER_SPREAD, step
    from services.dispute.planning import first_stage_dates, plan_request, request_digest
    from services.dispute.schemas import (
        ClaimEventSignal,
        ClaimLifecycleInput,
        ClaimState,
        ClaimStatus,
        Plan,
        ReminderPlan,
    )
    from services.dispute.stages import ClaimStages
    from shared.events import ClaimAdjudicated
    from shared.lifecycle import (
        Closing,
        CoolingOffApplies,
        Determination,
        EligibilityDecision,
        EligibilityObjection,
        EntityDeclined,
        EntitySelected,
        ExtensionGranted,
        FeeRefundReceived,
        FeesPaid,
        IdrInitiated,
        NegotiationOutcome,
        NoticeSent,
        OfferSubmitted,
        PaymentReceived,
        PreferredEntityObjected,
        RefundSent,
        ResponseNoticeReceived,
        Settlement,
        Stage,
    )
    from shared.rules.cooling_off import barred_on
    from shared.temporal import (
        IDR_CLAIM_ID,
        IDR_PAYER,
        IDR_SERVICE_CODE,
        IDR_TENANT,
    )

__all__ = ["ClaimLifecycleWorkflow", "IdrBatchWorkflow"]

IDR_STAGES = (
    Stage.IDR_INITIATED,
    Stage.IDRE_SELECTION,
    Stage.ELIGIBILITY_REVIEW,
    Stage.OFFERS_AND_FEES,
    Stage.AWAITING_DETERMINATION,
)
INITIATION = ("idr_initiation_deadline", "post_cooling_off_initiation_deadline")


@workflow.defn
class ClaimLifecycleWorkflow(ClaimStages):
    @workflow.init
    def __init__(self, inp: ClaimLifecycleInput) -> None:
        # built from the input before any signal or update of this run is handled (continue-as-new)
        self.s = inp.state or ClaimState(tenant_id=inp.tenant_id, claim_id=inp.claim_id)
        self.version = 0
        self.planned_version = -1
        self.escalation_days = inp.payment_escalation_days
        self.negotiation_queue = inp.negotiation_task_queue
        self.grace_days = inp.forfeiture_grace_days
        self.history_limit = inp.history_event_limit
        self._child: workflow.ChildWorkflowHandle[Any, NegotiationOutcome] | None = None
        self._child_end: datetime | None = None
        self._reminders: list[ReminderPlan] = []
        # the state before the changes not yet planned: restored when the rules refuse them
        self._checkpoint: ClaimState | None = None
        self._trying: ClaimAdjudicated | None = None  # the corrected facts being planned
        self._rejections: list[tuple[int, int, str]] = []  # (after version, up to version, reason)
        self._first_plan = None if inp.state else inp.first_plan  # the consumer's plan of the first pass

    # ---------------------------------------------------------------------------------------
    # messages
    # ---------------------------------------------------------------------------------------
    @workflow.signal(name="claim_event")
    def claim_event(self, signal: ClaimEventSignal) -> None:
        s = self.s
        key = str(signal.event_id)
        if key in s.seen_events:
            return
        s.seen_events.append(key)
        if s.facts is None:
            s.facts = signal.facts
            self._bump()
            return
        latest = max(
            s.facts.event_sequence,
            s.incoming_facts.event_sequence if s.incoming_facts else 0,
            s.rejected_sequence,
        )
        if signal.facts.event_sequence > latest:
            s.incoming_facts = signal.facts  # applied (or refused) by the run loop, before planning
            self._bump()

    @workflow.signal(name="calendar_changed")
    def calendar_changed(self) -> None:
        """The tenant's closures or extensions changed: plan the deadlines again (a first plan the
        consumer made may predate the change: not used)."""
        self._first_plan = None
        self._bump()

    @workflow.query(name="status")
    def status(self) -> ClaimStatus:
        return self._status()

    # -- open negotiation ---------------------------------------------------------------------
    @workflow.update(name="open_negotiation_notice_sent")
    async def open_negotiation_notice_sent(self, a: NoticeSent) -> ClaimStatus:
        if self._begin("open_negotiation_notice_sent", a):
            if self.s.stage == Stage.FORFEITED:
                self._revive(f"the notice was sent on {a.sent_on.isoformat()}, in time, and recorded late", a)
            self.s.dates["open_negotiation_started_on"] = a.sent_on
            self._set_stage(
                Stage.OPEN_NEGOTIATION, f"open negotiation notice sent to {a.recipient} by {a.channel}", a
            )
        return await self._replanned()

    @open_negotiation_notice_sent.validator
    def _v_notice(self, a: NoticeSent) -> None:
        if self._replay():
            return
        if not self._revivable_by("open_negotiation_initiation_deadline"):
            self._require(Stage.OPEN_NEGOTIATION_WINDOW)
        received = self.s.dates.get("initial_payment_received_on")
        if received and a.sent_on < received:
            raise ValueError(f"sent_on: before the initial payment was received ({received.isoformat()})")
        self._not_future(a.sent_on, "sent_on")
        self._within("open_negotiation_initiation_deadline", a.sent_on, "sent_on")

    @workflow.update(name="response_notice_received")
    async def response_notice_received(self, a: ResponseNoticeReceived) -> ClaimStatus:
        if self._begin("response_notice_received", a):
            self._bump()
        return await self._replanned()

    @response_notice_received.validator
    def _v_response(self, a: ResponseNoticeReceived) -> None:
        if self._replay():
            return
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
        if self._begin("cooling_off_applies", a):
            if self.s.stage == Stage.FORFEITED:  # recorded late: the window may be the post-cooling-off one
                self._revive("a prior determination's cooling-off was recorded", a)
            # whether it holds the claim is decided once the cooling-off's end is planned (stages)
            self.s.dates["prior_determination_on"] = a.prior_determination_on
            self.s.prior_initiated_by = a.prior_initiated_by
            self.s.prior_batched = a.prior_batched
            if a.prior_open_negotiation_started_on:
                self.s.dates["prior_open_negotiation_started_on"] = a.prior_open_negotiation_started_on
            self._bump()
        return await self._replanned()

    @cooling_off_applies.validator
    def _v_cooling(self, a: CoolingOffApplies) -> None:
        if self._replay():
            return
        if not self._revivable_by(*INITIATION):
            self._require(Stage.OPEN_NEGOTIATION, Stage.IDR_INITIATION_WINDOW)
        self._not_future(a.prior_determination_on, "prior_determination_on")
        # whether it still holds the claim, and which window follows, is the planner's answer
        # (cooling_off.initiation_window), not a fixed 90 days here

    @workflow.update(name="idr_initiated")
    async def idr_initiated(self, a: IdrInitiated) -> ClaimStatus:
        if self._begin("idr_initiated", a):
            if self.s.stage == Stage.FORFEITED:
                self._revive(
                    f"IDR was initiated on {a.initiated_on.isoformat()}, in time, and recorded late", a
                )
            if self.s.stage == Stage.RESUBMISSION_WINDOW:  # the dispute starts again, correctly batched
                for key in ("improper_batch_notice_on", "idre_selected_on", "determination_on"):
                    self.s.dates.pop(key, None)
                self.s.idr_entity, self.s.offer_submitted, self.s.fees_paid = None, False, False
            self.s.dates["idr_initiated_on"] = a.initiated_on
            self.s.dispute_number = a.dispute_number
            self.s.preferred_entity, self.s.preferred_entity_objected = a.preferred_entity, False
            self._set_stage(Stage.IDR_INITIATED, f"IDR initiated, dispute {a.dispute_number}", a)
        return await self._replanned()

    @idr_initiated.validator
    def _v_initiated(self, a: IdrInitiated) -> None:
        if self._replay():
            return
        d = self.s.deadlines
        if self.s.stage == Stage.OPEN_NEGOTIATION and "idr_initiation_window_opens" in d:
            raise ValueError(
                f"initiated_on: the open negotiation period runs until "
                f"{d['open_negotiation_period_end'].due_on.isoformat()}; IDR may be initiated from "
                f"{d['idr_initiation_window_opens'].due_on.isoformat()} (business day 31)"
            )
        if self.s.stage == Stage.RESUBMISSION_WINDOW:
            self._not_before(a.initiated_on, "improper_batch_notice_on", "initiated_on")
            self._within("improper_batch_resubmission_deadline", a.initiated_on, "initiated_on")
            self._not_future(a.initiated_on, "initiated_on")
            return
        if not self._revivable_by(*INITIATION):
            self._require(Stage.IDR_INITIATION_WINDOW)
        held = d.get("held_by_cooling_off_until")
        prior = self.s.dates.get("prior_determination_on")
        if held and barred_on(
            a.initiated_on, prior, held.due_on, prior_initiated_by_us=self.s.prior_initiated_by != "plan"
        ):
            raise ValueError(
                f"initiated_on: the cooling-off holds this claim until {held.due_on.isoformat()}"
            )
        if self._post_cooling_off():
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
        if self._begin("entity_selected", a):
            self.s.dates["idre_selected_on"] = a.selected_on
            self.s.idr_entity = a.entity
            self.s.selected_jointly = a.by == "joint"
            if self.s.stage == Stage.ELIGIBILITY_REVIEW:  # selected while an objection is pending
                self.s.stage_before_review = Stage.OFFERS_AND_FEES
                self._bump()
            else:
                self._set_stage(Stage.OFFERS_AND_FEES, f"IDR entity {a.entity} selected ({a.by})", a)
        return await self._replanned()

    @entity_selected.validator
    def _v_selected(self, a: EntitySelected) -> None:
        if self._replay():
            return
        self._require(Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.ELIGIBILITY_REVIEW)
        if "idre_selected_on" in self.s.dates:
            raise ValueError(f"stage: an IDR entity ({self.s.idr_entity}) is already selected")
        self._not_before(a.selected_on, "idr_initiated_on", "selected_on")
        self._not_future(a.selected_on, "selected_on")

    @workflow.update(name="preferred_entity_objected")
    async def preferred_entity_objected(self, a: PreferredEntityObjected) -> ClaimStatus:
        if self._begin("preferred_entity_objected", a):
            self.s.preferred_entity_objected = True
            self._bump()
        return await self._replanned()

    @preferred_entity_objected.validator
    def _v_objected(self, a: PreferredEntityObjected) -> None:
        if self._replay():
            return
        self._require(Stage.IDR_INITIATED)
        if not self.s.preferred_entity:
            raise ValueError("stage: no preferred IDR entity was named at initiation")
        self._not_before(a.objected_on, "idr_initiated_on", "objected_on")

    @workflow.update(name="entity_declined")
    async def entity_declined(self, a: EntityDeclined) -> ClaimStatus:
        if self._begin("entity_declined", a):
            s = self.s
            entity = s.idr_entity
            s.dates.pop("idre_selected_on", None)
            s.idr_entity, s.selected_jointly = None, False
            s.offer_submitted = s.fees_paid = False  # both go to the new entity
            self._set_stage(
                Stage.IDRE_SELECTION,
                f"IDR entity {entity} cannot serve ({a.reason.replace('_', ' ')}): another is selected; the "
                "offer and the entity fee go to it, and the offer and determination clocks start again from "
                "that selection",
                a,
            )
        return await self._replanned()

    @entity_declined.validator
    def _v_declined(self, a: EntityDeclined) -> None:
        if self._replay():
            return
        self._require(Stage.OFFERS_AND_FEES, Stage.AWAITING_DETERMINATION)
        self._not_before(a.declined_on, "idre_selected_on", "declined_on")
        self._not_future(a.declined_on, "declined_on")

    @workflow.update(name="eligibility_objection")
    async def eligibility_objection(self, a: EligibilityObjection) -> ClaimStatus:
        if self._begin("eligibility_objection", a):
            self.s.stage_before_review = self.s.stage
            self._set_stage(Stage.ELIGIBILITY_REVIEW, f"eligibility objection: {a.reason}", a)
        return await self._replanned()

    @eligibility_objection.validator
    def _v_objection(self, a: EligibilityObjection) -> None:
        if self._replay():
            return
        self._require(Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.OFFERS_AND_FEES)

    @workflow.update(name="eligibility_decision")
    async def eligibility_decision(self, a: EligibilityDecision) -> ClaimStatus:
        if not self._begin("eligibility_decision", a):
            return await self._replanned()
        if a.eligible:
            if self.s.stage == Stage.ELIGIBILITY_REVIEW:
                back = self.s.stage_before_review or Stage.OFFERS_AND_FEES
                self.s.stage_before_review = None
                self._set_stage(back, "the IDR entity found the dispute eligible", a)
                if back == Stage.OFFERS_AND_FEES:
                    self._offers_complete(a)
            else:
                self._bump()
        elif a.improperly_batched:
            self.s.dates["improper_batch_notice_on"] = a.decided_on
            self._set_stage(
                Stage.RESUBMISSION_WINDOW,
                f"improperly batched: {a.reason or 'no reason given'}; it may be resubmitted once "
                "within 4 business days",
                a,
            )
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
        if self._replay():
            return
        self._require(
            Stage.ELIGIBILITY_REVIEW, Stage.IDR_INITIATED, Stage.IDRE_SELECTION, Stage.OFFERS_AND_FEES
        )

    # -- offers, fees, determination --------------------------------------------------------
    @workflow.update(name="offer_submitted")
    async def offer_submitted(self, a: OfferSubmitted) -> ClaimStatus:
        if self._begin("offer_submitted", a):
            self.s.offer_submitted = True
            self._offers_complete(a)
        return await self._replanned()

    @offer_submitted.validator
    def _v_offer(self, a: OfferSubmitted) -> None:
        if self._replay():
            return
        self._require(Stage.OFFERS_AND_FEES, Stage.ELIGIBILITY_REVIEW)
        self._lines(list(a.amounts), "amounts")
        self._not_before(a.submitted_on, "idre_selected_on", "submitted_on")

    @workflow.update(name="fees_paid")
    async def fees_paid(self, a: FeesPaid) -> ClaimStatus:
        if self._begin("fees_paid", a):
            self.s.fees_paid = True
            self._offers_complete(a)
        return await self._replanned()

    @fees_paid.validator
    def _v_fees(self, a: FeesPaid) -> None:
        if self._replay():
            return
        self._require(Stage.OFFERS_AND_FEES, Stage.ELIGIBILITY_REVIEW)
        self._not_before(a.paid_on, "idre_selected_on", "paid_on")

    @workflow.update(name="determination")
    async def determination(self, a: Determination) -> ClaimStatus:
        if not self._begin("determination", a):
            return await self._replanned()
        won = sum(1 for award in a.lines if award.prevailing_party == "provider")
        self.s.provider_prevailed = won * 2 > len(a.lines)
        # the losing party pays; a tie splits the fee, so half of it comes back (audit row 18)
        self.s.fee_refund_share = (
            "full" if won * 2 > len(a.lines) else "half" if won * 2 == len(a.lines) else None
        )
        self.s.dates["determination_on"] = a.determined_on
        outcome = (
            "provider prevailed"
            if won == len(a.lines)
            else "payer prevailed"
            if won == 0
            else "split decision"
        )
        kind = "default decision, " if a.default else ""
        self._settle_amounts({award.line_number: award.amount for award in a.lines}, f"{kind}{outcome}", a)
        return await self._replanned()

    @determination.validator
    def _v_determination(self, a: Determination) -> None:
        if self._replay():
            return
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
        if self._already_paid(a):
            self._note("payment_received", a, "duplicate", f"payment {a.reference} is already recorded")
            return self.status()
        if not self._begin("payment_received", a):
            return await self._replanned()
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
        if self._replay() or self._already_paid(a):
            return
        self._require(Stage.PAYMENT_DUE)
        self._not_before(a.received_on, "determination_on", "received_on")
        self._not_before(a.received_on, "agreement_on", "received_on")

    def _already_paid(self, a: PaymentReceived) -> bool:
        """The same payment (its reference: an EFT trace or check number) recorded before."""
        return a.reference is not None and any(
            r.action == "payment_received"
            and r.outcome == "applied"
            and r.details.get("reference") == a.reference
            for r in self.s.actions
        )

    @workflow.update(name="fee_refund_received")
    async def fee_refund_received(self, a: FeeRefundReceived) -> ClaimStatus:
        if self._begin("fee_refund_received", a):
            self.s.fee_refund_received = True
            if self.s.stage == Stage.PAID:
                self._set_stage(Stage.CLOSED, f"IDR entity fee refund of ${a.amount:,.2f} received", a)
            else:
                self._bump()  # payment is still owed: keep chasing it
        return await self._replanned()

    @fee_refund_received.validator
    def _v_refund(self, a: FeeRefundReceived) -> None:
        if self._replay():
            return
        self._require(Stage.PAID, Stage.PAYMENT_DUE, Stage.REFUND_DUE)

    @workflow.update(name="refund_sent")
    async def refund_sent(self, a: RefundSent) -> ClaimStatus:
        if self._begin("refund_sent", a):
            s = self.s
            s.refund_sent += a.amount
            if s.refund_sent >= (s.refund_owed or Decimal(0)) and s.stage == Stage.REFUND_DUE:
                self._set_stage(Stage.PAID, f"the provider's refund of ${s.refund_sent:,.2f} was sent", a)
            else:
                self._bump()
        return await self._replanned()

    @refund_sent.validator
    def _v_refund_sent(self, a: RefundSent) -> None:
        if self._replay():
            return
        self._require(Stage.REFUND_DUE)
        self._not_before(a.sent_on, "determination_on", "sent_on")
        self._not_future(a.sent_on, "sent_on")

    # -- any time -----------------------------------------------------------------------------
    @workflow.update(name="settlement")
    async def settlement(self, a: Settlement) -> ClaimStatus:
        if self._begin("settlement", a):
            after_initiation = self.s.stage in IDR_STAGES
            note = (
                " Notify the Departments and the IDR entity (about 3 business days)."
                if after_initiation
                else ""
            )
            self._settled(a, f"settled for ${a.amount:,.2f}.{note}")
        return await self._replanned()

    @settlement.validator
    def _v_settlement(self, a: Settlement) -> None:
        if self._replay():
            return
        if self.s.stage == Stage.OPEN_NEGOTIATION:
            raise ValueError("stage: during open negotiation, settle through the negotiation service")
        self._require(
            Stage.OPEN_NEGOTIATION_WINDOW,
            Stage.IDR_INITIATION_WINDOW,
            Stage.COOLING_OFF,
            Stage.RESUBMISSION_WINDOW,
            *IDR_STAGES,
        )
        self._not_future(a.settled_on, "settled_on")
        self._not_before(a.settled_on, "initial_payment_received_on", "settled_on")
        self._not_before(a.settled_on, "idr_initiated_on", "settled_on")

    @workflow.update(name="extension_granted")
    async def extension_granted(self, a: ExtensionGranted) -> ClaimStatus:
        if self._begin("extension_granted", a):
            self.s.extensions.append(a)
            if self.s.stage == Stage.FORFEITED:
                self._revive(
                    f"the Departments extended {a.deadline} to {a.new_date.isoformat()} ({a.reference})", a
                )
            else:
                self._bump()
        return await self._replanned()

    @extension_granted.validator
    def _v_extension(self, a: ExtensionGranted) -> None:
        if self._replay():
            return
        self._open()
        if a.deadline in ("payment_deadline", "provider_refund_deadline"):
            raise ValueError("deadline: the payment deadline cannot be extended (idr-rules D12)")
        f = self.s.forfeit
        if self.s.stage == Stage.FORFEITED and f is not None and a.deadline != f.deadline:
            raise ValueError(
                f"deadline: the claim was forfeited when {f.deadline} ({f.due_on.isoformat()}) passed; "
                "only an extension of that deadline revives it"
            )
        current = self.s.deadlines.get(a.deadline)
        if current is None:
            raise ValueError(f"deadline: {a.deadline!r} is not one of this claim's deadlines")
        if a.new_date <= current.due_on:
            raise ValueError(f"new_date: must be after the current deadline {current.due_on.isoformat()}")

    @workflow.update(name="withdrawn")
    async def withdrawn(self, a: Closing) -> ClaimStatus:
        if self._begin("withdrawn", a):
            self._set_stage(Stage.WITHDRAWN, a.reason, a)
        return await self._replanned()

    @workflow.update(name="administratively_closed")
    async def administratively_closed(self, a: Closing) -> ClaimStatus:
        if self._begin("administratively_closed", a):
            self._set_stage(Stage.ADMINISTRATIVELY_CLOSED, a.reason, a)
        return await self._replanned()

    @workflow.update(name="closed")
    async def closed(self, a: Closing) -> ClaimStatus:
        if self._begin("closed", a):
            self._set_stage(Stage.CLOSED, a.reason, a)
        return await self._replanned()

    @withdrawn.validator
    def _v_withdrawn(self, a: Closing) -> None:
        if not self._replay():
            self._open()

    @administratively_closed.validator
    def _v_admin(self, a: Closing) -> None:
        if not self._replay():
            self._open()

    @closed.validator
    def _v_closed(self, a: Closing) -> None:
        if not self._replay():
            self._open()

    async def _plan(self) -> str | None:
        """Compute every deadline the known dates start; the rules' reason when they cannot."""
        s = self.s
        assert s.facts is not None
        planning = self.version
        snapshot = s.model_copy(deep=True) if self._checkpoint is not None else None
        try:
            req = plan_request(s, spread=workflow.patched(REMINDER_SPREAD))
            first, self._first_plan = self._first_plan, None
            # replaying, the history's patch marker says whether the first plan was used (a later
            # release may build another request from the same state)
            if (
                first is not None
                and (workflow.unsafe.is_replaying() or first.request_digest == request_digest(req))
                and workflow.patched(PLANNED_BEFORE_START)
            ):
                plan = first.plan  # planned by the consumer for exactly this request: no step
            else:
                plan = await step("plan_deadlines", req, Plan, local=workflow.patched(LOCAL_STEPS))
        except ActivityError as exc:  # only a non-retryable refusal of the rules ends up here
            cause = exc.cause
            return str(getattr(cause, "message", None) or cause or exc)
        except ApplicationError as exc:  # the same refusal from the local activity, as it was raised
            return exc.message or str(exc)
        previous = s.deadlines
        planned = {}
        for d in plan.deadlines:
            before = previous.get(d.name)
            if before is not None and before.due_on == d.due_on:
                d = before  # unchanged: keep what it said (including where it moved from)
            elif before is not None:
                d = d.model_copy(
                    update={"explanation": f"{d.explanation}; moved from {before.due_on.isoformat()}"}
                )
            planned[d.name] = d
        s.deadlines = planned
        self._reminders = plan.reminders
        self._trying = None
        if self.version == planning or snapshot is None:
            self._checkpoint = None
        else:  # changes arrived while planning: until they are planned, undoing means back to here
            snapshot.deadlines = dict(planned)
            self._checkpoint = snapshot
        return None

    # ---------------------------------------------------------------------------------------
    # the run
    # ---------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ClaimLifecycleInput) -> str:
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
        while not self._ended():
            s = self.s
            version = self.version
            if s.incoming_facts is not None:
                self._apply_correction()
                version = self.version
            seeded = False
            if s.stage == Stage.RECEIVED and s.facts:  # the first stage's dates come from the facts
                first = first_stage_dates(s.facts)
                if "initial_payment_received_on" in first:
                    s.dates["initial_payment_received_on"] = first["initial_payment_received_on"]
                else:
                    s.dates.pop("initial_payment_received_on", None)
                s.dates.pop("open_negotiation_started_on", None)
                # the start the facts carry is planned with them (patched: the first pass plans once)
                seeded = "open_negotiation_started_on" in first and workflow.patched(LOCAL_STEPS)
                if seeded:
                    s.dates["open_negotiation_started_on"] = first["open_negotiation_started_on"]
            refused = await self._plan()
            if refused is not None and seeded:  # the rules refuse the start date: plan without it
                s.dates.pop("open_negotiation_started_on", None)
                seeded = False
                refused = await self._plan()
            if refused is None and s.stage == Stage.RECEIVED and not self._first_deadline():
                refused = (
                    "claim: give initial_payment_received_on, or bill_sent_on to track the plan's payment"
                )
            if refused is not None:
                self._refuse(refused, max(version, self.planned_version))
                s = self.s
            else:
                self._revive_if_moved()
            if refused is None and s.stage == Stage.RECEIVED:
                dates, unchanged = dict(s.dates), self.version == version
                self._enter()
                if seeded and s.stage != Stage.OPEN_NEGOTIATION:  # after its deadline: not applied
                    s.dates.pop("open_negotiation_started_on", None)
                if unchanged and s.dates == dates:
                    version = self.version  # the plan does not depend on the stage: no second pass
            await self._flush()
            self.planned_version = max(self.planned_version, version)
            if self._ended():
                break
            if s.stage == Stage.RECEIVED:  # its first facts cannot be planned: wait for a correction
                await self._changed_since(self.version)
                continue
            if self._continue_as_new_due() and s.stage != Stage.OPEN_NEGOTIATION:
                await self._handlers_done_or_changed(version)
                if self.version == version:
                    workflow.continue_as_new(
                        ClaimLifecycleInput(
                            tenant_id=s.tenant_id,
                            claim_id=s.claim_id,
                            state=s,
                            payment_escalation_days=self.escalation_days,
                            negotiation_task_queue=self.negotiation_queue,
                            forfeiture_grace_days=self.grace_days,
                            history_event_limit=self.history_limit,
                        )
                    )
                continue
            if self.version != version:
                continue  # changed while recording (a new stage, an action): plan it first
            await self._wait_in_stage(version)
        self.s.final = True
        self._checkpoint = None
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.s.stage
