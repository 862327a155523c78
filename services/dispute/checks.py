"""The checks behind the claim workflow's update validators: pure reads of the claim's state that
raise ``ValueError("<field>: <reason>")`` for an action that is not possible now. Deterministic."""

from __future__ import annotations

from datetime import date

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from services.dispute.schemas import ClaimState, ClaimStatus, DeadlineView
    from shared.lifecycle import RECOVERABLE, TERMINAL, Stage
    from shared.rules.calendar import new_york_date
    from shared.rules.cooling_off import initiation_window
    from shared.temporal import claim_workflow_id


def deadline_key(d: DeadlineView) -> str:
    return f"{d.name}@{d.due_on.isoformat()}"


class ClaimChecks:
    """Mixed into the claim workflow: ``self.s`` is its state. Everything here only reads it: the
    validators' checks, which deadline governs the stage, the status and the operator's summary."""

    s: ClaimState

    def _wid(self) -> str:
        return claim_workflow_id(self.s.tenant_id, self.s.claim_id)

    def _replay(self) -> bool:
        """True when this update's id was already applied (a retry): validators let it through and
        the handler answers with the current status without applying it twice."""
        info = workflow.current_update_info()
        return info is not None and info.id in self.s.applied_updates

    def _today(self) -> date:
        """Today in New York, where deadlines end."""
        return new_york_date(workflow.now())

    def _ended(self) -> bool:
        s = self.s
        return s.final or (s.stage in TERMINAL and s.stage not in RECOVERABLE)

    def _open(self) -> None:
        if self._ended():
            raise ValueError(f"stage: the claim is {self.s.stage}")

    def _require(self, *stages: str) -> None:
        if self.s.stage not in stages:
            raise ValueError(
                f"stage: not possible while the claim is {self.s.stage} (needs {' or '.join(stages)})"
            )

    def _revivable_by(self, *deadlines: str) -> bool:
        """Forfeited at one of these cut-offs, and still inside the grace period."""
        f = self.s.forfeit
        return (
            self.s.stage == Stage.FORFEITED and not self.s.final and f is not None and f.deadline in deadlines
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

    def _post_cooling_off(self) -> bool:
        """The 30 business days after a cooling-off replace business days 31-34 only when open
        negotiation ended inside the cooling-off and the prior dispute was ours (audit rows 3, 10)."""
        s = self.s
        end, held = (
            s.deadlines.get("open_negotiation_period_end"),
            s.deadlines.get("held_by_cooling_off_until"),
        )
        if end is None or held is None:
            return False
        window = initiation_window(
            end.due_on,
            s.dates.get("prior_determination_on"),
            held.due_on,
            prior_initiated_by_us=s.prior_initiated_by != "plan",
        )
        return window == "post_cooling_off"

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
                if self._post_cooling_off():
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
            case Stage.REFUND_DUE:
                return "provider_refund_deadline"
            case Stage.RESUBMISSION_WINDOW:
                return "improper_batch_resubmission_deadline"
            case Stage.PAID:
                share = s.fee_refund_share or ("full" if s.provider_prevailed else None)
                tracking = share is not None and s.fees_paid and not s.fee_refund_received
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
        if s.forfeit and not s.final:
            lines.append(f"**Forfeited:** {s.forfeit.deadline} {s.forfeit.due_on}; revivable for a while")
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

    def _status(self) -> ClaimStatus:
        """What the workflow answers to the ``status`` query (and to every action)."""
        s = self.s
        upcoming = sorted(
            (d for d in s.deadlines.values() if deadline_key(d) not in s.passed and s.stage not in TERMINAL),
            key=lambda d: d.due_at,
        )
        active = self._active_deadline()
        return ClaimStatus(
            tenant_id=s.tenant_id,
            claim_id=s.claim_id,
            workflow_id=self._wid(),
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
            refund_owed=s.refund_owed,
            refund_sent=s.refund_sent,
            facts=s.facts,
            final=self._ended(),
        )
