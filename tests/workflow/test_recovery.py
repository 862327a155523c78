"""Ordinary events a claim must survive: corrections the rules refuse, dates the calendar cannot
hold, retried updates, late records and extensions after a forfeiture. No input fails a workflow."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from services.dispute.schemas import ClaimEventSignal, ClaimStatus
from shared.events import ClaimAdjudicated
from shared.lifecycle import ExtensionGranted, PaymentReceived
from shared.rules.calendar import Closure
from tests.workflow.lifecycle_kit import CAL, Claim, Recorder, facts, workers


async def correct(
    claim: Claim, sequence: int, base: ClaimAdjudicated | None = None, **changes: object
) -> None:
    """Send a corrected claim event: ``base`` (default: the facts in force) with ``changes``."""
    assert claim.handle is not None
    if base is None:
        base = (await claim.status()).facts
    assert base is not None
    corrected = base.model_copy(update={"event_sequence": sequence, **changes})
    await claim.handle.signal(
        "claim_event", ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=corrected)
    )


async def running(claim: Claim) -> bool:
    """The workflow is still running (read raw: no search attribute decoding)."""
    assert claim.handle is not None
    raw = await claim.env.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=claim.env.client.namespace, execution=WorkflowExecution(workflow_id=claim.handle.id)
        )
    )
    return raw.workflow_execution_info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


async def rejected(claim: Claim, action: str) -> list[dict[str, object]]:
    for _ in range(100):
        found = [
            a.details
            for a in (await claim.status()).actions
            if a.action == action and a.outcome == "rejected"
        ]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_a_correction_the_rules_refuse_is_recorded_and_the_claim_goes_on(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    received = await claim.start()
    await claim.open_negotiation()
    # a corrected bill date after the initial payment: the rules cannot plan it
    await correct(claim, 2, bill_sent_on=received + timedelta(days=20))
    found = await rejected(claim, "correction_rejected")
    assert (
        found and found[0]["fields"] == ["bill_sent_on"] and "before bill_sent_on" in str(found[0]["reason"])
    )
    status = await claim.status()
    assert status.stage == "open_negotiation" and status.event_sequence == 1
    assert await running(claim)
    alert = [e for e in rec.events if e.event_type == "ClaimCorrectionRejected"]
    assert len(alert) == 1 and alert[0].payload["event_sequence"] == 2
    # a later correction the rules accept still applies, recorded with what changed
    await correct(claim, 3, payer_name="Acme Health Plan of Texas")
    await claim.wait_stage("open_negotiation")
    for _ in range(100):
        status = await claim.status()
        if status.event_sequence == 3:
            break
        await asyncio.sleep(0.05)
    assert status.event_sequence == 3 and status.payer_name == "Acme Health Plan of Texas"
    last = status.transitions[-1]
    assert last.changes == {"payer_name": ["Acme Health Plan", "Acme Health Plan of Texas"]}


async def test_a_receipt_date_beyond_the_calendar_is_refused_not_fatal(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    received = await claim.start()
    due = (await claim.status()).deadlines["open_negotiation_initiation_deadline"].due_on
    await correct(claim, 2, initial_payment_received_on=date(2062, 11, 2))
    found = await rejected(claim, "correction_rejected")
    assert found and "outside the calendar" in str(found[0]["reason"])
    status = await claim.status()
    assert (
        status.stage == "open_negotiation_window" and status.dates["initial_payment_received_on"] == received
    )
    assert status.deadlines["open_negotiation_initiation_deadline"].due_on == due
    assert await running(claim)


async def test_a_first_event_the_rules_cannot_plan_waits_for_its_correction(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    bad = facts("C-FAR", date(2026, 1, 5), ["350.00"]).model_copy(
        update={"initial_payment_received_on": date(2062, 11, 2)}
    )
    from services.dispute.schemas import ClaimLifecycleInput
    from services.dispute.workflows import ClaimLifecycleWorkflow
    from tests.workflow.lifecycle_kit import QUEUE

    claim = Claim(env, "C-FAR")
    claim.handle = await env.client.start_workflow(
        ClaimLifecycleWorkflow.run,
        ClaimLifecycleInput(tenant_id="t1", claim_id="C-FAR"),
        id="claim:t1:C-FAR",
        task_queue=QUEUE,
        start_signal="claim_event",
        start_signal_args=[ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=bad)],
    )
    found = await rejected(claim, "correction_rejected")
    assert found and found[0]["fields"] == ["claim"]
    assert (await claim.status()).stage == "received" and await running(claim)
    await correct(claim, 2, initial_payment_received_on=await claim.today())
    await claim.wait_stage("open_negotiation_window")


async def test_an_update_the_rules_refuse_fails_alone_and_is_recorded(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await claim.start()
    before = await claim.status()
    rec.refuse_reference = "REFUSE-ME"  # the planner refuses this extension, as for a date it cannot hold
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await claim.act(
            "extension_granted",
            deadline="open_negotiation_initiation_deadline",
            new_date=CAL.business_days_after(
                before.deadlines["open_negotiation_initiation_deadline"].due_on, 3
            ).isoformat(),
            reference="REFUSE-ME",
        )
    assert "refused by the test planner" in str(err.value.cause)
    after = await claim.status()
    assert after.deadlines == before.deadlines and await running(claim)
    assert [a.action for a in after.actions if a.outcome == "rejected"] == ["extension_granted"]
    # the claim still takes the next action
    await claim.open_negotiation()


def test_dates_no_calendar_can_hold_are_refused_by_the_action_model() -> None:
    with pytest.raises(ValidationError, match="outside the business-day calendar"):
        ExtensionGranted(deadline="idr_initiation_deadline", new_date=date(9999, 12, 31), reference="x")
    with pytest.raises(ValidationError, match="outside the business-day calendar"):
        PaymentReceived(received_on=date(1, 1, 1), amount="10.00")  # type: ignore[arg-type]


async def test_a_retried_update_is_applied_once(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    determined = await claim.to_determination()
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}],
    )
    assert claim.handle is not None
    body = PaymentReceived(received_on=determined, amount="600.00")  # type: ignore[arg-type]
    first = await claim.handle.execute_update(
        "payment_received", body, id="idem:pay-1", result_type=ClaimStatus
    )
    again = await claim.handle.execute_update(
        "payment_received", body, id="idem:pay-1", result_type=ClaimStatus
    )
    assert first.amount_received == again.amount_received == 600
    # the same payment reference is a natural key: recorded once even under another update id
    ref = PaymentReceived(received_on=determined, amount="100.00", reference="EFT-1")  # type: ignore[arg-type]
    await claim.handle.execute_update("payment_received", ref, result_type=ClaimStatus)
    dup = await claim.handle.execute_update("payment_received", ref, result_type=ClaimStatus)
    assert dup.amount_received == 700 and dup.stage == "payment_due"
    assert [a.outcome for a in dup.actions if a.action == "payment_received"] == [
        "applied",
        "applied",
        "duplicate",
    ]
    assert next(a.idempotency_key for a in dup.actions if a.action == "payment_received") == "idem:pay-1"


async def forfeit(claim: Claim) -> date:
    await claim.start()
    due = (await claim.status()).deadlines["open_negotiation_initiation_deadline"].due_on
    await claim.go_to(due + timedelta(days=1), time(0, 5))
    await claim.wait_stage("forfeited")
    return due


async def test_a_notice_recorded_the_morning_after_its_deadline_revives_the_claim(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    due = await forfeit(claim)
    assert rec.missed() == ["open_negotiation_initiation_deadline"]
    status = await claim.act(
        "open_negotiation_notice_sent", sent_on=due.isoformat(), recipient="idr@acme.example"
    )
    assert status.stage == "open_negotiation"
    assert [t.stage for t in status.transitions][-3:] == [
        "forfeited",
        "open_negotiation_window",
        "open_negotiation",
    ]
    assert "revived" in status.transitions[-2].reason and not status.final
    # a date after the deadline does not revive anything
    other = Claim(env)
    late_due = await forfeit(other)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await other.act(
            "open_negotiation_notice_sent",
            sent_on=(late_due + timedelta(days=1)).isoformat(),
            recipient="idr@acme.example",
        )
    assert "after the deadline" in str(err.value.cause)


async def test_an_extension_granted_two_weeks_after_a_forfeiture_revives_the_claim(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 2: the Departments grant extensions after deadlines passed (Oct 2023, Nov 2024); a
    forfeited claim takes one (b4e4bbf refused it: "stage: the claim is forfeited")."""
    claim = Claim(env)
    due = await forfeit(claim)
    await claim.go_to(due + timedelta(days=14))
    new_date = CAL.business_days_after(await claim.today(), 5)
    status = await claim.act(
        "extension_granted",
        deadline="open_negotiation_initiation_deadline",
        new_date=new_date.isoformat(),
        reference="Departments' extension after the hurricane",
    )
    assert status.stage == "open_negotiation_window"
    assert status.deadlines["open_negotiation_initiation_deadline"].due_on == new_date
    await claim.open_negotiation()
    # another deadline's extension does not revive it
    other = Claim(env)
    await forfeit(other)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await other.act(
            "extension_granted",
            deadline="idr_initiation_deadline",
            new_date=new_date.isoformat(),
            reference="x",
        )
    assert "only an extension of that deadline" in str(err.value.cause)


