"""FastAPI factory of the negotiation service. The process also runs the Temporal worker of the
``negotiation`` task queue (open-negotiation child workflows)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from services.negotiation.consumer import CONSUMER, DeliveryHandler
from services.negotiation.models import inbox, outbox
from services.negotiation.routes import router
from services.negotiation.worker import build_worker
from shared.db import database_ready, dead_letters_table, get_engine
from shared.http import install_healthz, install_problem_handlers, task_running
from shared.kafka import broker_ready
from shared.kafka.consumer import consuming
from shared.metrics import dlq_depth, install_metrics, loop_check, outbox_lag
from shared.runtime import connect_temporal
from shared.settings import get_settings
from shared.temporal import temporal_ready


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    client = await connect_temporal(settings)
    app.state.temporal = client
    worker = build_worker(client, settings)
    task = asyncio.create_task(worker.run())
    app.state.worker_task = task
    try:
        async with consuming(
            topic=settings.topic_notices,
            group_id=CONSUMER,
            inbox=inbox,
            handler=DeliveryHandler(client, settings),
            engine=get_engine(),
            settings=settings,
        ):
            yield
    finally:
        await worker.shutdown()
        with suppress(Exception):
            await task
        await get_engine().dispose()


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow negotiation",
        version="0.1.0",
        description="Open negotiation: the notice, offers and counteroffers, settlement.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_metrics(
        app,
        "negotiation",
        [outbox_lag(outbox), dlq_depth(dead_letters_table("negotiation"))],
        engine=get_engine,
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
    return app
