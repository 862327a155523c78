"""The state a claim carries across continue-as-new loads in the current release, from the previous
one, and with fields added or removed.

``blobs/claim_state_b4e4bbf.json`` is the ``ClaimLifecycleInput`` (with its ``state``) of release
b4e4bbf: made in a throw-away worktree of that commit whose claim workflow was changed to continue as
new once its history passed 40 events; a claim was driven there with that commit's
``tests/workflow/lifecycle_kit.py`` (open negotiation, IDR, a determination of $1,500 for the
provider, a partial payment of $400) and the input payload of the last WorkflowExecutionContinuedAsNew
event was saved as it was encoded (JSON of the pydantic data converter), pretty-printed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from services.dispute.schemas import ClaimLifecycleInput
from services.dispute.workflows import ClaimLifecycleWorkflow
from tests.workflow.lifecycle_kit import QUEUE, Claim, Recorder

BLOB = Path(__file__).parent / "blobs" / "claim_state_b4e4bbf.json"
STAGES = [
    "open_negotiation_window",
    "open_negotiation",
    "idr_initiation_window",
    "idr_initiated",
    "offers_and_fees",
    "awaiting_determination",
    "payment_due",
]


def blob() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BLOB.read_text())
    return data


def test_the_previous_release_state_loads() -> None:
    inp = ClaimLifecycleInput.model_validate_json(BLOB.read_text())
    s = inp.state
    assert s is not None and s.facts is not None
    assert (inp.tenant_id, inp.claim_id) == (s.tenant_id, s.claim_id) == ("t1", "BLOB-B4E4BBF")
    assert s.stage == "payment_due"
    assert isinstance(s.amount_owed, Decimal) and s.amount_owed == Decimal("1150.00")
    assert isinstance(s.amount_received, Decimal) and s.amount_received == Decimal("400.00")
    assert s.facts.lines[0].paid == Decimal("350.00")
    assert s.deadlines["payment_deadline"].due_on == date(2027, 3, 19)
    assert s.deadlines["determination_deadline"].due_on == date(2027, 3, 3)
    assert s.dates["determination_on"] == date(2027, 2, 17)
    assert (s.dispute_number, s.idr_entity, s.provider_prevailed) == ("DISP-123456", "Maximus", True)
    assert len(s.actions) == 7 and s.actions[-1].action == "payment_received"
    assert [t.stage for t in s.transitions] == STAGES
    assert [r.deadline for r in s.reminders_sent] == ["idr_initiation_deadline"]
    assert s.passed == ["open_negotiation_period_end@2027-01-14"]
    # what this release added takes its default
    assert (inp.history_event_limit, inp.forfeiture_grace_days) == (0, 120)
    assert (s.applied_updates, s.record_seq, s.recorded_transitions, s.forfeit, s.final) == (
        [],
        0,
        0,
        None,
        False,
    )


def test_a_field_this_release_does_not_know_is_ignored() -> None:
    data = blob()
    data["from_a_later_release"] = True
    data["state"]["from_a_later_release"] = {"any": ["thing"]}
    data["state"]["deadlines"]["payment_deadline"]["business_days"] = 30
    data["state"]["transitions"][0]["source"] = "replay"
    data["state"]["actions"][0]["idempotency_key"] = "k-1"
    inp = ClaimLifecycleInput.model_validate_json(json.dumps(data))
    assert inp.state is not None and inp.state.stage == "payment_due"
    assert "from_a_later_release" not in inp.state.model_dump()
    assert inp.state.deadlines["payment_deadline"].due_on == date(2027, 3, 19)


def test_a_field_the_blob_lacks_takes_its_default() -> None:
    data = blob()
    del data["negotiation_task_queue"]
    for field in ("pending_events", "passed", "reminders_sent", "fee_refund_received"):
        del data["state"][field]
    inp = ClaimLifecycleInput.model_validate_json(json.dumps(data))
    assert inp.negotiation_task_queue == "negotiation"
    s = inp.state
    assert s is not None
    assert (s.pending_events, s.passed, s.reminders_sent, s.fee_refund_received) == ([], [], [], False)
    assert s.amount_owed == Decimal("1150.00")


def test_an_unknown_field_in_the_carried_facts_is_ignored() -> None:
    data = blob()
    data["state"]["facts"]["from_a_later_release"] = True
    data["state"]["facts"]["lines"][0]["also_new"] = "x"
    inp = ClaimLifecycleInput.model_validate_json(json.dumps(data))
    assert inp.state is not None and inp.state.facts is not None and inp.state.facts.lines


async def test_the_current_workflow_runs_on_from_the_previous_release_state(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    inp = ClaimLifecycleInput.model_validate_json(BLOB.read_text())
    assert inp.state is not None
    claim = Claim(env, inp.claim_id)
    # as continue-as-new starts it: the state in the input, no claim event
    claim.handle = await env.client.start_workflow(
        ClaimLifecycleWorkflow.run, inp, id=f"claim:{inp.tenant_id}:{inp.claim_id}", task_queue=QUEUE
    )
    status = await claim.wait_stage("payment_due")
    assert (status.amount_owed, status.amount_received) == (Decimal("1150.00"), Decimal("400.00"))
    assert [t.stage for t in status.transitions] == STAGES and len(status.actions) == 7
    assert status.deadlines["payment_deadline"].due_on == date(2027, 3, 19)
    for _ in range(100):  # it plans again and writes the claim record, with the history it carried
        if rec.records:
            break
        await asyncio.sleep(0.05)
    assert rec.plans and rec.plans[0].determination_on == date(2027, 2, 17)
    assert rec.records and rec.records[0].stage == "payment_due"
    assert [t.stage for t in rec.records[0].transitions] == STAGES

    paid_on = date(2027, 2, 17) + timedelta(days=5)
    await claim.go_to(paid_on)
    status = await claim.act("payment_received", received_on=paid_on.isoformat(), amount="750.00")
    assert status.stage == "paid" and status.amount_received == Decimal("1150.00")
    status = await claim.act("fee_refund_received", received_on=paid_on.isoformat(), amount="475.00")
    assert status.stage == "closed"
    assert await claim.handle.result() == "closed"
