"""``idrflow``: the operator's command line (typer)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import uvicorn
from pydantic import ValidationError

from deploy.bootstrap import ensure_topics_with, outboxes, republish_all, seed_tenant
from services.claims_cli import claims_app
from services.codec_server import codec_app
from services.dlq_cli import dlq_app
from services.ingest_cli import ingest_command
from services.parse_cli import parse_command
from services.remittances_cli import remittances_app
from shared.db import get_engine
from shared.kafka import make_producer
from shared.kafka.outbox import run_relay
from shared.rules.calendar import Overrides, calendar_with
from shared.rules.deadlines import Triggers, compute_schedule
from shared.rules.overrides import load_overrides_file
from shared.runtime import configure_logging
from shared.settings import get_settings
from shared.tenants import new_api_key

app = typer.Typer(help="idrflow: No Surprises Act claim lifecycle engine.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
outbox_app = typer.Typer(help="The outboxes the relay publishes from.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(outbox_app, name="outbox")
app.add_typer(claims_app, name="claims")
app.add_typer(dlq_app, name="dlq")
app.command("parse")(parse_command)
app.add_typer(codec_app, name="codec")
app.command("ingest")(ingest_command)
app.add_typer(remittances_app, name="remittances")

FACTORIES = {
    "intake": "services.intake.app:create_app",
    "negotiation": "services.negotiation.app:create_app",
    "dispute": "services.dispute.app:create_app",
    "notifier": "services.notifier.app:create_app",
}


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
    workers = settings.intake_workers if service == "intake" else 1
    uvicorn.run(
        # an import string: with workers, each (spawned) worker process makes its own app
        FACTORIES[service] if workers == 1 else "services.cli:intake_worker_app",
        factory=True,
        host=settings.host,
        port=port or getattr(settings, f"{service}_port"),
        workers=workers,
        # httptools parses HTTP in C (h11 is pure Python); intake, the one hot path that waits on
        # nothing but PostgreSQL, runs on uvloop. The others keep asyncio's loop: they host the
        # Temporal worker and the Kafka consumers, tested on it.
        http="httptools",
        loop="uvloop" if service == "intake" else "asyncio",
        log_config=None,
        timeout_graceful_shutdown=10,
    )


def intake_worker_app() -> object:
    """One intake worker's app (``IDRFLOW_INTAKE_WORKERS`` > 1): uvicorn starts each worker as a
    fresh interpreter, so its logging is set up here, as ``serve`` does for a single process."""
    from services.intake.app import create_app

    configure_logging("intake")
    return create_app()


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
                outboxes(),
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


@app.command()
def topics() -> None:
    """Create the Kafka topics and their dead-letter topics."""
    created = asyncio.run(ensure_topics_with(get_settings().kafka_bootstrap_servers))
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


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


@outbox_app.command("republish")
def outbox_republish(
    since: Annotated[datetime, typer.Option(help="re-publish events created at or after this instant (UTC)")],
) -> None:
    """Publish events again after a broker lost its data; consumers de-duplicate by event id."""

    total = asyncio.run(republish_all(get_settings().database_url, since))
    typer.echo(f"{total} event(s) queued for publishing again")


def _end_process(code: int) -> NoReturn:
    """End a command that used the Temporal client right away. The client's native runtime keeps
    threads that can abort the interpreter while it finalizes (seen here as SIGABRT after the work
    was done and printed), so these commands flush their output and skip finalization."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail(message: str) -> NoReturn:
    typer.echo(f"idrflow: {message}", err=True)
    raise typer.Exit(2)


