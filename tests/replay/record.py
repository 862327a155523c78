"""Record workflow histories for the replay tests: ``python -m tests.replay.record``.

Runs a few lifecycle paths on the time-skipping server and writes each workflow's history to
``tests/replay/histories/``. Commit them when a release goes out: the replay test then fails any
later change to workflow code that would break claims already running (use ``workflow.patched``).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from shared.temporal import register_search_attributes
from tests.workflow.lifecycle_kit import CAL, Claim, Recorder, workers

OUT = Path(__file__).parent / "histories"


async def save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())


async def paid(env: WorkflowEnvironment) -> None:
    claim = Claim(env, "REPLAY-PAID")
    await claim.start(paid=["350.00"])
    determined = await claim.to_determination()
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
    await claim.wait_stage("settled")
    await save(env.client, "claim:t1:REPLAY-SETTLED", "claim_settled")
    await save(env.client, "negotiation:t1:REPLAY-SETTLED", "negotiation_settled")


async def main() -> None:
    exe = str(Path(sys.executable).parent / "temporal-test-server")
    exe = exe if Path(exe).exists() else shutil.which("temporal-test-server") or exe
    OUT.mkdir(exist_ok=True)
    for scenario in (paid, forfeited, settled):
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=exe, data_converter=pydantic_data_converter
        )
        await register_search_attributes(env.client, "default")
        try:
            async with workers(env, Recorder()):
                await scenario(env)
        finally:
            await env.shutdown()
    print(f"wrote {len(list(OUT.glob('*.json')))} histories to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
