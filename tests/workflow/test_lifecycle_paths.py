"""Every path of the claim lifecycle on the time-skipping server (idr-rules D1-D13)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.lifecycle_kit import CAL, Claim, Recorder


async def rejected(claim: Claim, update: str, **body: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await claim.act(update, **body)
    return str(getattr(err.value.cause, "message", err.value.cause))


async def test_settled_in_open_negotiation(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    await claim.negotiate("offer", party="provider", offered_on=started.isoformat(), amounts={1: "1800.00"})
    await claim.negotiate("offer", party="payer", offered_on=started.isoformat(), amounts={1: "600.00"})
    await claim.negotiate("settle", settled_on=started.isoformat(), amount="1100.00")
    # audit row 5: the plan pays the amount agreed (less what it paid) within 30 days
    status = await claim.wait_stage("payment_due")
    assert [a.action for a in status.actions] == [
        "open_negotiation_notice_sent",
        "offer_provider",
        "offer_payer",
    ]
    assert "settled in open negotiation for $1,100.00" in status.transitions[-2].reason
    assert status.amount_owed == Decimal("750.00")  # 1,100 agreed - 350 paid
    for _ in range(100):  # planned right after the stage change
        if "payment_deadline" in (status := await claim.status()).deadlines:
            break
        await asyncio.sleep(0.05)
    assert status.deadlines["payment_deadline"].due_on == started + timedelta(days=30)
    assert rec.stages() == ["open_negotiation_window", "open_negotiation", "settled", "payment_due"]


async def test_a_settlement_at_what_the_plan_already_paid_ends_the_claim(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    await claim.negotiate("settle", settled_on=started.isoformat(), amount="350.00")
    await claim.wait_stage("settled")
    assert claim.handle is not None and await claim.handle.result() == "settled"


async def test_idr_may_start_on_business_day_31_but_not_30(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    day30 = CAL.business_day_beginning(started, 30)
    await claim.go_to(day30)
    reason = await rejected(claim, "idr_initiated", initiated_on=day30.isoformat(), dispute_number="DISP-1")
    assert "business day 31" in reason and "open negotiation period runs until" in reason
    day31 = CAL.business_day_beginning(started, 31)
    await claim.go_to(day31)
    await claim.wait_stage("idr_initiation_window")
    await claim.initiate(day31)
    status = await claim.status()
    assert status.dispute_number == "DISP-123456"
    assert status.deadlines["idre_joint_selection_deadline"].due_on == CAL.business_days_after(day31, 3)


async def test_idr_may_start_on_business_day_34_but_not_35(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    day34 = CAL.business_days_after(day31, 3)
    day35 = CAL.business_days_after(day31, 4)
    await claim.go_to(
        day34,
    )
    reason = await rejected(claim, "idr_initiated", initiated_on=day35.isoformat(), dispute_number="DISP-1")
    assert "business day 34" in reason
    await claim.initiate(day34)
    assert rec.missed() == []


async def test_no_idr_in_the_window_forfeits_the_claim(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    await claim.go_to(CAL.business_days_after(day31, 4))
    await claim.wait_stage("forfeited")
    assert rec.missed() == ["idr_initiation_deadline"]
    reminders = [a for a in rec.alerts if a.deadline.name == "idr_initiation_deadline" and not a.missed]
    assert reminders, "reminders for the initiation window were sent"


async def test_an_extension_moves_the_initiation_deadline(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    day34 = CAL.business_days_after(day31, 3)
    later = CAL.business_days_after(day34, 5)
    status = await claim.act(
        "extension_granted",
        deadline="idr_initiation_deadline",
        new_date=later.isoformat(),
        reference="CMS extension 2027-01",
    )
    await claim.go_to(CAL.business_days_after(day34, 2))
    status = await claim.wait_stage("idr_initiation_window")
    assert status.deadlines["idr_initiation_deadline"].due_on == later
    assert "moved from" in status.deadlines["idr_initiation_deadline"].explanation
    await claim.initiate(CAL.business_days_after(day34, 2))
    assert rec.missed() == []
    reason = await rejected(
        claim, "extension_granted", deadline="payment_deadline", new_date=later.isoformat(), reference="x"
    )
    assert "cannot be extended" in reason


async def test_departments_select_when_no_joint_selection(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    await claim.initiate(day31)
    await claim.go_to(CAL.business_days_after(day31, 4))
    status = await claim.wait_stage("idre_selection")
    assert "the Departments select" in status.transitions[-1].reason
    selected = CAL.business_days_after(day31, 6)
    await claim.go_to(selected)
    await claim.act("entity_selected", selected_on=selected.isoformat(), entity="FHAS", by="departments")
    status = await claim.wait_stage("offers_and_fees")
    assert status.idr_entity == "FHAS"
    assert status.deadlines["offer_and_fee_deadline"].due_on == CAL.business_days_after(selected, 10)


async def test_ineligible_after_objection_with_fee_refund(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    selected = await claim.to_offers()
    await claim.act("fees_paid", paid_on=selected.isoformat(), administrative_fee="15.00", idre_fee="475.00")
    await claim.act("eligibility_objection", raised_on=selected.isoformat(), reason="state law applies")
    await claim.wait_stage("eligibility_review")
    status = await claim.act(
        "eligibility_decision",
        decided_on=selected.isoformat(),
        eligible=False,
        reason="NOT_NSA_ELIGIBLE: Texas law applies",
    )
    assert status.stage == "ineligible"
    assert "IDR entity fee is refunded in full" in status.transitions[-1].reason


async def test_missing_offer_and_fees_warns_of_default(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    selected = await claim.to_offers()
    await claim.go_to(CAL.business_days_after(selected, 11))
    await claim.wait_stage("awaiting_determination")
    assert rec.missed() == ["offer_and_fee_deadline"]


async def test_provider_wins_by_default_and_is_paid_on_time(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    determined = await claim.to_determination()
    status = await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        default=True,
        lines=[{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}],
    )
    assert status.stage == "payment_due" and status.amount_owed == Decimal("1150.00")
    assert "default decision, provider prevailed" in status.transitions[-1].reason
    assert status.deadlines["payment_deadline"].due_on == determined + timedelta(days=30)
    await claim.go_to(determined + timedelta(days=20))
    status = await claim.act(
        "payment_received",
        received_on=(determined + timedelta(days=20)).isoformat(),
        amount="1150.00",
        source="835",
        reference="TRN*1*123",
    )
    assert status.stage in ("paid", "closed")
    refund_due = CAL.business_days_after(determined, 30)
    await claim.act("fee_refund_received", received_on=refund_due.isoformat(), amount="475.00")
    await claim.wait_stage("closed")
    assert rec.overdue() == [] and rec.missed() == []


async def test_payer_wins_nothing_is_owed(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    determined = await claim.to_determination()
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "payer", "amount": "350.00"}],
    )
    status = await claim.wait_stage("closed")
    assert "payer prevailed; no additional payment owed" in status.transitions[-2].reason


async def test_split_decision_on_a_multi_line_claim(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start(paid=["350.00", "200.00"])
    determined = await claim.to_determination(lines=2)
    status = await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[
            {"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"},
            {"line_number": 2, "prevailing_party": "payer", "amount": "200.00"},
        ],
    )
    assert "split decision" in status.transitions[-1].reason and status.amount_owed == Decimal("1150.00")
    early = determined - timedelta(days=1)
    reason = await rejected(claim, "payment_received", received_on=early.isoformat(), amount="10.00")
    assert "before determination_on" in reason


async def test_partial_payment_then_never_paid_escalates_until_closed(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    determined = await claim.to_determination()
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "provider", "amount": "1350.00"}],
    )
    await claim.act("payment_received", received_on=determined.isoformat(), amount="400.00")
    await claim.go_to(determined + timedelta(days=31 + 14))
    status = await claim.status()
    assert status.stage == "payment_due" and status.amount_received == Decimal("400.00")
    overdue = rec.overdue()
    assert [a.overdue.escalation_level for a in overdue if a.overdue] == [1, 2, 3]
    assert all(
        a.overdue and a.overdue.amount_owed - a.overdue.amount_received == Decimal("600.00") for a in overdue
    )
    await claim.act("closed", reason="referred to the No Surprises Help Desk", actor="jane@billing.example")
    status = await claim.wait_stage("closed")
    assert status.transitions[-1].by == "jane@billing.example"


async def test_withdrawal(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    await claim.through_negotiation()
    status = await claim.act("withdrawn", reason="not worth the fees", actor="ops@billing.example")
    assert status.stage == "withdrawn"
    assert await claim.handle.result() == "withdrawn"  # type: ignore[union-attr]


async def test_cooling_off_then_re_initiation(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    prior = day31 - timedelta(days=30)
    await claim.act("cooling_off_applies", prior_determination_on=prior.isoformat())
    status = await claim.wait_stage("cooling_off")  # open negotiation ended inside the cooling-off
    held = status.deadlines["held_by_cooling_off_until"].due_on
    assert held == prior + timedelta(days=90)
    await claim.go_to(held + timedelta(days=1))
    status = await claim.wait_stage("idr_initiation_window")
    post = status.deadlines["post_cooling_off_initiation_deadline"].due_on
    assert post == CAL.business_day_beginning(held + timedelta(days=1), 30)
    reason = await rejected(claim, "idr_initiated", initiated_on=held.isoformat(), dispute_number="DISP-9")
    assert "cooling-off holds this claim" in reason
    first = CAL.business_day_beginning(held + timedelta(days=1), 1)
    await claim.go_to(first)  # after a weekend cooling-off end, the first business day may be ahead
    await claim.initiate(first)


async def test_the_response_notice_is_refused_while_its_rule_is_switched_off(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    reason = await rejected(claim, "response_notice_received", received_on=started.isoformat())
    assert "not in force" in reason


async def test_awaiting_the_initial_payment_then_open_negotiation(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    import uuid
    from datetime import UTC, datetime

    from services.dispute.schemas import ClaimEventSignal
    from tests.workflow.lifecycle_kit import facts

    claim = Claim(env, "AWAIT-1")
    bill = await claim.today()
    waiting = facts("AWAIT-1", bill, ["0.00"]).model_copy(
        update={"initial_payment_received_on": None, "bill_sent_on": bill}
    )
    await claim.begin(waiting)
    assert claim.handle is not None
    status = await claim.wait_stage("awaiting_initial_payment")
    assert status.deadlines["initial_payment_deadline"].due_on == bill + timedelta(days=30)
    await claim.go_to(bill + timedelta(days=31))
    assert rec.missed() == ["initial_payment_deadline"]  # the plan is late: someone hears of it
    paid_on = bill + timedelta(days=31)
    paid = waiting.model_copy(update={"initial_payment_received_on": paid_on, "event_sequence": 2})
    await claim.handle.signal(
        "claim_event", ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=paid)
    )
    status = await claim.wait_stage("open_negotiation_window")
    for _ in range(100):  # the new deadlines are planned right after the stage changes
        if "open_negotiation_initiation_deadline" in status.deadlines:
            break
        await asyncio.sleep(0.05)
        status = await claim.status()
    due = status.deadlines["open_negotiation_initiation_deadline"].due_on
    assert due == CAL.business_day_beginning(paid_on, 30)