async def test_a_forfeiture_becomes_final_after_the_grace_period(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await forfeit(claim)
    assert claim.handle is not None
    assert await claim.handle.result() == "forfeited"
    status = await claim.status()
    assert status.final and "final" in status.transitions[-1].reason
    assert rec.records[-1].final


async def test_an_action_that_arrives_while_a_refused_change_is_planned_fails_and_can_be_sent_again(
    env: WorkflowEnvironment,
) -> None:
    """The previous release's path (planning as an activity, in a workflow task of its own): an
    action can arrive while a plan runs, and is built on the state that plan may refuse."""
    rec = Recorder()
    async with workers(env, rec, patches=False):
        await _action_during_a_refused_plan(env, rec, local=False)


async def test_an_action_sent_while_a_refused_change_is_planned_locally_waits_and_applies(
    env: WorkflowEnvironment,
) -> None:
    """Planning as a local activity (patched): the workflow task that plans holds the action back until
    the plan is done; the refused change is undone first, then the action applies to the claim."""
    rec = Recorder()
    async with workers(env, rec):
        await _action_during_a_refused_plan(env, rec, local=True)


async def _action_during_a_refused_plan(env: WorkflowEnvironment, rec: Recorder, *, local: bool) -> None:
    claim = Claim(env)
    await claim.start()
    due = (await claim.status()).deadlines["open_negotiation_initiation_deadline"].due_on
    rec.refuse_reference, rec.gate = "REFUSE-ME", asyncio.Event()
    refused = asyncio.create_task(
        claim.act(
            "extension_granted",
            deadline="open_negotiation_initiation_deadline",
            new_date=CAL.business_days_after(due, 3).isoformat(),
            reference="REFUSE-ME",
        )
    )
    await asyncio.sleep(0.5)  # its plan waits at the gate
    today = (await claim.today()).isoformat()
    notice = asyncio.create_task(
        claim.act("open_negotiation_notice_sent", sent_on=today, recipient="idr@acme.example")
    )
    await asyncio.sleep(0.5)
    rec.gate.set()
    first, second = await asyncio.gather(refused, notice, return_exceptions=True)
    assert isinstance(first, WorkflowUpdateFailedError) and "refused by the test planner" in str(first.cause)
    if local:
        assert isinstance(second, ClaimStatus) and second.stage == "open_negotiation", second
        status = await claim.status()
        assert [a.outcome for a in status.actions] == ["rejected", "applied"]
        assert await running(claim)
        return
    # the notice was built on the refused state: it fails too (never answered as applied, then lost)
    assert isinstance(second, WorkflowUpdateFailedError) and "send it again" in str(second.cause)
    status = await claim.status()
    assert status.stage == "open_negotiation_window"
    assert [a.outcome for a in status.actions] == ["rejected", "rejected"]
    again = await claim.act("open_negotiation_notice_sent", sent_on=today, recipient="idr@acme.example")
    assert again.stage == "open_negotiation" and await running(claim)


async def test_a_correction_that_arrives_while_a_refused_one_is_planned_is_applied(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    received = await claim.start()
    original = (await claim.status()).facts
    rec.gate = asyncio.Event()
    await correct(claim, 2, bill_sent_on=received + timedelta(days=20))  # refused by the rules
    await asyncio.sleep(0.5)
    # the fix, sent while 2 is being planned
    await correct(claim, 3, base=original, payer_name="Acme Health Plan of Texas")
    await asyncio.sleep(0.3)
    rec.gate.set()
    for _ in range(100):
        status = await claim.status()
        if status.event_sequence == 3:
            break
        await asyncio.sleep(0.05)
    assert status.event_sequence == 3 and status.payer_name == "Acme Health Plan of Texas"
    assert [a.details["event_sequence"] for a in status.actions if a.action == "correction_rejected"] == [2]


async def test_a_closure_during_open_negotiation_moves_the_period_end_of_the_child(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await claim.start()
    await claim.open_negotiation()
    old_end = (await claim.status()).deadlines["open_negotiation_period_end"].due_on
    closed = CAL.business_days_after(old_end, -3)
    rec.closures = [Closure(start=closed, end=closed, name="Portal outage")]
    assert claim.handle is not None
    await claim.handle.signal("calendar_changed")
    for _ in range(100):
        end = (await claim.status()).deadlines["open_negotiation_period_end"]
        if end.due_on != old_end:
            break
        await asyncio.sleep(0.05)
    assert end.due_on == CAL.business_days_after(old_end, 1) and "moved from" in end.explanation
    await claim.go_to(old_end + timedelta(days=1) if old_end.weekday() < 4 else end.due_on, time(10, 0))
    if (await claim.today()) <= end.due_on:
        assert (await claim.status()).stage == "open_negotiation"  # not over on the old date
    await claim.go_to(end.due_on + timedelta(days=1))
    await claim.wait_stage("idr_initiation_window")


async def test_a_revival_that_forfeits_again_does_not_restart_the_grace_period(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    due = await forfeit(claim)
    await claim.go_to(due + timedelta(days=20))
    passed = CAL.business_days_after(due, 5)  # granted, but already past when recorded
    await claim.act(
        "extension_granted",
        deadline="open_negotiation_initiation_deadline",
        new_date=passed.isoformat(),
        reference="late notice of an extension",
    )
    assert claim.handle is not None
    assert await claim.handle.result() == "forfeited"
    status = await claim.status()
    stages = [t.stage for t in status.transitions]
    assert stages.count("forfeited") == 3  # forfeited, forfeited again after the revival, final
    first = next(t.at for t in status.transitions if t.stage == "forfeited")
    assert status.transitions[-1].at - first < timedelta(days=121)
