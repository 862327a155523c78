"""The dispute consumer: each ``ClaimAdjudicated`` on ``idr.claims.v1`` signal-with-starts the claim's
lifecycle workflow. The workflow de-duplicates by event id, so a redelivery changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services.dispute.planning import first_pass_request, request_digest
from services.dispute.record_writes import claim_recorded, record_late_event, record_refused_payment
from services.dispute.schemas import (
    ClaimEventSignal,
    ClaimLifecycleInput,
    ClaimStatus,
    FirstPlan,
    Plan,
    PlanRequest,
)
from services.dispute.workflows import ClaimLifecycleWorkflow
from shared.events import ClaimAdjudicated, Envelope, RemittancePayment
from shared.http import Problem
from shared.kafka.consumer import TransientError
from shared.lifecycle import PaymentReceived
from shared.settings import Settings
from shared.temporal import IDR_CLAIM_ID, IDR_PAYER, IDR_STAGE, IDR_TENANT, claim_workflow_id, execute_update

log = logging.getLogger(__name__)

CONSUMER = "dispute-claims"

Planner = Callable[[PlanRequest, AsyncSession | None], Awaitable[Plan]]


class ClaimEventHandler:
    """``planner``: the dispute activities' ``plan``; with it, a claim new to the record starts with
    its first plan made (one step fewer in its first workflow task)."""

    def __init__(self, client: Client, settings: Settings, planner: Planner | None = None) -> None:
        self.client = client
        self.settings = settings
        self.planner = planner

    async def first_plan(
        self, session: AsyncSession | None, tenant_id: str, claim_id: str, facts: ClaimAdjudicated
    ) -> FirstPlan | None:
        """The first pass's plan (the overrides read in ``session``, else on a connection of the
        planner's), or None: no planner, or the plan could not be made here (the workflow then plans,
        and refuses, on its own)."""
        if self.planner is None:
            return None
        request = first_pass_request(tenant_id, claim_id, facts)
        try:
            plan = await self.planner(request, session)
        except ApplicationError:  # the rules refuse these dates: the workflow records why
            return None
        except Exception as exc:  # an optimisation only: never the reason a claim does not start
            log.warning("claim %s: no first plan (%s); the workflow plans it", claim_id, type(exc).__name__)
            return None
        return FirstPlan(request_digest=request_digest(request), plan=plan)

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
            return True
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type == RemittancePayment.event_type:
            await self.payment(session, env)
            return
        if env.event_type != ClaimAdjudicated.event_type:
            log.info("ignoring %s %s", env.event_type, env.event_id)
            return
        facts = ClaimAdjudicated.model_validate(env.payload)
        workflow_id = claim_workflow_id(env.tenant_id, env.claim_id)
        recorded = await claim_recorded(session, env.tenant_id, env.claim_id)
        if recorded == "final" or (recorded == "open" and not await self._exists(workflow_id)):
            # the record outlives the workflow: a late event never starts a second lifecycle (one
            # whose workflow was terminated and purged needs an operator, not a fresh start)
            why = "the claim has ended" if recorded == "final" else "the claim's workflow is gone"
            await record_late_event(session, env, facts.event_sequence, why)
            log.warning("claim %s: %s; event %s recorded, not applied", workflow_id, why, env.event_id)
            return
        # planned here for a claim new to the record (a running workflow ignores a start's input)
        first = None if recorded else await self.first_plan(session, env.tenant_id, env.claim_id, facts)
        try:
            await self.client.start_workflow(
                ClaimLifecycleWorkflow.run,
                ClaimLifecycleInput(
                    tenant_id=env.tenant_id,
                    claim_id=env.claim_id,
                    negotiation_task_queue=self.settings.negotiation_task_queue,
                    forfeiture_grace_days=self.settings.forfeiture_grace_days,
                    first_plan=first,
                ),
                id=workflow_id,
                task_queue=self.settings.dispute_task_queue,
                start_signal="claim_event",
                start_signal_args=[
                    ClaimEventSignal(event_id=env.event_id, occurred_at=env.occurred_at, facts=facts)
                ],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(IDR_TENANT, env.tenant_id),
                        SearchAttributePair(IDR_CLAIM_ID, env.claim_id),
                        SearchAttributePair(IDR_PAYER, facts.payer_name),
                        SearchAttributePair(IDR_STAGE, "received"),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            # the claim's workflow has closed (e.g. forfeited): a late event cannot reopen it
            # closed without closing the claim on its record (terminated, say): the same as gone
            why = "the claim's workflow is gone" if recorded == "open" else "the claim has ended"
            await record_late_event(session, env, facts.event_sequence, why)
            log.warning(
                "claim workflow %s is closed; event %s recorded but not applied", workflow_id, env.event_id
            )
        log.info("claim event %s delivered to %s", env.event_id, workflow_id)

    async def payment(self, session: AsyncSession, env: Envelope) -> None:
        """A matched 835 payment: the claim's ``payment-received`` action, applied once (the event
        id is the update id). A claim that cannot take it now (not awaiting a payment, ended) keeps
        the refusal on its record, for a person: never a dead letter, never silence."""
        paid = RemittancePayment.model_validate(env.payload)
        try:
            action = PaymentReceived(
                actor=f"{paid.source} remittance {paid.remittance_id}",
                received_on=paid.paid_on,
                amount=paid.amount,
                source="835",
                reference=paid.reference,
            )
        except ValidationError as exc:  # an amount or date the claim cannot take: for a person
            details = {"remittance_id": paid.remittance_id, "amount": str(paid.amount)}
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            await record_refused_payment(session, env, details, reason)
            return
        workflow_id = claim_workflow_id(env.tenant_id, env.claim_id)
        try:
            await execute_update(
                self.client,
                workflow_id,
                "payment_received",
                action,
                ClaimStatus,
                update_id=f"remit:{env.event_id}",
            )
        except Problem as exc:
            if exc.status >= 500:
                raise TransientError(exc.detail) from exc
            await record_refused_payment(session, env, action.model_dump(mode="json"), exc.detail)
            log.warning(
                "claim %s: payment from remittance %s not applied: %s",
                workflow_id,
                paid.remittance_id,
                exc.detail,
            )
            return
        log.info("payment from remittance %s applied to %s", paid.remittance_id, workflow_id)
