"""Committed histories replay against the current workflow code: a change that would break claims
already running fails here (make such changes with ``workflow.patched``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from services.dispute.schemas import ClaimLifecycleInput
from services.dispute.workflows import ClaimLifecycleWorkflow, IdrBatchWorkflow
from services.negotiation.workflows import OpenNegotiationWorkflow

HERE = Path(__file__).parent / "histories"
HISTORIES = sorted(HERE.glob("*.json"))
WORKFLOWS = [ClaimLifecycleWorkflow, OpenNegotiationWorkflow, IdrBatchWorkflow]


def history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HERE / f"{name}.json").read_text())


def test_there_are_histories_to_replay() -> None:
    names = {p.stem for p in HISTORIES}
    assert len(names) >= 8
    assert {"claim_continued_as_new", "claim_after_continue_as_new", "batch_determined"} <= names


def test_the_continue_as_new_histories_are_one_run_and_the_next() -> None:
    first, after = history("claim_continued_as_new"), history("claim_after_continue_as_new")
    ended = first.events[-1]
    assert ended.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    started = after.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id
    carried = ended.workflow_execution_continued_as_new_event_attributes.input.payloads[0].data
    assert started.input.payloads[0].data == carried
    inp = ClaimLifecycleInput.model_validate(json.loads(carried))
    assert inp.state is not None and inp.state.facts is not None and inp.history_event_limit > 0


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history(path.stem))  # raises on any non-determinism


@workflow.defn(name="ClaimLifecycleWorkflow")
class SleepsFirst(ClaimLifecycleWorkflow):
    """The claim workflow with one timer more before its work: not what the histories recorded."""

    @workflow.run
    async def run(self, inp: ClaimLifecycleInput) -> str:
        await workflow.sleep(1)
        return await super().run(inp)


@pytest.mark.parametrize("name", ["claim_paid_after_escalation", "claim_after_continue_as_new"])
async def test_a_changed_workflow_does_not_replay(name: str) -> None:
    """The replay test can fail: a history does not replay against changed workflow code."""
    replayer = Replayer(
        workflows=[SleepsFirst, OpenNegotiationWorkflow, IdrBatchWorkflow],
        data_converter=pydantic_data_converter,
    )
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(history(name))
