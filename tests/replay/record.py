"""Record workflow histories for the replay tests: ``python -m tests.replay.record --tag TAG``.

Runs a few lifecycle paths on the time-skipping server and writes each workflow's history to
``tests/replay/histories/<name>__<tag>.json`` (``<name>.json`` without a tag). Commit them when a
release goes out: the replay test then fails any later change to workflow code that would break
claims already running (use ``workflow.patched``). Record each release's code path under a new tag:
the histories of the releases before stay, so claims started on any of them are replayed. An existing
file is never overwritten (``--force`` does). Among them: a claim that continues as new on the way
(both runs saved), an IDR batch of two claims and a claim whose open negotiation began before it
arrived. ``--no-patches`` records the paths of before every ``workflow.patched`` (the worker's patch
activation switch).

Tags so far: none (the release before issue 12), ``local_plan`` (planning and the record as local
activities, the first pass planned once, reminders spread before the reminder time), ``local_alert``
(each alert staged by a local activity in the workflow task its timer wakes), ``first_plan`` (recorded
with ``--first-plan``: claims start with the first plan the dispute consumer made, and take no planning
step in their first workflow task).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
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
from shared.temporal import register_search_attributes
from tests.workflow.lifecycle_kit import CAL, QUEUE, Claim, Recorder, facts, workers

OUT = Path(__file__).parent / "histories"
TAG = ""  # set from --tag: the suffix of every file written
FORCE = False


def target(name: str) -> Path:
    path = OUT / (f"{name}__{TAG}.json" if TAG else f"{name}.json")
    if path.exists() and not FORCE:
        raise FileExistsError(f"{path} exists: record under a new --tag (or --force to overwrite)")
    return path


async def save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    target(name).write_text(history.to_json())


async def runs(client: Client, workflow_id: str, first_run_id: str) -> list[str]:
    """The run ids of a workflow's continue-as-new chain, from its first run (``describe`` is no
    help here: on the test server it fails decoding the datetime search attribute)."""
    chain = [first_run_id]
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=chain[-1]).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return chain
        chain.append(last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id)


async def save_run(client: Client, workflow_id: str, run_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    target(name).write_text(history.to_json())


async def pay_after_escalation(claim: Claim, determined: date) -> None:
    """From awaiting determination: the provider prevails, the plan pays late and in two parts."""
    await claim.act(
        "determination",
        determined_on=determined.isoformat(),
        lines=[{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}],
    )
    await claim.act("payment_received", received_on=determined.isoformat(), amount="400.00")
    await claim.go_to(determined + timedelta(days=40))
    await claim.act(
        "payment_received", received_on=(determined + timedelta(days=40)).isoformat(), amount="750.00"
    )
    await claim.act(
        "fee_refund_received", received_on=(determined + timedelta(days=40)).isoformat(), amount="475.00"
    )
    await claim.wait_stage("closed")
    assert claim.handle is not None
    assert await claim.handle.result() == "closed"  # the whole history, to its completion


async def paid(env: WorkflowEnvironment) -> None:
    claim = Claim(env, "REPLAY-PAID")
    await claim.start(paid=["350.00"])
    await pay_after_escalation(claim, await claim.to_determination())
    await save(env.client, "claim:t1:REPLAY-PAID", "claim_paid_after_escalation")
    await save(env.client, "negotiation:t1:REPLAY-PAID", "negotiation_period_ended")


async def forfeited(env: WorkflowEnvironment) -> None:
    claim = Claim(env, "REPLAY-FORFEIT")
    received = await claim.start()
    await claim.go_to(CAL.business_day_beginning(received, 31))
    await claim.wait_stage("forfeited")
    await save(env.client, "claim:t1:REPLAY-FORFEIT", "claim_forfeited")


async def settled(env: WorkflowEnvironment) -> None:
    claim = Claim(env, "REPLAY-SETTLED")
    await claim.start()
    started = await claim.open_negotiation()
    await claim.negotiate("offer", party="provider", offered_on=started.isoformat(), amounts={1: "1800.00"})
    await claim.negotiate("settle", settled_on=started.isoformat(), amount="1100.00")
    # the plan owes what was agreed, less its payment, within 30 days (audit row 5)
    await claim.wait_stage("payment_due")
    for _ in range(100):
        if "payment_deadline" in (await claim.status()).deadlines:
            break
        await asyncio.sleep(0.05)
    await claim.act("payment_received", received_on=started.isoformat(), amount="750.00")
    assert claim.handle is not None
    assert await claim.handle.result() == "closed"
    await save(env.client, "claim:t1:REPLAY-SETTLED", "claim_settled")
    await save(env.client, "negotiation:t1:REPLAY-SETTLED", "negotiation_settled")


async def started_before(env: WorkflowEnvironment) -> None:
    """A claim whose event says open negotiation began already: its first plan covers that period;
    the period ends, the IDR initiation window passes, the claim is forfeited."""
    claim = Claim(env, "REPLAY-STARTED")
    received = CAL.business_days_after(await claim.today(), -3)
    started = CAL.business_days_after(received, 1)
    await claim.begin(
        facts(claim.claim_id, received, ["350.00"]).model_copy(
            update={"open_negotiation_started_on": started}
        )
    )
    await claim.wait_stage("open_negotiation")
    await claim.go_to(CAL.business_day_beginning(started, 31))
    await claim.wait_stage("idr_initiation_window")
    await claim.go_to(CAL.business_day_beginning(started, 36))
    await claim.wait_stage("forfeited")
    await save(env.client, "claim:t1:REPLAY-STARTED", "claim_started_before_it_arrived")


# the paid path (about 170 events since local_plan; about 300 before, recorded with a limit of 180)
# continues as new once on the way
HISTORY_EVENT_LIMIT = 90


async def continued(env: WorkflowEnvironment) -> None:
    """The paid path with a small history limit: the claim continues as new on the way; both runs
    are saved (the second starts from the state the first carried over)."""
    claim = Claim(env, "REPLAY-CONTINUED")
    await claim.start(paid=["350.00"], history_event_limit=HISTORY_EVENT_LIMIT)
    await pay_after_escalation(claim, await claim.to_determination())
    assert claim.handle is not None and claim.handle.result_run_id is not None  # the run it started
    wid = claim.handle.id
    chain = await runs(env.client, wid, claim.handle.result_run_id)
    assert len(chain) >= 2, "the claim did not continue as new: lower HISTORY_EVENT_LIMIT"
    await save_run(env.client, wid, chain[0], "claim_continued_as_new")
    await save_run(env.client, wid, chain[1], "claim_after_continue_as_new")


async def batch(env: WorkflowEnvironment) -> None:
    """Two claims in one IDR batch: initiation, selection, offers, fees, a split determination."""
    a, b = Claim(env, "REPLAY-BA-1"), Claim(env, "REPLAY-BA-2")
    received = await a.start(paid=["350.00"])
    await b.start(received=received, paid=["200.00"])
    started = await a.open_negotiation()
    await b.open_negotiation()
    day31 = CAL.business_day_beginning(started, 31)
    await a.go_to(day31)
    await a.wait_stage("idr_initiation_window")
    await b.wait_stage("idr_initiation_window")
    handle = await env.client.start_workflow(
        IdrBatchWorkflow.run,
        BatchInput(tenant_id="t1", batch_id="REPLAY-B", members=[MemberInfo(claim_id="REPLAY-BA-1")]),
        id="batch:t1:REPLAY-B",
        task_queue=QUEUE,
    )

    async def act(update: str, body: object) -> BatchStatus:
        return await handle.execute_update(update, body, result_type=BatchStatus)

    await act("add_member", MemberJoined(member=MemberInfo(claim_id="REPLAY-BA-2")))
    await act("idr_initiated", IdrInitiated(initiated_on=day31, dispute_number="DISP-RB"))
    selected = CAL.business_days_after(day31, 1)
    await a.go_to(selected)
    await act("entity_selected", EntitySelected(selected_on=selected, entity="Maximus", by="joint"))
    await act(
        "offer_submitted",
        BatchOfferSubmitted(
            submitted_on=selected,
            amounts={"REPLAY-BA-1": {1: Decimal("1500")}, "REPLAY-BA-2": {1: Decimal("900")}},
        ),
    )
    await act(
        "fees_paid", FeesPaid(paid_on=selected, administrative_fee=Decimal("15"), idre_fee=Decimal("580"))
    )
    determined = CAL.business_days_after(selected, 20)
    await a.go_to(determined)
    status = await act(
        "determination",
        BatchDetermination.model_validate(
            {
                "determined_on": determined.isoformat(),
                "lines": [
                    {
                        "claim_id": "REPLAY-BA-1",
                        "line_number": 1,
                        "prevailing_party": "provider",
                        "amount": "1500.00",
                    },
                    {
                        "claim_id": "REPLAY-BA-2",
                        "line_number": 1,
                        "prevailing_party": "payer",
                        "amount": "200.00",
                    },
                ],
            }
        ),
    )
    assert status.stage == "determined", status.stage
    assert await handle.result() == "determined"
    await save(env.client, "batch:t1:REPLAY-B", "batch_determined")


SCENARIOS = {f.__name__: f for f in (paid, forfeited, settled, continued, batch, started_before)}


async def main(names: list[str], patches: bool) -> None:
    exe = str(Path(sys.executable).parent / "temporal-test-server")
    exe = exe if Path(exe).exists() else shutil.which("temporal-test-server") or exe
    OUT.mkdir(exist_ok=True)
    before = set(OUT.glob("*.json"))
    for name in names:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=exe, data_converter=pydantic_data_converter
        )
        await register_search_attributes(env.client, "default")
        try:
            async with workers(env, Recorder(), patches=patches):
                await SCENARIOS[name](env)
        finally:
            await env.shutdown()
    written = sorted(p.name for p in set(OUT.glob("*.json")) - before)
    print(f"wrote {len(written)} new histories to {OUT}: {', '.join(written)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", default="", help="suffix of the files written (the release's code path)")
    parser.add_argument("--force", action="store_true", help="overwrite existing histories")
    parser.add_argument("--no-patches", action="store_true", help="record the paths before workflow.patched")
    parser.add_argument("--first-plan", action="store_true", help="start claims with a first plan")
    parser.add_argument("scenarios", nargs="*", default=[], choices=[[], *SCENARIOS], help="default: all")
    args = parser.parse_args()
    TAG, FORCE = args.tag, args.force
    Claim.plan_first = args.first_plan
    asyncio.run(main(args.scenarios or list(SCENARIOS), patches=not args.no_patches))
    # the Temporal client's threads can abort interpreter finalization (SIGABRT) after the work is
    # done, as in services/cli.py: flush and skip it
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
