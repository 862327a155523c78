"""A small driver for lifecycle workflow tests on the time-skipping server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PatchActivationInput, Worker

from services.dispute.activities import DisputeActivities, refusal_reason
from services.dispute.planning import first_pass_request, request_digest
from services.dispute.schemas import (
    AlertRequest,
    ClaimEventSignal,
    ClaimLifecycleInput,
    ClaimStatus,
    EmitRequest,
    FirstPlan,
    Plan,
    PlanRequest,
    RecordRequest,
)
from services.dispute.workflows import ClaimLifecycleWorkflow, IdrBatchWorkflow
from services.negotiation.workflows import OpenNegotiationWorkflow
from shared.events import ClaimAdjudicated, ClaimLine
from shared.rules.calendar import Closure, Extension, Overrides, federal_calendar
from shared.settings import Settings

CAL = federal_calendar()
NY = ZoneInfo("America/New_York")
QUEUE = "dispute-test"


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[AlertRequest] = []
        self.events: list[EmitRequest] = []
        self.plans: list[PlanRequest] = []
        self.records: list[RecordRequest] = []
        self.refuse_reference: str | None = None  # an extension the planner refuses (a test's switch)
        self.gate: asyncio.Event | None = None  # while set and not open, plans wait (a test's switch)
        self.closures: list[Closure] = []  # the tenant's closures, as the database would give them
        self.extensions: list[Extension] = []  # the tenant's blanket extensions
        self.real = DisputeActivities(engine=None, settings=Settings(), calendar=CAL)  # type: ignore[arg-type]

    def activities(self) -> list[object]:
        @activity.defn(name="plan_deadlines")
        async def plan_deadlines(req: PlanRequest) -> Plan:
            self.plans.append(req)
            if self.gate is not None:
                await self.gate.wait()
            if self.refuse_reference and any(e.reference == self.refuse_reference for e in req.extensions):
                raise ApplicationError("new_date: refused by the test planner", non_retryable=True)
            # the real planner, with the tenant's closures from this recorder (no database here)
            try:
                tenant = Overrides(closures=tuple(self.closures), extensions=tuple(self.extensions))
                return self.real.compute_plan(req, tenant)
            except Exception as exc:
                raise ApplicationError(refusal_reason(exc), non_retryable=True) from exc

        @activity.defn(name="emit_alert")
        async def emit_alert(req: AlertRequest) -> int:
            self.alerts.append(req)
            return CAL.business_days_between(req.as_of.astimezone(NY).date(), req.deadline.due_on)

        @activity.defn(name="record_claim")
        async def record_claim(req: RecordRequest) -> int:
            self.records.append(req)
            self.events.extend(e for e in req.events if e.event_id not in {x.event_id for x in self.events})
            return req.record_seq

        return [plan_deadlines, emit_alert, record_claim]

    def missed(self) -> list[str]:
        return [a.deadline.name for a in self.alerts if a.missed]

    def overdue(self) -> list[AlertRequest]:
        return [a for a in self.alerts if a.overdue is not None]

    def stages(self) -> list[str]:
        return [str(e.payload["stage"]) for e in self.events if e.event_type == "ClaimStageChanged"]


def facts(claim_id: str, received: date, paid: list[str], sequence: int = 1) -> ClaimAdjudicated:
    return ClaimAdjudicated(
        claim_id=claim_id,
        event_sequence=sequence,
        source_system="ehr-test",
        payer_name="Acme Health Plan",
        plan_type="self_insured_erisa",
        provider_npi="1234567893",
        provider_tin="123456789",
        provider_name="Metro Emergency Physicians",
        service_category="emergency",
        state="TX",
        initial_payment_received_on=received,
        lines=[
            ClaimLine(
                line_number=i + 1,
                service_code="99285",
                code_system="CPT",
                service_date=received - timedelta(days=30),
                billed=Decimal("2400.00"),
                paid=Decimal(p),
            )
            for i, p in enumerate(paid)
        ],
    )


def first_plan(tenant_id: str, claim_id: str, claim: ClaimAdjudicated) -> FirstPlan:
    """The first plan the dispute consumer makes for a new claim (no tenant overrides here)."""
    request = first_pass_request(tenant_id, claim_id, claim)
    planner = DisputeActivities(engine=None, settings=Settings(), calendar=CAL)  # type: ignore[arg-type]
    return FirstPlan(request_digest=request_digest(request), plan=planner.compute_plan(request, Overrides()))


def no_new_patches(_: PatchActivationInput) -> bool:
    """A worker's patch switch: new workflows take the code paths of before every ``workflow.patched``
    (the release the committed replay histories were recorded with)."""
    return False


@asynccontextmanager
async def workers(env: WorkflowEnvironment, rec: Recorder, *, patches: bool = True) -> AsyncIterator[None]:
    """Workers for the claim (and batch) and negotiation task queues; ``patches=False``: new workflows
    run the code paths of the previous release (``no_new_patches``). The strict default sandbox, not
    the services' ``workflow_runner``: it re-imports the workflow modules per workflow with the
    standard library's non-deterministic calls restricted, so a ``datetime.now()`` slipped into
    workflow code fails these tests."""
    fan_out = DisputeActivities(engine=None, settings=Settings(), calendar=CAL, client=env.client)  # type: ignore[arg-type]
    async with (
        Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[ClaimLifecycleWorkflow, IdrBatchWorkflow],
            activities=[*rec.activities(), fan_out.fan_out_update],
            patch_activation_callback=None if patches else no_new_patches,
        ),
        Worker(env.client, task_queue="negotiation", workflows=[OpenNegotiationWorkflow]),
    ):
        yield


class Claim:
    """One claim's lifecycle workflow, driven through time and actions."""

    def __init__(self, env: WorkflowEnvironment, claim_id: str | None = None) -> None:
        self.env = env
        self.claim_id = claim_id or f"C-{uuid.uuid4().hex[:6]}"
        self.handle: WorkflowHandle[ClaimLifecycleWorkflow, str] | None = None

    async def today(self) -> date:
        return (await self.env.get_current_time()).astimezone(NY).date()

    # start with the first plan made, as the dispute consumer does (tests/replay/record.py --first-plan)
    plan_first = False

    async def start(self, received: date | None = None, paid: list[str] | None = None, **inputs: Any) -> date:
        """Start the workflow with the claim event; ``inputs`` are further ClaimLifecycleInput fields
        (e.g. ``history_event_limit``)."""
        received = received or CAL.business_day_beginning(await self.today(), 1)
        await self.begin(facts(self.claim_id, received, paid or ["350.00"]), **inputs)
        await self.wait_stage("open_negotiation_window")
        return received

    async def begin(self, claim: ClaimAdjudicated, **inputs: Any) -> None:
        """Signal-with-start the workflow with ``claim`` as the dispute consumer does (with its first
        plan when ``plan_first``), without waiting for any stage."""
        if self.plan_first and "first_plan" not in inputs:
            inputs["first_plan"] = first_plan("t1", self.claim_id, claim)
        self.handle = await self.env.client.start_workflow(
            ClaimLifecycleWorkflow.run,
            ClaimLifecycleInput(
                tenant_id="t1", claim_id=self.claim_id, **{"payment_escalation_days": 7, **inputs}
            ),
            id=f"claim:t1:{self.claim_id}",
            task_queue=QUEUE,
            start_signal="claim_event",
            start_signal_args=[
                ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=claim)
            ],
        )

    async def status(self) -> ClaimStatus:
        assert self.handle is not None
        return await self.handle.query(ClaimLifecycleWorkflow.status)

    async def wait_stage(self, stage: str, timeout: float = 15) -> ClaimStatus:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.status()
            if status.stage == stage:
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"stage is {status.stage}, expected {stage}")
            await asyncio.sleep(0.05)

    async def act(self, update: str, **body: Any) -> ClaimStatus:
        from shared import lifecycle

        model = {
            "open_negotiation_notice_sent": lifecycle.NoticeSent,
            "response_notice_received": lifecycle.ResponseNoticeReceived,
            "idr_initiated": lifecycle.IdrInitiated,
            "entity_selected": lifecycle.EntitySelected,
            "eligibility_objection": lifecycle.EligibilityObjection,
            "eligibility_decision": lifecycle.EligibilityDecision,
            "offer_submitted": lifecycle.OfferSubmitted,
            "fees_paid": lifecycle.FeesPaid,
            "determination": lifecycle.Determination,
            "payment_received": lifecycle.PaymentReceived,
            "fee_refund_received": lifecycle.FeeRefundReceived,
            "settlement": lifecycle.Settlement,
            "extension_granted": lifecycle.ExtensionGranted,
            "cooling_off_applies": lifecycle.CoolingOffApplies,
            "withdrawn": lifecycle.Closing,
            "administratively_closed": lifecycle.Closing,
            "closed": lifecycle.Closing,
            "refund_sent": lifecycle.RefundSent,
            "entity_declined": lifecycle.EntityDeclined,
            "preferred_entity_objected": lifecycle.PreferredEntityObjected,
        }[update]
        assert self.handle is not None
        return await self.handle.execute_update(update, model.model_validate(body), result_type=ClaimStatus)

    async def negotiate(self, update: str, **body: Any) -> None:
        from shared import lifecycle

        model = {"offer": lifecycle.OfferMade, "settle": lifecycle.Settlement}[update]
        handle = self.env.client.get_workflow_handle(f"negotiation:t1:{self.claim_id}")
        await handle.execute_update(update, model.model_validate(body))

    async def go_to(self, day: date, at: time = time(10, 0)) -> None:
        """Let time pass until ``at`` New York time on ``day``."""
        target = datetime.combine(day, at, tzinfo=NY)
        now = await self.env.get_current_time()
        if target > now:
            await self.env.sleep(target - now)
        await asyncio.sleep(0.2)  # let the workflow react to its timers

    async def open_negotiation(self) -> date:
        """Send the notice today; return the day open negotiation began."""
        sent = await self.today()
        await self.act("open_negotiation_notice_sent", sent_on=sent.isoformat(), recipient="idr@acme.example")
        await self.wait_stage("open_negotiation")
        child = self.env.client.get_workflow_handle(f"negotiation:t1:{self.claim_id}")
        for _ in range(200):  # the parent starts its child right after planning the new deadlines
            try:
                await child.describe()
                break
            except Exception:
                await asyncio.sleep(0.05)
        return sent

    async def through_negotiation(self) -> date:
        """Open negotiation, let its 30 business days pass; return business day 31."""
        started = await self.open_negotiation()
        day31 = CAL.business_day_beginning(started, 31)
        await self.go_to(day31)
        await self.wait_stage("idr_initiation_window")
        return day31

    async def initiate(self, on: date) -> None:
        await self.act("idr_initiated", initiated_on=on.isoformat(), dispute_number="DISP-123456")
        await self.wait_stage("idr_initiated")

    async def to_offers(self) -> date:
        """From a new claim to an IDR entity jointly selected: return the selection date."""
        day31 = await self.through_negotiation()
        await self.initiate(day31)
        selected = CAL.business_days_after(day31, 1)
        await self.go_to(selected)
        await self.act("entity_selected", selected_on=selected.isoformat(), entity="Maximus", by="joint")
        await self.wait_stage("offers_and_fees")
        return selected

    async def to_determination(self, lines: int = 1) -> date:
        selected = await self.to_offers()
        await self.act(
            "offer_submitted",
            submitted_on=selected.isoformat(),
            amounts=dict.fromkeys(range(1, lines + 1), "900.00"),
        )
        await self.act(
            "fees_paid", paid_on=selected.isoformat(), administrative_fee="15.00", idre_fee="475.00"
        )
        await self.wait_stage("awaiting_determination")
        determined = CAL.business_days_after(selected, 20)
        await self.go_to(determined)
        return determined
