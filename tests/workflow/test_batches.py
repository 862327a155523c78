"""A batched dispute: members join by update, the IDR phases run once, the determination splits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from services.dispute.schemas import BatchStatus
from services.dispute.workflows import IdrBatchWorkflow
from shared.lifecycle import (
    BatchDetermination,
    BatchInput,
    BatchOfferSubmitted,
    EntitySelected,
    FeesPaid,
    IdrInitiated,
    MemberInfo,
    MemberJoined,
)
from tests.workflow.lifecycle_kit import CAL, QUEUE, Claim, Recorder


async def test_a_batch_runs_idr_once_and_splits_the_determination(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    a, b = Claim(env, "BA-1"), Claim(env, "BA-2")
    received = await a.start(paid=["350.00"])
    await b.start(received=received, paid=["200.00"])
    started = await a.open_negotiation()
    await b.open_negotiation()
    day31 = CAL.business_day_beginning(started, 31)
    await a.go_to(day31)
    await a.wait_stage("idr_initiation_window")
    await b.wait_stage("idr_initiation_window")

    batch = await env.client.start_workflow(
        IdrBatchWorkflow.run,
        BatchInput(tenant_id="t1", batch_id="B-1", members=[MemberInfo(claim_id="BA-1")]),
        id="batch:t1:B-1",
        task_queue=QUEUE,
    )

    async def act(update: str, body: object) -> BatchStatus:
        return await batch.execute_update(update, body, result_type=BatchStatus)

    with pytest.raises(WorkflowUpdateFailedError) as err:
        await act("idr_initiated", IdrInitiated(initiated_on=day31, dispute_number="DISP-B1"))
    assert "at least two claims" in str(err.value.cause)
    await act("add_member", MemberJoined(member=MemberInfo(claim_id="BA-2")))
    status = await act("idr_initiated", IdrInitiated(initiated_on=day31, dispute_number="DISP-B1"))
    assert (
        status.stage == "initiated"
        and [r.stage for r in status.results["idr_initiated"]] == ["idr_initiated"] * 2
    )
    with pytest.raises(WorkflowUpdateFailedError):
        await act("add_member", MemberJoined(member=MemberInfo(claim_id="BA-3")))  # too late to join

    selected = CAL.business_days_after(day31, 1)
    await a.go_to(selected)
    await act("entity_selected", EntitySelected(selected_on=selected, entity="Maximus", by="joint"))
    await act(
        "offer_submitted",
        BatchOfferSubmitted(
            submitted_on=selected, amounts={"BA-1": {1: Decimal("1500")}, "BA-2": {1: Decimal("900")}}
        ),
    )
    status = await act(
        "fees_paid", FeesPaid(paid_on=selected, administrative_fee=Decimal("15"), idre_fee=Decimal("580"))
    )
    assert [r.stage for r in status.results["fees_paid"]] == ["awaiting_determination"] * 2

    determined = CAL.business_days_after(selected, 20)
    await a.go_to(determined)
    status = await act(
        "determination",
        BatchDetermination.model_validate(
            {
                "determined_on": determined.isoformat(),
                "lines": [
                    {
                        "claim_id": "BA-1",
                        "line_number": 1,
                        "prevailing_party": "provider",
                        "amount": "1500.00",
                    },
                    {"claim_id": "BA-2", "line_number": 1, "prevailing_party": "payer", "amount": "200.00"},
                ],
            }
        ),
    )
    assert status.stage == "determined"
    assert {r.claim_id: r.stage for r in status.results["determination"]} == {
        "BA-1": "payment_due",
        "BA-2": "closed",
    }
    assert (await a.status()).amount_owed == Decimal("1150.00")
    assert await batch.result() == "determined"


async def test_a_partial_fan_out_is_retried_only_for_the_members_that_refused(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 15: one member is not in its window yet; the retry goes to it alone (b4e4bbf
    re-sent to every member, the initiated one refused, and the batch never advanced)."""
    a, b = Claim(env, "BC-1"), Claim(env, "BC-2")
    received = await a.start()
    await b.start(received=received)
    started = await a.open_negotiation()
    await a.go_to(CAL.business_days_after(started, 1))
    b_started = await b.open_negotiation()
    day31 = CAL.business_day_beginning(started, 31)
    await a.go_to(day31)
    await a.wait_stage("idr_initiation_window")
    batch = await env.client.start_workflow(
        IdrBatchWorkflow.run,
        BatchInput(
            tenant_id="t1", batch_id="B-2", members=[MemberInfo(claim_id="BC-1"), MemberInfo(claim_id="BC-2")]
        ),
        id="batch:t1:B-2",
        task_queue=QUEUE,
    )
    first = await batch.execute_update(
        "idr_initiated", IdrInitiated(initiated_on=day31, dispute_number="DISP-B2"), result_type=BatchStatus
    )
    assert first.stage == "forming"
    assert {r.claim_id: r.ok for r in first.results["idr_initiated"]} == {"BC-1": True, "BC-2": False}
    b_day31 = CAL.business_day_beginning(b_started, 31)
    await b.go_to(b_day31)
    await b.wait_stage("idr_initiation_window")
    second = await batch.execute_update(
        "idr_initiated", IdrInitiated(initiated_on=b_day31, dispute_number="DISP-B2"), result_type=BatchStatus
    )
    assert second.stage == "initiated" and all(r.ok for r in second.results["idr_initiated"])
    assert (await a.status()).dates["idr_initiated_on"] == day31  # not initiated twice


async def test_a_member_that_ended_alone_leaves_and_the_batch_goes_on(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """issue 10 item 4: a member withdrawn on its own is reported and dropped; the batch goes on with
    the others instead of retrying its fan-out forever."""
    a, b, c = Claim(env, "BD-1"), Claim(env, "BD-2"), Claim(env, "BD-3")
    received = await a.start()
    await b.start(received=received)
    await c.start(received=received)
    started = await a.open_negotiation()
    await b.open_negotiation()
    await c.open_negotiation()
    day31 = CAL.business_day_beginning(started, 31)
    await a.go_to(day31)
    for claim in (a, b, c):
        await claim.wait_stage("idr_initiation_window")
    members = [MemberInfo(claim_id=x) for x in ("BD-1", "BD-2", "BD-3")]
    batch = await env.client.start_workflow(
        IdrBatchWorkflow.run,
        BatchInput(tenant_id="t1", batch_id="B-3", members=members),
        id="batch:t1:B-3",
        task_queue=QUEUE,
    )
    await b.act("withdrawn", reason="settled privately")
    assert b.handle is not None and await b.handle.result() == "withdrawn"
    status = await batch.execute_update(
        "idr_initiated", IdrInitiated(initiated_on=day31, dispute_number="DISP-B3"), result_type=BatchStatus
    )
    assert status.stage == "initiated" and status.members == ["BD-1", "BD-3"]
    assert [m.claim_id for m in status.left] == ["BD-2"] and "ended" in (status.left[0].reason or "")
