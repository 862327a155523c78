"""The outbox: write an event with the domain rows; the relay publishes it afterwards.

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (so several relays may run),
publishes each and marks it published in the same transaction. A crash between publish and commit
re-publishes the row; consumers de-duplicate by event id (inbox), so delivery is effectively-once.

A row that cannot be published is isolated: its ``attempts`` and ``last_error`` are written, it
waits until ``next_attempt_at`` (a delay doubling up to a cap) and after ``relay_max_attempts`` it is
parked (``parked_at``, an ERROR log) for an operator. It never stops other rows or other outboxes.
Per-key order is kept: each pass publishes only the oldest unpublished row of each message key, so
the rows behind a failing one wait for it. A parked row no longer holds its key back.

When the broker itself is unreachable no row is charged an attempt: the whole relay backs off.
Published outbox rows and processed inbox rows are pruned after ``outbox_retention_days``.

Tracing: :func:`add_to_outbox` keeps the writer's W3C ``traceparent`` in the row's JSON, beside the
envelope (``"_headers"``; the envelope itself has no free-form field); the relay publishes each row
in a producer span continuing it and puts that span's ``traceparent`` in the Kafka headers. With
``IDRFLOW_RELAY_PORT`` the relay process answers ``/healthz`` (its loop alive and not stuck) and
``/metrics`` (publishes, failures, every outbox's lag).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import Table, and_, delete, exists, select, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import unit_of_work
from shared.events import Envelope, topic_for
from shared.metrics import RELAY_FAILURES, RELAY_PUBLISHED, Loop, register_loop, unregister_loop
from shared.settings import Settings, get_settings
from shared.tracing import configure_tracing, context_from, current_headers, kafka_headers, tracer

log = logging.getLogger(__name__)

# failures that belong to the row itself, whatever the state of the broker
_ROW_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    ValidationError,
    ValueError,
    TypeError,
)


class BrokerUnavailable(Exception):
    """No row could be published and the broker does not answer: back off, charge no row."""


def _outbox_row(envelope: Envelope) -> dict[str, Any]:
    return {
        "event_id": envelope.event_id,
        "topic": topic_for(envelope.event_type),
        "message_key": f"{envelope.tenant_id}:{envelope.claim_id}",
        "event_type": envelope.event_type,
        "tenant_id": envelope.tenant_id,
        "envelope": with_trace_headers(envelope.model_dump(mode="json")),
    }


@cache
def _insert_rows(outbox: Table) -> Insert:
    """The outbox's insert of one row per parameter set, an event already there skipped: made once."""
    return insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.event_id])


async def add_many_to_outbox(session: AsyncSession, outbox: Table, envelopes: Sequence[Envelope]) -> None:
    """Stage several events in the caller's transaction with one statement (those already there are
    skipped)."""
    if envelopes:
        await session.execute(_insert_rows(outbox), [_outbox_row(e) for e in envelopes])


async def add_to_outbox(session: AsyncSession, outbox: Table, envelope: Envelope) -> bool:
    """Stage an event in the caller's transaction. Returns False when that event id is already there."""
    result = await session.execute(_insert_rows(outbox), _outbox_row(envelope))
    return bool(getattr(result, "rowcount", 0))


TRACE_KEY = "_headers"


def with_trace_headers(envelope_json: dict[str, Any]) -> dict[str, Any]:
    """The envelope's JSON plus the current ``traceparent`` under ``"_headers"`` (when there is a span)."""
    carrier = current_headers()
    return {**envelope_json, TRACE_KEY: carrier} if carrier else envelope_json


def split_trace_headers(stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """An outbox row's JSON as (envelope JSON, trace headers)."""
    data = dict(stored)
    carrier = data.pop(TRACE_KEY, None)
    if not isinstance(carrier, dict):
        return data, {}
    return data, {str(k): str(v) for k, v in carrier.items()}


def retry_delay(attempts: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** min(attempts - 1, 30)))


async def _broker_answers(producer: AIOKafkaProducer, within: float) -> bool:
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), within)
        return True
    except Exception:
        return False


def _eligible(outbox: Table, now: datetime, batch: int) -> Any:
    """The head row of each key (no older unpublished, unparked row with that key) that is due."""
    earlier = outbox.alias("earlier")
    return (
        select(
            outbox.c.id,
            outbox.c.topic,
            outbox.c.message_key,
            outbox.c.envelope,
            outbox.c.attempts,
        )
        .where(
            outbox.c.published_at.is_(None),
            outbox.c.parked_at.is_(None),
            (outbox.c.next_attempt_at.is_(None)) | (outbox.c.next_attempt_at <= now),
            ~exists().where(
                and_(
                    earlier.c.message_key == outbox.c.message_key,
                    earlier.c.id < outbox.c.id,
                    earlier.c.published_at.is_(None),
                    earlier.c.parked_at.is_(None),
                )
            ),
        )
        .order_by(outbox.c.id)
        .limit(batch)
        .with_for_update(of=outbox, skip_locked=True)
    )