def _load_overrides(path: Path | None) -> Overrides:
    if path is None:
        return Overrides()
    try:
        return load_overrides_file(path)
    except (OSError, ValidationError) as exc:
        _fail(f"overrides file {path}: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    """One line per problem, each naming the key it is about."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        reason = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            reason = "unknown key"
        lines.append(f"{where}: {reason}" if where else reason)
    return "; ".join(lines)


@app.command()
def deadlines(
    explain: Annotated[
        bool, typer.Option(help="print each deadline's rule, rule set and explanation")
    ] = False,
    overrides: Annotated[Path | None, typer.Option(help="JSON file of closures and extensions")] = None,
) -> None:
    """Read one JSON object of trigger dates on stdin; print every deadline they start as JSON.

    Keys: bill_sent_on, initial_payment_received_on, open_negotiation_started_on, idr_initiated_on,
    idre_selected_on, determination_on, improper_batch_notice_on, agreement_on (ISO dates); batched,
    joint_selection (bool), line_items (int), state. Bad input: a message on stderr and exit code 2.
    """
    raw = sys.stdin.read()
    if not raw.strip():
        _fail("expected one JSON object on stdin, got nothing")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        _fail(f"stdin is not valid JSON: {exc}")
    if not isinstance(data, dict):
        _fail(f"expected one JSON object on stdin, got {type(data).__name__}")
    try:
        triggers = Triggers.model_validate_json(raw, strict=True)
        schedule = compute_schedule(triggers, overrides=_load_overrides(overrides))
    except (ValidationError, ValueError) as exc:
        _fail(_describe(exc))
    if not explain:
        typer.echo(json.dumps(schedule.as_dates()))
        return
    out: dict[str, object] = {
        name: {
            "due_on": d.due_on.isoformat(),
            "rule_id": d.rule_id,
            "rule_set": d.rule_set,
            "explanation": d.explanation,
            "moved_by": list(d.moved_by),
        }
        for name, d in schedule.deadlines.items()
    }
    if schedule.administrative_fee_per_party is not None:
        out["administrative_fee_per_party"] = schedule.as_dates()["administrative_fee_per_party"]
        out["fee_rule_set"] = schedule.fee_rule_set
        low, high = schedule.idre_fee_range or (None, None)
        out["idre_fee_range"] = [str(low), str(high)]
    typer.echo(json.dumps(out, indent=2))


@app.command()
def calendar(
    year: Annotated[int, typer.Option(help="the year to list")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    overrides: Annotated[Path | None, typer.Option(help="JSON file of closures and extensions")] = None,
) -> None:
    """The non-business days of a year (besides Saturdays and Sundays), with their names."""
    ov = _load_overrides(overrides)
    cal = calendar_with(ov.closures)
    if not cal.first.year <= year <= cal.last.year:
        _fail(f"year {year} is outside the calendar ({cal.first.year}..{cal.last.year})")
    days = cal.non_business_days(date(year, 1, 1), date(year, 12, 31))
    if as_json:
        typer.echo(json.dumps([{"date": d.isoformat(), "weekday": f"{d:%A}", "name": n} for d, n in days]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Non-business days {year} (plus every Saturday and Sunday)")
    for column in ("date", "weekday", "name"):
        table.add_column(column)
    for d, n in days:
        table.add_row(d.isoformat(), f"{d:%A}", n)
    Console().print(table)


@app.command("temporal-setup")
def temporal_setup() -> None:
    """Register the search attributes and set the workflow retention on the Temporal namespace.

    The retention is IDRFLOW_TEMPORAL_RETENTION_DAYS; running it again is harmless."""
    from temporalio.service import RPCError

    from shared.temporal import (
        SEARCH_ATTRIBUTES,
        connect,
        get_retention,
        register_search_attributes,
        set_retention,
    )

    settings = get_settings()
    namespace, days = settings.temporal_namespace, settings.temporal_retention_days

    async def main() -> float:
        client = await connect(settings)
        try:
            await register_search_attributes(client, namespace)
        except RPCError as exc:
            if "already" not in str(exc).lower():
                raise
            typer.echo(f"already registered: {exc.message}")
        await set_retention(client, namespace, days)
        return (await get_retention(client, namespace)).total_seconds() / 86400

    actual = asyncio.run(main())
    typer.echo(f"search attributes: {', '.join(SEARCH_ATTRIBUTES)}")
    typer.echo(f"namespace {namespace!r}: workflow retention {actual:g} day(s)")
    if actual != days:
        typer.echo(
            f"idrflow: asked for {days} day(s) of retention, the namespace reports {actual:g}", err=True
        )
        _end_process(1)
    _end_process(0)


@app.command()
def dev() -> None:
    """Run the whole local stack (what ``make run`` does)."""
    from deploy.devstack import run_dev

    run_dev()


if __name__ == "__main__":
    app()
