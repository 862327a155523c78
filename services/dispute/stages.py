"""The claim's stage machine: which deadline governs each stage, what happens when its cut-off
passes, open negotiation as a child workflow, the first stage, and the wait inside a stage.
Deterministic; mixed into ``ClaimLifecycleWorkflow``."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from services.dispute.changes import ClaimChanges
    from services.dispute.checks import deadline_key
    from services.dispute.clock import ClaimClock
    from services.dispute.schemas import DeadlineView, Forfeit, ReminderPlan
    from shared.lifecycle import Action, NegotiationInput, NegotiationOutcome, Settlement, Stage
    from shared.temporal import negotiation_workflow_id


class ClaimStages(ClaimChanges, ClaimClock):
    negotiation_queue: str
    grace_days: int
    history_limit: int
    _child: workflow.ChildWorkflowHandle[Any, NegotiationOutcome] | None
    _child_end: datetime | None  # the period end the child was last given

    async def _deadline_passed(self, d: DeadlineView) -> None:
        """The consequence of a governing deadline's cut-off passing in the current stage."""
        s = self.s
        s.passed.append(deadline_key(d))
        match s.stage:
            case Stage.OPEN_NEGOTIATION_WINDOW | Stage.IDR_INITIATION_WINDOW:
                # the grace period runs from the first forfeiture: a revival that forfeits again
                # (an extension to a date already past) does not start it over
                s.forfeited_since = s.forfeited_since or workflow.now()
                s.forfeit = Forfeit(
                    deadline=d.name, due_on=d.due_on, stage_before=s.stage, at=s.forfeited_since
                )
                self._set_stage(
                    Stage.FORFEITED,
                    f"{d.name} {d.due_on.isoformat()} passed; an extension or a timely action recorded "
                    f"within {self.grace_days} days revives the claim",
                )
                await self._flush()
                await self._alert(d, None)
            case Stage.COOLING_OFF:
                self._set_stage(Stage.IDR_INITIATION_WINDOW, "the cooling-off has ended")
            case Stage.RESUBMISSION_WINDOW:
                self._set_stage(
                    Stage.INELIGIBLE,
                    f"the improperly batched dispute was not resubmitted by {d.due_on.isoformat()}",
                )
                await self._flush()
                await self._alert(d, None)
            case Stage.ELIGIBILITY_REVIEW if d.name == "offer_and_fee_deadline":
                if not (s.offer_submitted and s.fees_paid):
                    await self._alert(d, None)
            case Stage.IDR_INITIATED if s.preferred_entity and not s.preferred_entity_objected:
                # 45 CFR 149.510(c)(1)(i): no objection within 3 business days is acceptance
                s.dates["idre_selected_on"] = d.due_on
                s.idr_entity, s.selected_jointly = s.preferred_entity, True
                self._set_stage(
                    Stage.OFFERS_AND_FEES,
                    f"no objection within 3 business days: {s.preferred_entity} is deemed selected; "
                    "notify the Departments within 1 business day",
                )
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
        end = s.deadlines["open_negotiation_period_end"]
        if self._child_end is not None and end.due_at != self._child_end and not child.done():
            # a closure or an extension moved the period's end: the child's clock moves with it
            await child.signal("period_end_moved", (end.due_at + timedelta(seconds=1)).isoformat())
        self._child_end = end.due_at
        await workflow.wait_condition(lambda: child.done() or self.version != version)
        if not child.done() or s.stage != Stage.OPEN_NEGOTIATION:
            return
        try:
            result = child.result()
        except ChildWorkflowError as exc:  # terminated or failed: no settlement was recorded
            workflow.logger.warning("open negotiation workflow ended without a result: %s", exc)
            result = NegotiationOutcome(settled=False)
        for offer in result.offers:
            self._note(f"offer_{offer.party}", offer, "applied", None)
        if result.settled and result.settlement:
            self._settled(
                result.settlement, f"settled in open negotiation for ${result.settlement.amount:,.2f}"
            )
        else:
            s.passed.append(deadline_key(s.deadlines["open_negotiation_period_end"]))
            self._set_stage(Stage.IDR_INITIATION_WINDOW, "the 30-business-day open negotiation period ended")

    def _settle_amounts(self, awards: dict[int, Decimal], outcome: str, by: Action) -> None:
        """Per line: the plan owes the out-of-network rate minus the patient's cost sharing minus
        what it paid; where that is negative the provider refunds the excess (audit row 4). The
        claim's balance nets the lines: the plan pays it, or the provider refunds it, in 30 days."""
        s = self.s
        assert s.facts is not None
        balance = Decimal(0)
        for line in s.facts.lines:
            if line.line_number in awards:
                balance += awards[line.line_number] - (line.cost_sharing or Decimal(0)) - line.paid
        if balance > 0:
            s.amount_owed, s.refund_owed = balance, None
            self._set_stage(Stage.PAYMENT_DUE, f"{outcome}; ${balance:,.2f} owed by the plan", by)
        elif balance < 0:
            s.amount_owed, s.refund_owed = Decimal(0), -balance
            self._set_stage(
                Stage.REFUND_DUE,
                f"{outcome}; the plan paid ${-balance:,.2f} more than the amount determined: "
                "the provider refunds it",
                by,
            )
        else:
            s.amount_owed = Decimal(0)
            self._set_stage(Stage.PAID, f"{outcome}; no additional payment owed", by)

    def _settled(self, a: Settlement, reason: str) -> None:
        """A settlement ends the dispute; the plan still pays the amount agreed within 30 days
        (42 U.S.C. 300gg-111(c)(6); audit row 5)."""
        s = self.s
        assert s.facts is not None
        during_idr = s.fees_paid  # settled after the fees were paid: each party gets half its fee back
        self._set_stage(Stage.SETTLED, reason, a)
        owed = a.amount - sum(
            (line.paid + (line.cost_sharing or Decimal(0)) for line in s.facts.lines), Decimal(0)
        )
        if owed > 0 or during_idr:
            s.dates["agreement_on"] = a.settled_on
        if during_idr:
            s.fee_refund_share = "half"
        if owed > 0:
            s.amount_owed = owed
            self._set_stage(
                Stage.PAYMENT_DUE, f"the plan owes ${owed:,.2f} of the amount agreed within 30 days", a
            )
        elif owed < 0:
            s.dates["agreement_on"] = a.settled_on
            s.amount_owed, s.refund_owed = Decimal(0), -owed
            self._set_stage(
                Stage.REFUND_DUE,
                f"the plan paid ${-owed:,.2f} more than the amount agreed: the provider refunds it",
                a,
            )
        elif during_idr:
            s.amount_owed = Decimal(0)
            self._set_stage(
                Stage.PAID, "nothing more owed; half of each party's IDR entity fee is refunded", a
            )

    def _first_deadline(self) -> DeadlineView | None:
        """The deadline the first stage runs on: the plan's payment, or open negotiation's start."""
        name = "open_negotiation_initiation_deadline"
        if "initial_payment_received_on" not in self.s.dates:
            name = "initial_payment_deadline"
        return self.s.deadlines.get(name)

    def _enter(self) -> None:
        """The first stage of a claim, once its first deadlines are planned."""
        s = self.s
        assert s.facts is not None
        if "initial_payment_received_on" not in s.dates:
            due = s.deadlines["initial_payment_deadline"]
            self._set_stage(
                Stage.AWAITING_INITIAL_PAYMENT,
                f"bill sent {s.facts.bill_sent_on}; the plan must pay or deny by {due.due_on.isoformat()}",
            )
            return
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

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        if self.history_limit and info.get_current_history_length() > self.history_limit:
            return True
        return info.is_continue_as_new_suggested()

    async def _wait_in_stage(self, version: int) -> None:
        """Run the current stage's clock until it passes or something changes."""
        s = self.s
        if s.stage == Stage.OPEN_NEGOTIATION:
            await self._negotiate(version)
            return
        if s.stage == Stage.FORFEITED:
            assert s.forfeit is not None
            if await self._sleep_until(s.forfeit.at + timedelta(days=self.grace_days), version):
                return
            s.final = True
            self._set_stage(
                Stage.FORFEITED,
                f"no extension or timely action was recorded within {self.grace_days} days: "
                "the forfeiture is final",
            )
            return
        held = s.deadlines.get("held_by_cooling_off_until")
        if (
            s.stage == Stage.IDR_INITIATION_WINDOW
            and held is not None
            and deadline_key(held) not in s.passed
            and held.due_at > workflow.now()
            and self._post_cooling_off()
        ):
            self._set_stage(
                Stage.COOLING_OFF,
                f"a prior determination's cooling-off holds this claim until {held.due_on.isoformat()}; "
                "open negotiation ended inside it",
            )
            return
        notice = s.deadlines.get("joint_selection_notice_deadline")
        if (
            s.stage == Stage.OFFERS_AND_FEES
            and notice is not None
            and notice.due_at > workflow.now()
            and not any(r.deadline == notice.name and r.due_on == notice.due_on for r in s.reminders_sent)
        ):
            # one reminder now: the 1-business-day notice of a joint selection (D5a)
            await self._alert(
                notice, ReminderPlan(deadline=notice.name, business_days_before=1, fire_at=workflow.now())
            )
            return
        active = self._active_deadline()
        if active is None or deadline_key(active) in s.passed:
            if s.stage == Stage.PAYMENT_DUE and active is not None:
                if await self._escalate_payment(active, version):
                    await self._flush()
                return
            if s.stage == Stage.PAID and active is None:
                self._set_stage(Stage.CLOSED, "paid; nothing left to track")
                return
            await self._changed_since(version)
            return
        if await self._run_clock(active, version):
            return
        if s.stage == Stage.PAYMENT_DUE:
            s.passed.append(deadline_key(active))
            return
        await self._deadline_passed(active)

    async def _handlers_done_or_changed(self, version: int) -> None:
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self.version != version)

    async def _changed_since(self, version: int) -> None:
        await workflow.wait_condition(lambda: self.version != version)
