"""FastAPI factory of the notifier. The process also runs the alert and notice consumers and the
delivery sender (the alert consumer records deliveries; the sender sends them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.notifier.channels import close_channels, default_channels
from services.notifier.consumer import CONSUMER, NOTICE_CONSUMER, AlertHandler, NoticeHandler
from services.notifier.models import deliveries, inbox, outbox
from services.notifier.routes import router
from services.notifier.sender import DeliverySender, sending
from shared.db import database_ready, dead_letters_table, get_engine
from shared.http import install_healthz, install_problem_handlers
from shared.kafka import broker_ready
from shared.kafka.consumer import consuming
from shared.metrics import deliveries_by_status, dlq_depth, install_metrics, loop_check, outbox_lag
from shared.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    engine = get_engine()
    channels = default_channels(settings)
    sender = DeliverySender(engine, settings, channels)
    try:
        async with (
            sending(sender),  # started first, stopped last
            consuming(
                topic=settings.topic_alerts,
                group_id=CONSUMER,
                inbox=inbox,
                handler=AlertHandler(settings, channels, on_commit=sender.wake),
                engine=engine,
                settings=settings,
            ),
            consuming(
                topic=settings.topic_notices,
                group_id=NOTICE_CONSUMER,
                inbox=inbox,
                handler=NoticeHandler(on_commit=sender.wake),
                engine=engine,
                settings=settings,
            ),
        ):
            yield
    finally:
        await close_channels(channels)
        await engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow notifier",
        version="0.1.0",
        description="Deadline alerts by email and Slack, with a delivery log.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_metrics(
        app,
        "notifier",
        [outbox_lag(outbox), dlq_depth(dead_letters_table("notifier")), deliveries_by_status(deliveries)],
        engine=get_engine,
    )
    stall = get_settings().consumer_stall_seconds
    install_healthz(
        app,
        {
            "postgresql": database_ready,
            "kafka": broker_ready,
            "consumer": loop_check(CONSUMER, stall),
            "notice_consumer": loop_check(NOTICE_CONSUMER, stall),
        },
    )
    app.include_router(router)
    return app
