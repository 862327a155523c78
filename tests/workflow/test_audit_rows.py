"""The lifecycle rows of the 2026-11 regulatory audit (../shared/domain/audit-2026-11.md): each test
names its row and fails on commit b4e4bbf."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio.testing import WorkflowEnvironment

from services.dispute.schemas import ClaimEventSignal, ClaimStatus
from tests.workflow.lifecycle_kit import CAL, Claim, Recorder


async def planned(claim: Claim, name: str) -> ClaimStatus:
    for _ in range(100):
        status = await claim.status()
        if name in status.deadlines:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} was never planned")


async def with_cost_sharing(claim: Claim, *shares: str) -> None:
    """The 835's patient responsibility arrives as a corrected claim event."""
    status = await claim.status()
    assert status.facts is not None and claim.handle is not None
    lines = [
        line.model_copy(update={"cost_sharing": Decimal(share)})
        for line, share in zip(status.facts.lines, shares, strict=True)
    ]
    facts = status.facts.model_copy(update={"event_sequence": 2, "lines": lines})
    await claim.handle.signal(
        "claim_event", ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=facts)
    )
    for _ in range(100):
        if (await claim.status()).event_sequence == 2:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cost sharing was not applied")


async def test_row_4_the_plan_owes_the_award_minus_cost_sharing_minus_its_payment(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 4: paid $300, coinsurance $100, award $1,000: the plan owes $600 (not $700), and
    $600 received closes the payment (no false PaymentOverdue)."""
    claim = Claim(env)
    await claim.start(paid=["300.00"])
    await with_cost_sharing(claim, "100.00")
    determined = await claim.to_determination()
    status = await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "provider", "amount": "1000.00"}],
    )
    assert status.stage == "payment_due" and status.amount_owed == Decimal("600.00")
    status = await claim.act("payment_received", received_on=determined.isoformat(), amount="600.00")
    assert status.stage == "paid"


async def test_row_4_an_award_below_the_initial_payment_tracks_the_providers_refund(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 4: award $250 with $300 paid: not `paid` but `refund_due` ($50, 30-day clock with
    reminders, an alert when it passes), closed once the refund is recorded."""
    claim = Claim(env)
    await claim.start(paid=["300.00"])
    determined = await claim.to_determination()
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "payer", "amount": "250.00"}],
    )
    status = await planned(claim, "provider_refund_deadline")
    assert status.stage == "refund_due" and status.refund_owed == Decimal("50.00")
    due = status.deadlines["provider_refund_deadline"]
    assert due.due_on == determined + timedelta(days=30) and "refund" in due.explanation
    await claim.go_to(due.due_on + timedelta(days=1))
    assert "provider_refund_deadline" in rec.missed()
    assert any(a.deadline.name == "provider_refund_deadline" and not a.missed for a in rec.alerts)
    status = await claim.act("refund_sent", sent_on=(await claim.today()).isoformat(), amount="50.00")
    assert status.stage in ("paid", "closed")


