"""IdrBatchWorkflow: one batched dispute (``batch:{tenant}:{batch_id}``). Deterministic code only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.dispute.schemas import ActionRecord, BatchStatus
    from shared.lifecycle import (
        Action,
        BatchDetermination,
        BatchInput,
        BatchOfferSubmitted,
        EntitySelected,
        FanOut,
        FeesPaid,
        IdrInitiated,
        MemberInfo,
        MemberJoined,
        MemberResult,
    )


# bounded: a member that cannot be reached is reported to the caller, who sends the action again
FAN_OUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20), maximum_attempts=5
)


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
        self.left: list[MemberResult] = []  # members that left (closed, or acted alone), with why

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
            left=list(self.left),
        )

    def _record(self, name: str, a: Action) -> None:
        details: dict[str, Any] = a.model_dump(mode="json", exclude={"actor"})
        self.actions.append(ActionRecord(action=name, at=workflow.now(), actor=a.actor, details=details))

    async def _fan_out(
        self, update: str, bodies: dict[str, dict[str, object]], next_stage: str
    ) -> BatchStatus:
        assert self.inp is not None
        # a retry after a partial failure goes only to the members that have not taken it yet
        done = [r for r in self.results.get(update, []) if r.ok and r.claim_id in bodies]
        if update == "offer_submitted":  # corrected offers go to every member again
            done = []
        pending = {k: v for k, v in bodies.items() if k not in {r.claim_id for r in done}}
        try:
            results: list[MemberResult] = await workflow.execute_activity(
                "fan_out_update",
                FanOut(tenant_id=self.inp.tenant_id, update=update, bodies=pending),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=FAN_OUT_RETRY,
                result_type=list[MemberResult],
            )
        except ActivityError as exc:  # bounded: the request fails, the batch stays as it was
            raise ApplicationError(
                f"members: the action could not reach the members ({exc.cause or exc}); send it again",
                type="FanOutFailed",
                non_retryable=True,
            ) from exc
        for r in results:
            if r.left and r.claim_id in self.members:
                # a member whose lifecycle ended or that acted alone leaves; the batch goes on
                self.members.remove(r.claim_id)
                self.left.append(r)
        self.results[update] = done + results
        if not self.members:
            self.stage = "dissolved"
        elif all(r.ok for r in self.results[update] if r.claim_id in self.members):
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
        try:  # a batch never waits forever: it expires when nothing happened for a long time
            await workflow.wait_condition(
                lambda: self.stage in ("determined", "dissolved"),
                timeout=timedelta(days=inp.expires_after_days),
            )
        except TimeoutError:
            self.stage = "expired"
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.stage
