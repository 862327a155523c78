"""``idrflow dlq``: list, show and replay the messages a consumer could never apply.

Each consuming service keeps its dead letters in its own schema (``<schema>.dead_letters``, written
by :mod:`shared.kafka.consumer` together with the copy on ``<topic>.dlq``). A replay stages the
original envelope, unchanged (same event id), in that service's outbox for the original topic, so
the relay publishes it; every consumer group of the topic sees it again and the inboxes of those
that applied it already skip it. ``replayed_at`` records the replay.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import dead_letters_table, get_engine, unit_of_work
from shared.events import Envelope
from shared.settings import get_settings

T = TypeVar("T")

dlq_app = typer.Typer(help="Dead letters: messages a consumer could never apply.", no_args_is_help=True)

# the services that consume (and so have a dead-letter table), by schema
SERVICES = ("dispute", "negotiation", "notifier")


def _tables(service: str) -> tuple[Table, Table]:
    """The service's dead-letter table and its outbox."""
    models = importlib.import_module(f"services.{service}.models")
    outbox: Table = models.outbox
    return dead_letters_table(outbox.schema or service), outbox


def _row(service: str, row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "service": service,
        "consumer": row.consumer,
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "key": row.key,
        "event_id": str(row.event_id) if row.event_id else None,
        "event_type": row.event_type,
        "tenant_id": row.tenant_id,
        "claim_id": row.claim_id,
        "error_type": row.error_type,
        "error": row.error,
        "created_at": row.created_at.isoformat(),
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
    }


async def list_dead_letters(
    engine: AsyncEngine, service: str | None = None, *, include_replayed: bool = False
) -> list[dict[str, Any]]:
    """Dead letters of one service (or all), oldest first; replayed ones only when asked."""
    out: list[dict[str, Any]] = []
    async with engine.connect() as conn:
        for name in [service] if service else SERVICES:
            table, _ = _tables(name)
            stmt = select(table).order_by(table.c.created_at, table.c.id)
            if not include_replayed:
                stmt = stmt.where(table.c.replayed_at.is_(None))
            out += [_row(name, r) for r in (await conn.execute(stmt)).all()]
    return out


async def _find(engine: AsyncEngine, dead_letter_id: uuid.UUID) -> tuple[str, Any] | None:
    async with engine.connect() as conn:
        for name in SERVICES:
            table, _ = _tables(name)
            row = (await conn.execute(select(table).where(table.c.id == dead_letter_id))).first()
            if row is not None:
                return name, row
    return None


async def show_dead_letter(engine: AsyncEngine, dead_letter_id: uuid.UUID) -> dict[str, Any] | None:
    """One dead letter with its payload, or None."""
    found = await _find(engine, dead_letter_id)
    if found is None:
        return None
    service, row = found
    return _row(service, row) | {"payload": row.payload}


class NotReplayable(Exception):
    """The dead letter is not an envelope (it can only be inspected), or was replayed already."""


async def replay_dead_letter(engine: AsyncEngine, dead_letter_id: uuid.UUID, *, again: bool = False) -> str:
    """Stage the dead letter's envelope in its service's outbox for its original topic; return the
    service. Raises :class:`NotReplayable` or LookupError."""
    found = await _find(engine, dead_letter_id)
    if found is None:
        raise LookupError(f"no dead letter {dead_letter_id}")
    service, row = found
    if row.replayed_at is not None and not again:
        raise NotReplayable(f"dead letter {dead_letter_id} was replayed at {row.replayed_at.isoformat()}")
    try:
        env = Envelope.model_validate(row.payload)
    except ValidationError as exc:
        why = f"{exc.error_count()} validation error(s)"
        raise NotReplayable(f"dead letter {dead_letter_id} is not an envelope: {why}") from None
    table, outbox = _tables(service)
    values = {
        "event_id": env.event_id,
        "topic": row.topic,
        "message_key": row.key or f"{env.tenant_id}:{env.claim_id}",
        "event_type": env.event_type,
        "tenant_id": env.tenant_id[:64],
        "envelope": env.model_dump(mode="json"),
    }
    stmt = insert(outbox).values(**values)
    # the same event may have been staged there before (an earlier replay): publish it again
    stmt = stmt.on_conflict_do_update(
        index_elements=[outbox.c.event_id],
        set_={
            "topic": stmt.excluded.topic,
            "message_key": stmt.excluded.message_key,
            "envelope": stmt.excluded.envelope,
            "published_at": None,
            "next_attempt_at": None,
            "parked_at": None,
            "attempts": 0,
            "last_error": None,
        },
    )
    async with unit_of_work(engine) as session:
        await session.execute(stmt)
        await session.execute(
            update(table).where(table.c.id == dead_letter_id).values(replayed_at=datetime.now(UTC))
        )
    return service