async def relay_once(
    engine: AsyncEngine,
    outbox: Table,
    producer: AIOKafkaProducer,
    batch: int,
    settings: Settings | None = None,
) -> int:
    """Publish up to ``batch`` due rows of one outbox; return how many were published.

    A row that fails is charged an attempt (see the module doc); when every row failed and the broker
    does not answer, :class:`BrokerUnavailable` is raised and no row is charged."""
    s = settings or get_settings()
    now = datetime.now(UTC)
    async with unit_of_work(engine) as session:
        rows = (await session.execute(_eligible(outbox, now, batch))).all()
        if not rows:
            return 0
        sent: list[tuple[Any, asyncio.Future[Any]]] = []
        failed: list[tuple[Any, BaseException]] = []
        for row in rows:
            try:
                data, carrier = split_trace_headers(row.envelope)
                with tracer().start_as_current_span(
                    f"publish {row.topic}",
                    context=context_from(carrier),
                    kind=SpanKind.PRODUCER,
                    record_exception=False,  # a validation error may quote the row
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": row.topic,
                        "messaging.message.id": str(data.get("event_id", "")),
                        "idrflow.event_type": str(data.get("event_type", ""))[:100],
                        "idrflow.outbox": outbox.fullname,
                    },
                ):
                    value = Envelope.model_validate(data).to_bytes()
                    future = await asyncio.wait_for(
                        producer.send(
                            row.topic,
                            value=value,
                            key=row.message_key.encode(),
                            headers=kafka_headers(current_headers()),
                        ),
                        s.relay_send_timeout_seconds,
                    )
                sent.append((row, future))
            except TimeoutError:
                why = f"no answer in {s.relay_send_timeout_seconds:g}s (a missing topic? the broker?)"
                failed.append((row, TimeoutError(why)))
            except Exception as exc:
                failed.append((row, exc))
        published: list[int] = []
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        for (row, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                failed.append((row, result))
            else:
                published.append(row.id)
        if failed and not published:
            row_specific = [f for f in failed if isinstance(f[1], _ROW_ERRORS)]
            if not row_specific and not await _broker_answers(producer, s.relay_send_timeout_seconds):
                raise BrokerUnavailable(f"{type(failed[0][1]).__name__}: {failed[0][1]}")
        if published:
            await session.execute(
                update(outbox).where(outbox.c.id.in_(published)).values(published_at=datetime.now(UTC))
            )
            RELAY_PUBLISHED.labels(outbox.schema or outbox.name).inc(len(published))
        if failed:
            RELAY_FAILURES.labels(outbox.schema or outbox.name).inc(len(failed))
        failed_at = datetime.now(UTC)
        for row, problem in failed:
            attempts = row.attempts + 1
            error = f"{type(problem).__name__}: {problem}".replace("\x00", "\\0")[:2000]
            park = attempts >= s.relay_max_attempts
            delay = retry_delay(attempts, s.relay_retry_base_seconds, s.relay_retry_cap_seconds)
            await session.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=failed_at + timedelta(seconds=delay),
                    parked_at=failed_at if park else None,
                )
            )
            if park:
                log.error(
                    "outbox %s row %d (topic %s, key %s) parked after %d attempts: %s",
                    outbox.fullname,
                    row.id,
                    row.topic,
                    row.message_key,
                    attempts,
                    error,
                )
            else:
                log.warning(
                    "outbox %s row %d attempt %d failed, next in %.0fs: %s",
                    outbox.fullname,
                    row.id,
                    attempts,
                    delay,
                    error,
                )
        return len(published)


async def republish(engine: AsyncEngine, outbox: Table, since: datetime) -> int:
    """Mark rows created since ``since`` unpublished again (after a broker lost its data)."""
    async with unit_of_work(engine) as session:
        result = await session.execute(
            update(outbox)
            .where(outbox.c.created_at >= since)
            .values(published_at=None, next_attempt_at=None, parked_at=None)
        )
        return int(getattr(result, "rowcount", 0))


