"""The dispute Temporal worker: lifecycle workflows and their activities on task queue ``dispute``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from services.dispute.activities import DisputeActivities
from services.dispute.workflows import ClaimLifecycleWorkflow, IdrBatchWorkflow
from shared.rules.calendar import federal_calendar
from shared.settings import Settings
from shared.temporal import workflow_runner
from shared.tracing import worker_interceptors

WORKFLOWS = [ClaimLifecycleWorkflow, IdrBatchWorkflow]


def build_worker(client: Client, engine: AsyncEngine, settings: Settings) -> Worker:
    acts = DisputeActivities(engine, settings, federal_calendar(), client)
    return Worker(
        client,
        task_queue=settings.dispute_task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(*WORKFLOWS),
        activities=acts.all(),
        interceptors=worker_interceptors(client),
        max_cached_workflows=settings.worker_max_cached_workflows,
    )