async def replay_all(engine: AsyncEngine, service: str | None = None) -> tuple[int, list[str]]:
    """Replay every dead letter not replayed yet; return how many, and the ones that cannot be."""
    done, skipped = 0, []
    for d in await list_dead_letters(engine, service):
        try:
            await replay_dead_letter(engine, uuid.UUID(d["id"]))
            done += 1
        except NotReplayable as exc:
            skipped.append(str(exc))
    return done, skipped


def _run(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = get_engine(get_settings().database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _check_service(service: str | None) -> None:
    if service is not None and service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")


@dlq_app.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Option(help="dispute, negotiation or notifier")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    replayed: Annotated[bool, typer.Option(help="include the ones replayed already")] = False,
) -> None:
    """The dead letters not replayed yet, oldest first."""
    _check_service(service)
    rows: list[dict[str, Any]] = _run(lambda e: list_dead_letters(e, service, include_replayed=replayed))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no dead letters")
        return
    for r in rows:
        typer.echo(
            f"{r['id']}  {r['created_at'][:19]}  {r['service']:<11} "
            f"{r['topic']}[{r['partition']}]@{r['offset']}"
            f"  {r['event_type'] or '-'}  {r['tenant_id'] or '-'}/{r['claim_id'] or '-'}"
            f"  {r['error_type']}: {(r['error'] or '')[:120]}"
            + (f"  replayed {r['replayed_at'][:19]}" if r["replayed_at"] else "")
        )


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        why = "is not a dead letter id (a UUID from `idrflow dlq list`)"
        raise typer.BadParameter(f"{value!r} {why}") from None


@dlq_app.command("show")
def dlq_show(dead_letter_id: Annotated[str, typer.Argument(help="id from `idrflow dlq list`")]) -> None:
    """One dead letter with its error and payload, as JSON."""
    key = _parse_id(dead_letter_id)
    found: dict[str, Any] | None = _run(lambda e: show_dead_letter(e, key))
    if found is None:
        typer.echo(f"idrflow: no dead letter {dead_letter_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(found, indent=2))


@dlq_app.command("replay")
def dlq_replay(
    dead_letter_id: Annotated[str | None, typer.Argument(help="id from `idrflow dlq list`")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter not replayed yet")] = False,
    service: Annotated[str | None, typer.Option(help="with --all: only this service's")] = None,
    again: Annotated[bool, typer.Option(help="replay one that was replayed already")] = False,
) -> None:
    """Publish a dead letter again to its original topic (through the service's outbox)."""
    _check_service(service)
    if all_ == (dead_letter_id is not None):
        raise typer.BadParameter("give one dead letter id or --all")
    if all_:
        done, skipped = _run(lambda e: replay_all(e, service))
        for reason in skipped:
            typer.echo(f"skipped: {reason}", err=True)
        typer.echo(f"{done} dead letter(s) queued for publishing again")
        return
    key = _parse_id(dead_letter_id or "")
    try:
        where: str = _run(lambda e: replay_dead_letter(e, key, again=again))
    except (LookupError, NotReplayable) as exc:
        typer.echo(f"idrflow: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"dead letter {dead_letter_id} queued in the {where} outbox for publishing again")