async def unpark(engine: AsyncEngine, outbox: Table) -> int:
    """Give every parked row of ``outbox`` a fresh set of attempts."""
    async with unit_of_work(engine) as session:
        result = await session.execute(
            update(outbox)
            .where(outbox.c.parked_at.is_not(None), outbox.c.published_at.is_(None))
            .values(parked_at=None, next_attempt_at=None, attempts=0)
        )
        return int(getattr(result, "rowcount", 0))


async def prune(engine: AsyncEngine, tables: list[Table], older_than: timedelta) -> int:
    """Delete published outbox rows and processed inbox rows older than ``older_than``."""
    cutoff = datetime.now(UTC) - older_than
    total = 0
    async with unit_of_work(engine) as session:
        for table in tables:
            if "published_at" in table.c:
                stmt = delete(table).where(table.c.published_at.is_not(None), table.c.published_at < cutoff)
            elif "processed_at" in table.c:
                stmt = delete(table).where(table.c.processed_at < cutoff)
            else:
                raise ValueError(f"{table.fullname} is neither an outbox nor an inbox")
            result = await session.execute(stmt)
            total += int(getattr(result, "rowcount", 0))
    return total


def _inboxes(outboxes: list[Table]) -> list[Table]:
    """The inbox tables in the outboxes' schemas (the same metadata holds both)."""
    found = []
    for outbox in outboxes:
        inbox = outbox.metadata.tables.get(f"{outbox.schema}.inbox")
        if inbox is not None:
            found.append(inbox)
    return found


async def run_relay(
    engine: AsyncEngine,
    outboxes: list[Table],
    producer: AIOKafkaProducer,
    *,
    poll_seconds: float,
    batch: int,
    stop: asyncio.Event,
    settings: Settings | None = None,
) -> None:
    """Drain every outbox until ``stop`` is set; prune old rows now and then.

    Each outbox is drained on its own: an error in one is logged and the others go on. The loop is
    registered as ``relay`` (:data:`shared.metrics.LOOPS`) and beats once a pass; with
    ``relay_port`` set, ``/healthz`` and ``/metrics`` are served on it for the life of the loop."""
    s = settings or get_settings()
    configure_tracing("relay", s)
    beat = register_loop(Loop("relay", "relay", asyncio.current_task()))
    status = await _serve_status(s, engine, outboxes, beat) if s.relay_port else None
    try:
        await _relay_loop(engine, outboxes, producer, poll_seconds, batch, stop, s, beat)
    finally:
        unregister_loop(beat)
        if status is not None:
            await status.cleanup()


async def _serve_status(s: Settings, engine: AsyncEngine, outboxes: list[Table], beat: Loop) -> Any:
    """The relay's ``/healthz`` and ``/metrics`` (aiohttp: it touches no signal handler)."""
    from aiohttp import web
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from shared.metrics import outbox_lag, render

    async def healthz(_: web.Request) -> web.Response:
        ok = beat.alive(s.consumer_stall_seconds)
        body = {"status": "ok" if ok else "unavailable", "checks": {"relay": "ok" if ok else "down"}}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = await render("relay", engine, [outbox_lag(o) for o in outboxes])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, s.host, s.relay_port).start()
    log.info("relay: /healthz and /metrics on %s:%d", s.host, s.relay_port)
    return runner


async def _relay_loop(
    engine: AsyncEngine,
    outboxes: list[Table],
    producer: AIOKafkaProducer,
    poll_seconds: float,
    batch: int,
    stop: asyncio.Event,
    s: Settings,
    beat: Loop,
) -> None:
    loop = asyncio.get_running_loop()
    next_prune = loop.time()
    backoff = poll_seconds
    while not stop.is_set():
        beat.beat()
        published = 0
        broker_down = False
        for outbox in outboxes:
            try:
                published += await relay_once(engine, outbox, producer, batch, s)
            except BrokerUnavailable as exc:
                log.warning("relay: the broker does not answer, retrying in %.1fs: %s", backoff, exc)
                broker_down = True
                break
            except Exception as exc:
                log.warning("relay error on %s: %s", outbox.fullname, exc)
                broker_down = True  # e.g. the database: back off, but try every outbox
        if loop.time() >= next_prune:
            next_prune = loop.time() + s.relay_prune_interval_seconds
            try:
                pruned = await prune(
                    engine, [*outboxes, *_inboxes(outboxes)], timedelta(days=s.outbox_retention_days)
                )
                if pruned:
                    log.info("relay pruned %d published outbox / processed inbox row(s)", pruned)
            except Exception as exc:
                log.warning("relay: pruning failed: %s", exc)
        if broker_down:
            backoff = min(backoff * 2, 10.0)
        else:
            backoff = poll_seconds
            if published:
                log.info("relay published %d event(s)", published)
                continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        except TimeoutError:
            pass
