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


# each release's code path, recorded by tests/replay/record.py --tag (none: the release before issue 12)
TAGS = ("", "__local_plan", "__local_alert", "__first_plan")
PATHS = ("claim_forfeited", "claim_settled", "claim_paid_after_escalation")


def test_there_are_histories_to_replay() -> None:
    names = {p.stem for p in HISTORIES}
    assert len(names) >= 17
    for tag in TAGS:
        wanted = {"claim_continued_as_new", "claim_after_continue_as_new", "batch_determined", *PATHS}
        assert {f"{name}{tag}" for name in wanted} <= names
    assert {
        "claim_started_before_it_arrived__no_patches",
        "claim_started_before_it_arrived__local_plan",
    } <= names


def first_pass(name: str) -> tuple[int, int, list[str], list[str]]:
    """A claim's first pass, up to its first timer or child workflow: history events, workflow
    tasks, activities scheduled, markers recorded."""
    events = []
    for e in history(name).events:
        events.append(e)
        if e.HasField("timer_started_event_attributes") or e.HasField(
            "start_child_workflow_execution_initiated_event_attributes"
        ):
            break
    tasks = sum(1 for e in events if e.HasField("workflow_task_completed_event_attributes"))
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in events
        if e.HasField("marker_recorded_event_attributes")
    ]
    return len(events), tasks, activities, markers


@pytest.mark.parametrize("name", [*PATHS, "claim_started_before_it_arrived"])
def test_the_first_pass_is_one_workflow_task_with_local_plan(name: str) -> None:
    """Both paths are replayed: the previous release's (an activity per plan and record, each in a
    workflow task of its own) and the patched one (one workflow task; the plan and the record are
    local activities whose results stay in history as markers; a claim whose open negotiation began
    before it arrived is planned once, not twice)."""
    old = first_pass(f"{name}__no_patches" if name == "claim_started_before_it_arrived" else name)
    new = first_pass(f"{name}__local_plan")
    want = ["plan_deadlines", "record_claim"] * (2 if name == "claim_started_before_it_arrived" else 1)
    assert old[2] == want and not old[3] and old[1] >= 3
    events, tasks, activities, markers = new
    assert (tasks, activities) == (1, [])
    assert markers.count("core_patch") == 2 and markers.count("core_local_activity") == 2
    assert events < old[0]


@pytest.mark.parametrize("name", [*PATHS, "claim_started_before_it_arrived"])
def test_a_claim_started_with_its_first_plan_takes_no_planning_step(name: str) -> None:
    """Started as the dispute consumer starts it, with the first plan made (in the workflow's input,
    so in history): its first workflow task has one local activity, the record. Started so by a worker
    with the patch switch off (``__first_plan_unpatched``), it planned by its activity."""
    before = first_pass(f"{name}__local_alert")
    events, tasks, activities, markers = first_pass(f"{name}__first_plan")
    assert (tasks, activities) == (1, [])
    assert markers.count("core_local_activity") == 1 and before[3].count("core_local_activity") == 2
    # one marker fewer, one patch marker (and its search attribute) more: the gain is the activation
    assert markers.count("core_patch") == before[3].count("core_patch") + 1 and events == before[0] + 1
    started = history(f"{name}__first_plan").events[0].workflow_execution_started_event_attributes
    inp = ClaimLifecycleInput.model_validate(json.loads(started.input.payloads[0].data))
    assert inp.first_plan is not None and inp.first_plan.plan.deadlines
    unpatched = first_pass(f"{name}__first_plan_unpatched")
    assert unpatched[2] and unpatched[2][0] == "plan_deadlines" and "core_patch" not in unpatched[3]


def alert_steps(name: str) -> tuple[int, int, int]:
    """A whole history: alerts staged by a regular activity, local activity markers, workflow tasks."""
    events = list(history(name).events)
    activities = sum(
        1
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "emit_alert"
    )
    local = sum(
        1
        for e in events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    tasks = sum(1 for e in events if e.HasField("workflow_task_completed_event_attributes"))
    return activities, local, tasks


@pytest.mark.parametrize("name", ["claim_forfeited", "claim_paid_after_escalation"])
def test_alerts_are_local_activities_in_the_task_their_timer_wakes(name: str) -> None:
    """Before the patch each alert was an activity (a workflow task to schedule it, an activity task,
    a workflow task for its result); patched, it runs in the workflow task its timer wakes, its result
    kept in history as a marker, and the claim sends the same alerts."""
    old_alerts, old_local, old_tasks = alert_steps(f"{name}__local_plan")
    new_alerts, new_local, new_tasks = alert_steps(f"{name}__local_alert")
    assert old_alerts >= 2 and new_alerts == 0
    assert new_local == old_local + old_alerts
    assert new_tasks <= old_tasks - old_alerts


@pytest.mark.parametrize("tag", TAGS)
def test_the_continue_as_new_histories_are_one_run_and_the_next(tag: str) -> None:
    first, after = history(f"claim_continued_as_new{tag}"), history(f"claim_after_continue_as_new{tag}")
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


@pytest.mark.parametrize(
    "name",
    [
        "claim_paid_after_escalation",
        "claim_after_continue_as_new",
        "claim_paid_after_escalation__local_plan",
        "claim_after_continue_as_new__local_plan",
        "claim_paid_after_escalation__local_alert",
        "claim_paid_after_escalation__first_plan",
    ],
)
async def test_a_changed_workflow_does_not_replay(name: str) -> None:
    """The replay test can fail: a history does not replay against changed workflow code."""
    replayer = Replayer(
        workflows=[SleepsFirst, OpenNegotiationWorkflow, IdrBatchWorkflow],
        data_converter=pydantic_data_converter,
    )
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(history(name))
