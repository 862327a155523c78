"""``idrflow``: the operator's command line (typer)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from shared.db import get_engine
from shared.kafka import ensure_topics, make_producer
from shared.kafka.outbox import republish, run_relay
from shared.runtime import configure_logging
from shared.settings import get_settings
from shared.tenants import new_api_key, upsert_tenant

app = typer.Typer(help="idrflow: No Surprises Act claim lifecycle engine.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
outbox_app = typer.Typer(help="The outboxes the relay publishes from.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(outbox_app, name="outbox")

FACTORIES = {
    "intake": "services.intake.app:create_app",
    "negotiation": "services.negotiation.app:create_app",
    "dispute": "services.dispute.app:create_app",
    "notifier": "services.notifier.app:create_app",
}


def _outboxes() -> list[Table]:
    from services.dispute.models import outbox as dispute_outbox
    from services.intake.models import outbox as intake_outbox

    return [intake_outbox, dispute_outbox]


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="intake, negotiation, dispute or notifier")],
    port: Annotated[int | None, typer.Option(help="defaults to the service's configured port")] = None,
) -> None:
    """Run one service's HTTP API (and its consumer and worker, where it has them)."""
    if service not in FACTORIES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(FACTORIES)}")
    settings = get_settings()
    configure_logging(service)
    uvicorn.run(
        FACTORIES[service],
        factory=True,
        host=settings.host,
        port=port or getattr(settings, f"{service}_port"),
        log_config=None,
        timeout_graceful_shutdown=10,
    )


@app.command()
def relay() -> None:
    """Publish the outboxes of every service to Kafka until stopped."""
    configure_logging("relay")
    settings = get_settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        producer = make_producer(settings)
        while not stop.is_set():
            try:
                await producer.start()
                break
            except Exception as exc:
                typer.echo(f"waiting for the broker: {exc}")
                await asyncio.sleep(1)
        try:
            await run_relay(
                get_engine(),
                _outboxes(),
                producer,
                poll_seconds=settings.relay_poll_seconds,
                batch=settings.relay_batch_size,
                stop=stop,
            )
        finally:
            await producer.stop()

    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to head."""
    from deploy.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database at head")


async def ensure_topics_with(bootstrap: str) -> list[str]:
    settings = get_settings().model_copy(update={"kafka_bootstrap_servers": bootstrap})
    return await ensure_topics(settings)


@app.command()
def topics() -> None:
    """Create the Kafka topics and their dead-letter topics."""
    created = asyncio.run(ensure_topics_with(get_settings().kafka_bootstrap_servers))
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


async def seed_tenant(
    database_url: str, tenant_id: str, name: str, api_key: str, email: str | None, slack_webhook: str | None
) -> None:
    """Create or update a tenant, its API key and its alert subscriptions."""
    from services.notifier.models import subscriptions
    from shared.db import unit_of_work

    engine = get_engine(database_url)
    await upsert_tenant(tenant_id, name, api_key, engine)
    rows = [("email", email), ("slack", slack_webhook)]
    async with unit_of_work(engine) as session:
        for channel, target in rows:
            if target:
                await session.execute(
                    insert(subscriptions)
                    .values(tenant_id=tenant_id, channel=channel, target=target)
                    .on_conflict_do_nothing()
                )
    await engine.dispose()


@tenants_app.command("create")
def tenants_create(
    tenant_id: Annotated[str, typer.Argument(help="short id, e.g. metro-em")],
    name: Annotated[str, typer.Option(help="display name")],
    email: Annotated[str | None, typer.Option(help="address that receives deadline alerts")] = None,
    slack_webhook: Annotated[str | None, typer.Option(help="Slack incoming webhook URL for alerts")] = None,
) -> None:
    """Create a tenant (or rotate its key) and print its new API key once."""
    key = new_api_key(tenant_id)
    asyncio.run(seed_tenant(get_settings().database_url, tenant_id, name, key, email, slack_webhook))
    typer.echo(key)


async def republish_all(database_url: str, since: datetime | None = None) -> int:
    """Mark every outbox row created since ``since`` (default: all) for publishing again."""
    engine = get_engine(database_url)
    total = 0
    for table in _outboxes():
        total += await republish(engine, table, since or datetime(1970, 1, 1, tzinfo=UTC))
    await engine.dispose()
    return total


@outbox_app.command("republish")
def outbox_republish(
    since: Annotated[datetime, typer.Option(help="re-publish events created at or after this instant (UTC)")],
) -> None:
    """Publish events again after a broker lost its data; consumers de-duplicate by event id."""

    total = asyncio.run(republish_all(get_settings().database_url, since))
    typer.echo(f"{total} event(s) queued for publishing again")


@app.command("temporal-setup")
def temporal_setup() -> None:
    """Register idrflow's search attributes on the configured Temporal namespace (once per cluster)."""
    from temporalio.service import RPCError

    from shared.temporal import SEARCH_ATTRIBUTES, connect, register_search_attributes

    settings = get_settings()

    async def main() -> None:
        client = await connect(settings)
        try:
            await register_search_attributes(client, settings.temporal_namespace)
        except RPCError as exc:
            if "already" not in str(exc).lower():
                raise
            typer.echo(f"already registered: {exc.message}")

    asyncio.run(main())
    typer.echo(f"search attributes: {', '.join(SEARCH_ATTRIBUTES)}")


@app.command()
def dev() -> None:
    """Run the whole local stack (what ``make run`` does)."""
    from deploy.devstack import run_dev

    run_dev()


if __name__ == "__main__":
    app()
