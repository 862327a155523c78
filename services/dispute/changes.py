"""How the claim workflow changes: actions recorded (once per update id), corrections applied,
stages set and announced, and every change since the last plan undone when the rules refuse it.
Deterministic; mixed into ``ClaimLifecycleWorkflow``."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.dispute.checks import ClaimChecks
    from services.dispute.clock import LOCAL_STEPS, step
    from services.dispute.recording import mark_recorded, record_request
    from services.dispute.schemas import (
        ActionRecord,
        ClaimState,
        ClaimStatus,
        EmitRequest,
        Transition,
    )
    from shared.events import (
        ClaimAdjudicated,
        ClaimCorrectionRejected,
        ClaimStageChanged,
        deterministic_event_id,
    )
    from shared.lifecycle import Action, Stage
    from shared.temporal import IDR_NEXT_DEADLINE, IDR_PAYER, IDR_SERVICE_CODE, IDR_STAGE

APPLIED_UPDATES_KEPT = 500
# the facts of a claim event whose change a person wants to see in the record
FACT_FIELDS = (
    "bill_sent_on",
    "initial_payment_received_on",
    "open_negotiation_started_on",
    "payer_name",
    "plan_type",
    "provider_npi",
    "provider_tin",
    "state",
    "service_category",
    "lines",
)


class ClaimChanges(ClaimChecks):
    """``self.s`` is the state; ``self.version`` counts changes, ``self.planned_version`` the
    changes whose deadlines are planned."""

    s: ClaimState
    version: int
    planned_version: int
    _checkpoint: ClaimState | None
    _trying: ClaimAdjudicated | None
    _rejections: list[tuple[int, int, str]]

    def _bump(self) -> None:
        self.version += 1

    def _hold(self) -> None:
        """Keep the state as it was before the first change that is not planned yet."""
        if self._checkpoint is None:
            self._checkpoint = self.s.model_copy(deep=True)

    def _begin(self, name: str, a: Action) -> bool:
        """Record the action about to be applied; False when its update id was applied before
        (a client's retry), which then changes nothing."""
        info = workflow.current_update_info()
        update_id = info.id if info else None
        if update_id and update_id in self.s.applied_updates:
            return False
        self._hold()
        self._note(name, a, "applied", None, update_id)
        if update_id:
            self.s.applied_updates.append(update_id)
            del self.s.applied_updates[:-APPLIED_UPDATES_KEPT]
        return True

    def _note(
        self, name: str, a: Action, outcome: str, reason: str | None, update_id: str | None = None
    ) -> None:
        details: dict[str, Any] = a.model_dump(mode="json", exclude={"actor"})
        if reason:
            details["reason"] = reason
        self.s.actions.append(
            ActionRecord(
                action=name,
                at=workflow.now(),
                actor=a.actor,
                details=details,
                outcome=outcome,
                idempotency_key=update_id,
            )
        )

    def _rejected(self, version: int) -> str | None:
        return next((why for after, upto, why in self._rejections if after < version <= upto), None)

    async def _replanned(self) -> ClaimStatus:
        """Answer an action once the deadlines it starts are computed (or the claim has ended); an
        action the rules cannot plan fails the update (not the workflow) with the rules' reason."""
        version = self.version
        await workflow.wait_condition(
            lambda: self._rejected(version) is not None or self.planned_version >= version or self._ended()
        )
        reason = self._rejected(version)
        if reason is not None:
            raise ApplicationError(reason, type="ActionRejected", non_retryable=True)
        return self._status()

    def _refuse(self, reason: str, version: int) -> None:
        """Undo every change since the last plan and record why; the claim goes on as before.
        ``version`` is the change the refused plan covered; changes that arrived while it ran were
        built on the refused state, so they are undone too and their requests fail (to be sent
        again); a correction still waiting is kept."""
        bad = self.s
        good = self._checkpoint or bad
        self._checkpoint = None
        self._rejections.append((self.planned_version, version, reason))
        if self.version > version:
            later = f"not applied: a change made at the same moment was refused ({reason}); send it again"
            self._rejections.append((version, self.version, later))
        if good is not bad:
            good.seen_events = bad.seen_events
            good.rejected_sequence = bad.rejected_sequence
            good.incoming_facts = bad.incoming_facts
            for a in bad.actions[len(good.actions) :]:
                a.outcome = "rejected"
                a.details["reason"] = reason
                good.actions.append(a)
            self.s = good
        elif not self._trying and bad.deadlines:
            # nothing to undo (a calendar change the rules cannot plan): keep the deadlines, say why
            last = bad.actions[-1] if bad.actions else None
            if last is None or last.action != "plan_refused" or last.details.get("reason") != reason:
                bad.actions.append(
                    ActionRecord(
                        action="plan_refused",
                        at=workflow.now(),
                        actor="system",
                        details={"reason": reason},
                        outcome="rejected",
                    )
                )
        s = self.s
        rejected = self._trying or (bad.facts if not s.deadlines else None)
        self._trying = None
        if rejected is None:
            return
        s.rejected_sequence = max(s.rejected_sequence, rejected.event_sequence)
        fields = self._changed_fields(s.facts, rejected) if s.deadlines else ["claim"]
        s.actions.append(
            ActionRecord(
                action="correction_rejected",
                at=workflow.now(),
                actor=f"claim event {rejected.event_sequence} ({rejected.source_system})",
                details={"event_sequence": rejected.event_sequence, "fields": fields, "reason": reason},
                outcome="rejected",
            )
        )
        payload = ClaimCorrectionRejected(
            event_sequence=rejected.event_sequence,
            fields=fields,
            reason=reason,
            payer_name=rejected.payer_name,
            stage=s.stage,
        )
        self._queue(payload, deterministic_event_id(self._wid(), "rejected", str(rejected.event_sequence)))

    @staticmethod
    def _changed_fields(old: Any, new: Any) -> list[str]:
        if old is None:
            return ["claim"]
        return [f for f in FACT_FIELDS if getattr(old, f) != getattr(new, f)]

    def _apply_correction(self) -> None:
        """A corrected claim event (higher event sequence): new facts; the dates it carries move the
        clock while the claim has not gone past them. Planned next, undone if the rules refuse it."""
        s = self.s
        new = s.incoming_facts
        assert new is not None and s.facts is not None
        s.incoming_facts = None
        self._hold()
        self._trying = new
        old = s.facts
        fields = self._changed_fields(old, new)
        changes: dict[str, Any] = {
            f: [_plain(getattr(old, f)), _plain(getattr(new, f))] for f in fields if f != "lines"
        }
        if "lines" in fields:
            changes["lines"] = "changed"
        s.facts = new
        received = new.initial_payment_received_on
        early = (Stage.OPEN_NEGOTIATION_WINDOW, Stage.AWAITING_INITIAL_PAYMENT)
        if received and (s.stage in early or self._revivable_by("open_negotiation_initiation_deadline")):
            s.dates["initial_payment_received_on"] = received
        reason = f"claim corrected (event {new.event_sequence}): {', '.join(fields) or 'no fact changed'}"
        if s.stage == Stage.AWAITING_INITIAL_PAYMENT and received:
            self._set_stage(
                Stage.OPEN_NEGOTIATION_WINDOW, f"{reason}; initial payment or denial received {received}"
            )
        elif self._revivable_by("open_negotiation_initiation_deadline") and received:
            self._revive(f"{reason}; the initial payment date moved to {received}", None)
        else:
            self._set_stage(s.stage, reason, changes=changes)
        workflow.upsert_search_attributes(
            [
                IDR_PAYER.value_set(new.payer_name),
                IDR_SERVICE_CODE.value_set(sorted({line.service_code for line in new.lines})),
            ]
        )

    def _revive_if_moved(self) -> None:
        """A forfeited claim whose missed deadline a calendar change or blanket extension moved
        later (``/v1/rules/overrides``) is back in its window."""
        s, f = self.s, self.s.forfeit
        if s.stage != Stage.FORFEITED or f is None or s.final:
            return
        d = s.deadlines.get(f.deadline)
        if d is not None and d.due_on > f.due_on:
            self._revive(f"{f.deadline} moved from {f.due_on.isoformat()} to {d.due_on.isoformat()}", None)

    def _revive(self, reason: str, by: Action | None) -> None:
        f = self.s.forfeit
        assert f is not None
        self.s.forfeit = None
        self._set_stage(f.stage_before, f"revived: {reason}", by)

    def _offers_complete(self, a: Action) -> None:
        if self.s.offer_submitted and self.s.fees_paid and self.s.stage == Stage.OFFERS_AND_FEES:
            self._set_stage(Stage.AWAITING_DETERMINATION, "offer submitted and fees paid", a)
        else:
            self._bump()

    def _queue(self, payload: Any, event_id: Any) -> None:
        self.s.pending_events.append(
            EmitRequest(
                event_id=event_id,
                event_type=payload.event_type,
                tenant_id=self.s.tenant_id,
                claim_id=self.s.claim_id,
                occurred_at=workflow.now(),
                payload=payload.model_dump(mode="json"),
            )
        )

    def _set_stage(
        self, stage: str, reason: str, by: Action | None = None, changes: dict[str, Any] | None = None
    ) -> None:
        previous = self.s.stage
        self.s.stage = stage
        self.s.transitions.append(
            Transition(
                stage=stage,
                at=workflow.now(),
                reason=reason,
                by=by.actor if by else "system",
                previous_stage=previous,
                changes=changes,
            )
        )
        active = self._active_deadline()
        payload = ClaimStageChanged(
            stage=stage,
            previous_stage=previous,
            reason=reason,
            next_deadline_name=active.name if active else None,
            next_deadline_on=active.due_on if active else None,
        )
        self._queue(
            payload, deterministic_event_id(self._wid(), "stage", str(len(self.s.transitions)), stage)
        )
        self._bump()

    async def _flush(self) -> None:
        """Write the claim record with the events that announce it (one transaction), then refresh
        what an operator sees in the Temporal UI. Changes not planned yet wait for the next plan."""
        s = self.s
        if self._checkpoint is not None:
            return
        req = record_request(s, workflow.now(), self._active_deadline(), final=s.final)
        await step("record_claim", req, int, local=workflow.patched(LOCAL_STEPS))
        mark_recorded(s, req)
        active = self._active_deadline()
        workflow.upsert_search_attributes(
            [
                IDR_STAGE.value_set(s.stage),
                IDR_NEXT_DEADLINE.value_set(active.due_at) if active else IDR_NEXT_DEADLINE.value_unset(),
            ]
        )
        self._details()


def _plain(value: Any) -> Any:
    """A fact as JSON-friendly data, for the record of what a correction changed."""
    return value.isoformat() if hasattr(value, "isoformat") else value
