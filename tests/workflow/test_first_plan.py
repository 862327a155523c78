"""A new claim's first plan, made by the dispute consumer before the start (``FirstPlan`` in the
workflow's input): the workflow uses it only when its own first request is exactly the one the plan
answers, and then takes no planning step; any other plan is ignored and planned again."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

from temporalio.api.history.v1 import History
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from services.dispute.consumer import ClaimEventHandler
from services.dispute.planning import first_pass_request, request_digest
from services.dispute.schemas import FirstPlan, Plan, PlanRequest
from shared.settings import Settings
from tests.workflow.lifecycle_kit import CAL, Claim, Recorder, facts, first_plan, workers


def local_activities(history: WorkflowHistory | History) -> list[str]:
    """The local activities a history recorded, by activity type, in order."""
    names = []
    for e in history.events:
        if e.HasField("marker_recorded_event_attributes"):
            data = e.marker_recorded_event_attributes.details.get("data")
            if data is not None and data.payloads:
                names.append(json.loads(data.payloads[0].data)["activity_type"])
    return names


async def test_the_first_plan_is_used_without_a_planning_step(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    planned = Claim(env, "C-plain")
    await planned.start()
    given = Claim(env, "C-given")
    given.plan_first = True
    await given.start()
    assert [p.claim_id for p in rec.plans] == ["C-plain"]  # the given claim asked the planner nothing
    assert given.handle is not None and planned.handle is not None
    history = await given.handle.fetch_history()
    assert local_activities(history) == ["record_claim"]
    assert local_activities(await planned.handle.fetch_history()) == ["plan_deadlines", "record_claim"]
    a, b = await planned.status(), await given.status()
    assert {n: d.due_on for n, d in a.deadlines.items()} == {n: d.due_on for n, d in b.deadlines.items()}
    assert b.stage == "open_negotiation_window" and b.next_deadline is not None


async def test_a_plan_for_another_request_is_not_used(env: WorkflowEnvironment, rec: Recorder) -> None:
    claim = Claim(env, "C-stale")
    received = CAL.business_day_beginning((await env.get_current_time()).date(), 1)
    other = first_plan("t1", "C-stale", facts("C-stale", received - timedelta(days=20), ["350.00"]))
    await claim.start(received, first_plan=other)  # a plan of other dates, say a stale consumer's
    assert len(rec.plans) == 1 and rec.plans[0].initial_payment_received_on == received
    status = await claim.status()
    wrong = {d.name: d.due_on for d in other.plan.deadlines}
    right = {
        d.name: d.due_on for d in first_plan("t1", "C-stale", facts("C-stale", received, [])).plan.deadlines
    }
    got = {name: d.due_on for name, d in status.deadlines.items()}
    assert got == right and got != wrong


async def test_a_claim_already_in_open_negotiation_is_planned_once_with_its_start(
    env: WorkflowEnvironment, rec: Recorder
) -> None:
    received = CAL.business_day_beginning((await env.get_current_time()).date(), 1)
    started = CAL.business_days_after(received, 3)
    claim_facts = facts("C-on", received, ["350.00"]).model_copy(
        update={"open_negotiation_started_on": started}
    )
    assert first_pass_request("t1", "C-on", claim_facts).open_negotiation_started_on == started
    claim = Claim(env, "C-on")
    claim.plan_first = True
    await claim.begin(claim_facts)
    assert claim.handle is not None
    status = await claim.wait_stage("open_negotiation")
    assert rec.plans == []  # the start it carries was planned with it, by the consumer
    assert status.dates["open_negotiation_started_on"] == started
    assert local_activities(await claim.handle.fetch_history()) == ["record_claim"]


async def test_a_calendar_change_before_the_first_pass_discards_the_first_plan(
    env: WorkflowEnvironment,
) -> None:
    """The tenant's calendar changed after the consumer planned, before the claim's first workflow
    task (the override's replan signals the claims not planned yet): the claim plans itself."""
    claim = Claim(env, "C-changed")
    claim.plan_first = True
    recorder = Recorder()
    start = asyncio.create_task(claim.start())  # no worker yet: the start waits for its first pass
    while claim.handle is None:
        await asyncio.sleep(0.01)
    await claim.handle.signal("calendar_changed")
    async with workers(env, recorder):
        await start
    assert [p.claim_id for p in recorder.plans] == ["C-changed"]
    assert local_activities(await claim.handle.fetch_history()) == ["plan_deadlines", "record_claim"]


async def test_the_consumer_plans_a_new_claim_and_leaves_a_refusal_to_the_workflow() -> None:
    """Pure: the consumer's part, with planners standing in for the dispute activities."""
    settings = Settings()
    asked: list[PlanRequest] = []

    async def planner(req: PlanRequest, session: object) -> Plan:
        asked.append(req)
        return Plan(deadlines=[], reminders=[])

    async def refusing(req: PlanRequest, session: object) -> Plan:
        raise ApplicationError("initial_payment_received_on: too far", non_retryable=True)

    async def broken(req: PlanRequest, session: object) -> Plan:
        raise ConnectionResetError("the database went away")

    claim = facts("C-1", date(2026, 11, 2), ["350.00"])

    async def first(planner: object) -> FirstPlan | None:
        handler = ClaimEventHandler(None, settings, planner)  # type: ignore[arg-type]
        return await handler.first_plan(None, "t1", "C-1", claim)

    made = await first(planner)
    request = first_pass_request("t1", "C-1", claim)
    assert isinstance(made, FirstPlan) and made.request_digest == request_digest(request)
    assert asked == [request] and request.reminder_spread and request.claim_id == "C-1"
    other = first_pass_request("t1", "C-2", claim)
    assert request_digest(other) != made.request_digest  # another claim's plan is not this one's
    # refused: the workflow plans and refuses on its own record; broken or no planner: it plans
    assert await first(refusing) is None
    assert await first(broken) is None
    assert await first(None) is None
