"""The negotiation Temporal worker: open-negotiation workflows on task queue ``negotiation``."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from services.negotiation.workflows import OpenNegotiationWorkflow
from shared.settings import Settings
from shared.temporal import workflow_runner
from shared.tracing import worker_interceptors


def build_worker(client: Client, settings: Settings) -> Worker:
    return Worker(
        client,
        task_queue=settings.negotiation_task_queue,
        workflows=[OpenNegotiationWorkflow],
        workflow_runner=workflow_runner(OpenNegotiationWorkflow),
        interceptors=worker_interceptors(client),
    )