async def test_row_5_a_settlement_during_idr_starts_the_30_day_payment_clock(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 5: a settlement (here after initiation) is paid within 30 days, with the same
    tracking and escalation as an award."""
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    day31 = await claim.through_negotiation()
    await claim.initiate(day31)
    status = await claim.act("settlement", settled_on=day31.isoformat(), amount="1150.00")
    assert status.stage == "payment_due" and status.amount_owed == Decimal("800.00")
    assert status.deadlines["payment_deadline"].due_on == day31 + timedelta(days=30)
    assert [t.stage for t in status.transitions][-2:] == ["settled", "payment_due"]
    await claim.go_to(day31 + timedelta(days=32))
    assert [a.overdue.escalation_level for a in rec.overdue() if a.overdue] == [1]


async def test_row_3_a_cooling_off_that_ends_before_open_negotiation_does_keeps_days_31_to_34(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 3: the post-cooling-off window applies only when business day 30 of open
    negotiation falls inside the cooling-off. Here it ends 10 days into open negotiation, so the
    claim keeps business days 31-34 (b4e4bbf moved it to 30 business days after the cooling-off
    and accepted late initiations)."""
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    prior = started - timedelta(days=80)  # cooling-off ends 10 days into open negotiation
    await claim.act("cooling_off_applies", prior_determination_on=prior.isoformat())
    day31 = CAL.business_day_beginning(started, 31)
    await claim.go_to(day31)
    status = await claim.wait_stage("idr_initiation_window")
    assert status.next_deadline is not None and status.next_deadline.name == "idr_initiation_deadline"
    assert status.next_deadline.due_on == CAL.business_day_beginning(started, 34)
    await claim.go_to(CAL.business_day_beginning(started, 35))
    await claim.wait_stage("forfeited")


async def test_row_10_only_the_party_that_initiated_the_prior_dispute_is_held(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 10: the plan initiated the prior dispute, so the provider may initiate on
    business day 31 although the cooling-off runs."""
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    await claim.act(
        "cooling_off_applies",
        prior_determination_on=(day31 - timedelta(days=30)).isoformat(),
        prior_initiated_by="plan",
    )
    status = await claim.status()
    assert status.stage == "idr_initiation_window"
    await claim.initiate(day31)


async def test_row_11_a_declined_entity_is_replaced_and_the_clocks_restart_from_the_new_selection(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 11: entity A reports a conflict; B is selected two business days later; the offer
    deadline is 10 business days after B's selection (b4e4bbf rejected the second selection)."""
    claim = Claim(env)
    await claim.start()
    first = await claim.to_offers()
    status = await claim.status()
    assert status.deadlines["conflict_attestation_deadline"].due_on == CAL.business_days_after(first, 3)
    declined = CAL.business_days_after(first, 1)
    await claim.go_to(declined)
    status = await claim.act(
        "entity_declined", declined_on=declined.isoformat(), reason="conflict_of_interest"
    )
    assert status.stage == "idre_selection" and status.idr_entity is None
    second = CAL.business_days_after(declined, 1)
    await claim.go_to(second)
    status = await claim.act(
        "entity_selected", selected_on=second.isoformat(), entity="FHAS", by="departments"
    )
    assert status.stage == "offers_and_fees" and status.idr_entity == "FHAS"
    assert status.deadlines["offer_and_fee_deadline"].due_on == CAL.business_days_after(second, 10)
    assert status.deadlines["determination_deadline"].due_on == CAL.business_days_after(second, 30)


async def test_row_12_an_improperly_batched_dispute_gets_a_4_business_day_resubmission_window(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 12: not `ineligible` but a resubmission window (D13) with a reminder; resubmitted
    in time it starts again; not resubmitted, it ends ineligible."""
    claim = Claim(env)
    await claim.start()
    selected = await claim.to_offers()
    status = await claim.act(
        "eligibility_decision",
        decided_on=selected.isoformat(),
        eligible=False,
        reason="items not related",
        improperly_batched=True,
    )
    assert status.stage == "resubmission_window"
    due = status.deadlines["improper_batch_resubmission_deadline"].due_on
    assert due == CAL.business_days_after(selected, 4)
    resubmitted = CAL.business_days_after(selected, 2)
    await claim.go_to(resubmitted)
    assert any(a.deadline.name == "improper_batch_resubmission_deadline" for a in rec.alerts)
    status = await claim.act("idr_initiated", initiated_on=resubmitted.isoformat(), dispute_number="DISP-R2")
    assert status.stage == "idr_initiated" and status.dispute_number == "DISP-R2"
    assert "idre_selected_on" not in status.dates
    # another claim lets the window pass
    other = Claim(env)
    await other.start()
    picked = await other.to_offers()
    await other.act(
        "eligibility_decision", decided_on=picked.isoformat(), eligible=False, improperly_batched=True
    )
    await other.go_to(CAL.business_days_after(picked, 5))
    await other.wait_stage("ineligible")
    assert "improper_batch_resubmission_deadline" in rec.missed()


async def test_row_18_a_tie_and_a_settlement_during_idr_track_half_the_entity_fee_refund(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 18: a 1-1 split decision refunds half the IDR entity fee; so does a settlement after
    the fees were paid (b4e4bbf tracked neither)."""
    claim = Claim(env)
    await claim.start(paid=["350.00", "350.00"])
    determined = await claim.to_determination(lines=2)
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[
            {"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"},
            {"line_number": 2, "prevailing_party": "payer", "amount": "350.00"},
        ],
    )
    status = await claim.act("payment_received", received_on=determined.isoformat(), amount="1150.00")
    assert status.stage == "paid"
    assert status.next_deadline is not None and status.next_deadline.name == "idre_fee_refund_deadline"
    settled = Claim(env)
    await settled.start(paid=["350.00"])
    when = await settled.to_determination()
    status = await settled.act("settlement", settled_on=when.isoformat(), amount="350.00")
    assert status.stage == "paid" and "half of each party's IDR entity fee" in status.transitions[-1].reason
    status = await planned(settled, "idre_fee_refund_deadline")
    assert status.deadlines["idre_fee_refund_deadline"].due_on == CAL.business_days_after(when, 30)


async def test_row_17_a_preferred_entity_without_objection_is_deemed_selected(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 17: the preferred entity named at initiation is deemed selected when the other party
    does not object within 3 business days, with a reminder to notify the Departments within one
    business day (b4e4bbf said "the Departments select")."""
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    await claim.act(
        "idr_initiated", initiated_on=day31.isoformat(), dispute_number="DISP-P", preferred_entity="Maximus"
    )
    await claim.go_to(CAL.business_days_after(day31, 4))
    status = await claim.wait_stage("offers_and_fees")
    deemed = CAL.business_days_after(day31, 3)
    assert status.idr_entity == "Maximus" and status.dates["idre_selected_on"] == deemed
    status = await planned(claim, "joint_selection_notice_deadline")
    assert status.deadlines["joint_selection_notice_deadline"].due_on == CAL.business_days_after(deemed, 1)
    assert any(a.deadline.name == "joint_selection_notice_deadline" for a in rec.alerts)
    # with an objection, the Departments select
    other = Claim(env)
    await other.start()
    o31 = await other.through_negotiation()
    await other.act(
        "idr_initiated", initiated_on=o31.isoformat(), dispute_number="DISP-Q", preferred_entity="Maximus"
    )
    await other.act("preferred_entity_objected", objected_on=o31.isoformat())
    await other.go_to(CAL.business_days_after(o31, 4))
    await other.wait_stage("idre_selection")


async def test_row_1_a_blanket_extension_added_while_the_claim_waits_moves_its_timer(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 1: an extension override added after the workflow armed its timer moves the cut-off;
    the claim is still in its window after the old date (b4e4bbf forfeited it at the old date)."""
    from shared.rules.calendar import Extension

    claim = Claim(env)
    await claim.start()
    x = (await claim.status()).deadlines["open_negotiation_initiation_deadline"].due_on
    moved = CAL.business_days_after(x, 3)
    rec.extensions = [Extension(start=x, end=x, moves_to=moved, name="Portal outage extension")]
    assert claim.handle is not None
    await claim.handle.signal("calendar_changed")
    status = await planned(claim, "open_negotiation_initiation_deadline")
    for _ in range(100):
        status = await claim.status()
        if status.deadlines["open_negotiation_initiation_deadline"].due_on == moved:
            break
        await asyncio.sleep(0.05)
    assert status.deadlines["open_negotiation_initiation_deadline"].due_on == moved
    await claim.go_to(x + timedelta(days=1))
    assert (await claim.status()).stage == "open_negotiation_window"
    await claim.go_to(moved + timedelta(days=1))
    await claim.wait_stage("forfeited")


async def test_row_14_a_prior_batched_dispute_under_the_2026_rules_holds_30_business_days(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 14 (lifecycle): the batched cooling-off is picked by the prior dispute's open
    negotiation start; b4e4bbf never applied it (always 90 calendar days)."""
    claim = Claim(env)
    await claim.start()
    day31 = await claim.through_negotiation()
    prior = day31 - timedelta(days=10)
    status = await claim.act(
        "cooling_off_applies",
        prior_determination_on=prior.isoformat(),
        prior_batched=True,
        prior_open_negotiation_started_on=(prior - timedelta(days=60)).isoformat(),
    )
    held = status.deadlines["held_by_cooling_off_until"]
    assert held.due_on == CAL.business_days_after(prior, 30) and "batched" in held.explanation


async def test_row_3_a_cooling_off_recorded_after_it_ended_still_gives_the_30_day_window(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 3 (review): open negotiation ended inside a cooling-off that has just ended; recorded
    on business day 32, the claim gets 30 business days after the cooling-off, not business day 34."""
    claim = Claim(env)
    await claim.start()
    started = await claim.open_negotiation()
    b30 = CAL.business_day_beginning(started, 30)
    prior = b30 - timedelta(days=89)  # the cooling-off ends the day after business day 30
    b32 = CAL.business_day_beginning(started, 32)
    await claim.go_to(b32)
    await claim.wait_stage("idr_initiation_window")
    await claim.act("cooling_off_applies", prior_determination_on=prior.isoformat())
    status = await planned(claim, "post_cooling_off_initiation_deadline")
    post = CAL.business_day_beginning(prior + timedelta(days=91), 30)
    assert status.next_deadline is not None and status.next_deadline.due_on == post
    await claim.go_to(CAL.business_day_beginning(started, 35))
    assert (await claim.status()).stage == "idr_initiation_window"


async def test_row_11_a_new_entity_gets_the_offer_and_fee_again(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 11 (review): after a declined entity, the offer and the entity fee go to the new one;
    missing them by the new D7 is a default-risk alert."""
    claim = Claim(env)
    await claim.start()
    await claim.to_determination()
    today = await claim.today()
    await claim.act("entity_declined", declined_on=today.isoformat(), reason="decertified")
    status = await claim.act(
        "entity_selected", selected_on=today.isoformat(), entity="FHAS", by="departments"
    )
    assert status.stage == "offers_and_fees"
    await claim.go_to(CAL.business_days_after(today, 11))
    assert "offer_and_fee_deadline" in rec.missed()


async def test_row_4_a_settlement_below_what_the_plan_paid_tracks_the_providers_refund(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    """audit row 4 (review): the parties agree on less than the plan paid: the provider refunds it."""
    claim = Claim(env)
    await claim.start(paid=["350.00"])
    day31 = await claim.through_negotiation()
    status = await claim.act("settlement", settled_on=day31.isoformat(), amount="300.00")
    assert status.stage == "refund_due" and status.refund_owed == Decimal("50.00")
    status = await planned(claim, "provider_refund_deadline")
    assert status.deadlines["provider_refund_deadline"].due_on == day31 + timedelta(days=30)
