"""FastAPI factory of the dispute service. The process also runs the claim consumer and the Temporal
worker of the ``dispute`` task queue, started and stopped with the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from services.dispute.actions import action_router
from services.dispute.activities import DisputeActivities
from services.dispute.batches import router as batch_router
from services.dispute.consumer import CONSUMER, ClaimEventHandler
from services.dispute.models import inbox, outbox
from services.dispute.routes import router, rules
from services.dispute.worker import build_worker
from shared.db import database_ready, dead_letters_table, get_engine
from shared.http import install_healthz, install_problem_handlers, task_running
from shared.kafka import broker_ready
from shared.kafka.consumer import consuming
from shared.metrics import dlq_depth, install_metrics, loop_check, outbox_lag
from shared.rules.calendar import federal_calendar
from shared.runtime import connect_temporal
from shared.settings import get_settings
from shared.temporal import temporal_ready


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    engine = get_engine()
    client = await connect_temporal(settings)
    app.state.temporal = client
    worker = build_worker(client, engine, settings)
    worker_task = asyncio.create_task(worker.run())
    app.state.worker_task = worker_task
    try:
        async with consuming(
            topic=settings.topic_claims,
            group_id=CONSUMER,
            inbox=inbox,
            handler=ClaimEventHandler(
                client, settings, DisputeActivities(engine, settings, federal_calendar()).plan
            ),
            engine=engine,
            settings=settings,
        ):
            yield
    finally:
        await worker.shutdown()
        with suppress(Exception):
            await worker_task
        await engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow dispute",
        version="0.1.0",
        description="Claim lifecycle: stages and deadlines of every claim, read from its workflow.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_metrics(
        app, "dispute", [outbox_lag(outbox), dlq_depth(dead_letters_table("dispute"))], engine=get_engine
    )

    async def temporal() -> bool:
        return await temporal_ready(getattr(app.state, "temporal", None))

    install_healthz(
        app,
        {
            "postgresql": database_ready,
            "temporal": temporal,
            "kafka": broker_ready,
            "worker": lambda: task_running(app, "worker_task"),
            "consumer": loop_check(CONSUMER, get_settings().consumer_stall_seconds),
        },
    )
    app.include_router(router)
    app.include_router(rules)
    app.include_router(action_router())
    app.include_router(batch_router)
    return app
