"""The workflow bench's baseline: one activity, one timer (``bench/workflow_bench.py``).

A module of its own so the worker imports it by name and passes it through the sandbox like the
claim workflow's modules (``shared.temporal.workflow_runner``); defined in the bench's ``__main__``
the sandbox compiled and ran that whole file again for every trivial workflow."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from shared.temporal import IDR_STAGE


@activity.defn(name="bench_noop")
async def bench_noop(arg: str) -> str:
    return arg


@workflow.defn(name="BenchTrivialWorkflow")
class TrivialWorkflow:
    @workflow.run
    async def run(self, wake_at: str) -> str:
        """One activity, the search attribute upsert the claim makes with its record, one timer
        (until ``wake_at`` when given, then a second activity: the alert baseline)."""
        if wake_at:
            await workflow.sleep(datetime.fromisoformat(wake_at) - workflow.now())
            await workflow.execute_activity(bench_noop, "alert", start_to_close_timeout=timedelta(seconds=30))
            return "woke"
        await workflow.execute_activity(bench_noop, "plan", start_to_close_timeout=timedelta(seconds=30))
        workflow.upsert_search_attributes([IDR_STAGE.value_set("planned")])
        await workflow.sleep(timedelta(days=30))
        return "done"
