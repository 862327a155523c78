"""Prometheus metrics (issue 10 item 7): ``GET /metrics`` on every service, ``idrflow_`` prefix.

One registry per process (:data:`REGISTRY`), its metrics defined once at import: creating an app
again (the tests do, many times in one process) adds no collector, so there is never a
"Duplicated timeseries" error. Services label their series with ``service``.

Three kinds of series:

- counted as things happen: HTTP requests and their latency (by route template, never a raw path),
  consumer outcomes, dead letters, relay publishes, alert latency;
- set by the loops: consumer lag per topic and partition (the broker's end offset minus the group's
  committed offset, refreshed every few seconds by the consumer loop);
- read from PostgreSQL at scrape time (:class:`Scrape`): outbox lag, DLQ depth, deliveries; a scrape
  whose database query fails leaves those out and counts ``idrflow_scrape_errors_total``.

The Temporal SDK's own metrics (``temporal_*``) are forwarded into the same registry from the
process's ``MetricBuffer`` (:class:`TemporalMetrics`, installed by :func:`shared.runtime.temporal_runtime`),
so they are on the service's own ``/metrics``: no second port.
No label ever holds patient data or a claim id.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    import asyncio

    from fastapi import FastAPI

log = logging.getLogger(__name__)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "idrflow_http_requests",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "idrflow_http_request_duration_seconds",
    "HTTP request latency, by route template and status.",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CONSUMER_MESSAGES = Counter(
    "idrflow_consumer_messages",
    "Messages handled by a consumer, by outcome (applied, duplicate, dead-lettered, retry).",
    ["consumer", "topic", "outcome"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "idrflow_consumer_lag",
    "Messages not yet committed by the consumer group: end offset minus committed offset.",
    ["consumer", "topic", "partition"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "idrflow_dead_lettered",
    "Messages sent to <topic>.dlq, by consumer, topic and error class.",
    ["consumer", "topic", "error_type"],
    registry=REGISTRY,
)
RELAY_PUBLISHED = Counter(
    "idrflow_relay_published", "Outbox rows published by the relay.", ["outbox"], registry=REGISTRY
)
RELAY_FAILURES = Counter(
    "idrflow_relay_failures",
    "Outbox rows that failed to publish (charged an attempt).",
    ["outbox"],
    registry=REGISTRY,
)
ALERT_LATENCY = Histogram(
    "idrflow_alert_latency_seconds",
    "From an alert's due time (the reminder firing: the envelope's occurred_at) to its delivery.",
    ["channel"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
SCRAPE_ERRORS = Counter(
    "idrflow_scrape_errors", "Scrape-time database reads that failed.", ["service", "what"], registry=REGISTRY
)


def observe_alert_latency(seconds: float, channel: str = "all") -> None:
    """Record one alert delivered ``seconds`` after it was due (call when a delivery becomes sent)."""
    ALERT_LATENCY.labels(channel).observe(max(0.0, seconds))


def observe_alert_delivered(
    envelope: Mapping[str, Any], channel: str, sent_at: datetime | None = None
) -> None:
    """:func:`observe_alert_latency` for an alert envelope (its JSON) sent now (or at ``sent_at``):
    due is the envelope's ``occurred_at``, the instant the reminder fired in the workflow."""
    try:
        due = datetime.fromisoformat(str(envelope["occurred_at"]))
    except (KeyError, ValueError):
        return
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    observe_alert_latency(((sent_at or datetime.now(UTC)) - due).total_seconds(), channel)


# -- the Temporal SDK's metrics, forwarded from its buffer --------------------------------------
_TEMPORAL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_NOT_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _name(raw: str) -> str:
    name = _NOT_A_NAME.sub("_", raw)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"


class TemporalMetrics:
    """The Temporal SDK's metric updates (``temporal_*``: requests, task latencies, slots, ...) drained
    from its ``MetricBuffer`` and kept as Prometheus counters, gauges and histograms (durations in
    seconds). Drained on every scrape and every few seconds, so the buffer never fills."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.buffer: Any = None
        self._kinds: dict[str, tuple[int, str]] = {}
        self._series: dict[str, dict[tuple[tuple[str, str], ...], Any]] = {}

    def attach(self, buffer: Any) -> None:
        first = self.buffer is None
        self.buffer = buffer
        if first:
            threading.Thread(target=self._drain_forever, name="temporal-metrics", daemon=True).start()

    def _drain_forever(self) -> None:
        while True:
            time.sleep(5)
            self.drain()

    def drain(self) -> None:
        if self.buffer is None:
            return
        with self._lock:
            try:
                updates = self.buffer.retrieve_updates()
            except Exception:  # no runtime yet
                return
            for u in updates:
                name = _name(u.metric.name)
                kind = int(u.metric.kind)
                self._kinds.setdefault(name, (kind, u.metric.description or u.metric.name))
                labels = tuple(sorted((_name(str(k)), str(v)) for k, v in u.attributes.items()))
                series = self._series.setdefault(name, {})
                if kind == 0:  # counter: a delta
                    series[labels] = series.get(labels, 0) + u.value
                elif kind == 1:  # gauge
                    series[labels] = u.value
                else:  # histogram: one observation
                    h = series.setdefault(labels, [0] * len(_TEMPORAL_BUCKETS) + [0, 0.0])
                    for i, bound in enumerate(_TEMPORAL_BUCKETS):
                        if u.value <= bound:
                            h[i] += 1
                    h[-2] += 1
                    h[-1] += float(u.value)

    def collect(self) -> Iterator[Metric]:
        self.drain()
        with self._lock:
            for name, (kind, doc) in sorted(self._kinds.items()):
                series = self._series.get(name, {})
                if kind == 0:
                    base = name.removesuffix("_total")
                    metric = Metric(base, doc, "counter")
                    for labels, value in series.items():
                        metric.add_sample(f"{base}_total", dict(labels), float(value))
                elif kind == 1:
                    metric = Metric(name, doc, "gauge")
                    for labels, value in series.items():
                        metric.add_sample(name, dict(labels), float(value))
                else:
                    metric = Metric(name, doc, "histogram")
                    for labels, h in series.items():
                        for i, bound in enumerate(_TEMPORAL_BUCKETS):
                            metric.add_sample(
                                f"{name}_bucket", {**dict(labels), "le": str(float(bound))}, h[i]
                            )
                        metric.add_sample(f"{name}_bucket", {**dict(labels), "le": "+Inf"}, h[-2])
                        metric.add_sample(f"{name}_count", dict(labels), h[-2])
                        metric.add_sample(f"{name}_sum", dict(labels), h[-1])
                yield metric


TEMPORAL = TemporalMetrics()
REGISTRY.register(TEMPORAL)


# -- the loops a process runs, for /healthz and idrflow_loop_up -----------------------------------
@dataclass
class Loop:
    """A background loop (consumer, relay): its task and when it last made progress."""

    name: str
    kind: str
    task: asyncio.Task[Any] | None = None
    last_beat: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self, stall_seconds: float | None = None) -> bool:
        if self.task is None or self.task.done():
            return False
        return stall_seconds is None or time.monotonic() - self.last_beat <= stall_seconds


LOOPS: dict[str, Loop] = {}


def register_loop(loop: Loop) -> Loop:
    LOOPS[loop.name] = loop
    return loop


def unregister_loop(loop: Loop) -> None:
    if LOOPS.get(loop.name) is loop:
        del LOOPS[loop.name]


def loop_check(name: str, stall_seconds: float | None = None) -> Callable[[], Awaitable[bool]]:
    """A /healthz check: the loop named ``name`` runs (and, with ``stall_seconds``, is not stuck)."""

    async def check() -> bool:
        loop = LOOPS.get(name)
        return loop is not None and loop.alive(stall_seconds)

    return check


# -- scrape-time series from PostgreSQL -----------------------------------------------------------
Scrape = Callable[[AsyncConnection], Awaitable[list[Metric]]]


def outbox_lag(outbox: Table) -> Scrape:
    """Unpublished (and parked) rows of an outbox and the age of its oldest unpublished row."""
    name = outbox.schema or outbox.name

    async def scrape(conn: AsyncConnection) -> list[Metric]:
        waiting = outbox.c.published_at.is_(None)
        row = (
            await conn.execute(
                select(
                    func.count().filter(outbox.c.parked_at.is_(None)),
                    func.count().filter(outbox.c.parked_at.is_not(None)),
                    func.extract("epoch", func.now() - func.min(outbox.c.created_at)),
                ).where(waiting)
            )
        ).one()
        unpublished = GaugeMetricFamily(
            "idrflow_outbox_unpublished",
            "Outbox rows waiting to be published (not parked).",
            labels=["outbox"],
        )
        unpublished.add_metric([name], float(row[0]))
        parked = GaugeMetricFamily(
            "idrflow_outbox_parked",
            "Outbox rows the relay gave up on (idrflow outbox unpark).",
            labels=["outbox"],
        )
        parked.add_metric([name], float(row[1]))
        age = GaugeMetricFamily(
            "idrflow_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none).",
            labels=["outbox"],
        )
        age.add_metric([name], float(row[2] or 0.0))
        return [unpublished, parked, age]

    return scrape


def dlq_depth(dead_letters: Table) -> Scrape:
    """Dead letters not replayed, by topic."""
    schema = dead_letters.schema or ""

    async def scrape(conn: AsyncConnection) -> list[Metric]:
        family = GaugeMetricFamily(
            "idrflow_dlq_depth",
            "Dead letters not replayed yet, by schema and topic.",
            labels=["schema", "topic"],
        )
        rows = await conn.execute(
            select(dead_letters.c.topic, func.count())
            .where(dead_letters.c.replayed_at.is_(None))
            .group_by(dead_letters.c.topic)
        )
        for topic, count in rows.all():
            family.add_metric([schema, topic], float(count))
        return [family]

    return scrape


def deliveries_by_status(deliveries: Table) -> Scrape:
    """The notifier's delivery log, counted by channel and status."""

    async def scrape(conn: AsyncConnection) -> list[Metric]:
        family = GaugeMetricFamily(
            "idrflow_deliveries",
            "Alert and notice deliveries, by channel and status.",
            labels=["channel", "status"],
        )
        rows = await conn.execute(
            select(deliveries.c.channel, deliveries.c.status, func.count()).group_by(
                deliveries.c.channel, deliveries.c.status
            )
        )
        for channel, status, count in rows.all():
            family.add_metric([channel, status], float(count))
        return [family]

    return scrape


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _loops_up() -> Metric:
    family = GaugeMetricFamily("idrflow_loop_up", "1 while a background loop runs.", labels=["kind", "loop"])
    for loop in LOOPS.values():
        family.add_metric([loop.kind, loop.name], 1.0 if loop.alive() else 0.0)
    return family


async def render(service: str, engine: AsyncEngine | None, scrapes: Iterable[Scrape]) -> bytes:
    """The exposition text: the process registry, the loops, then the scrape-time families."""
    TEMPORAL.drain()
    families: list[Metric] = [_loops_up()]
    scrapes = list(scrapes)
    if scrapes and engine is not None:
        for scrape in scrapes:
            try:
                async with engine.connect() as conn:
                    families += await scrape(conn)
            except Exception as exc:
                SCRAPE_ERRORS.labels(service, getattr(scrape, "__qualname__", "scrape")).inc()
                log.warning("metrics: a scrape-time read failed: %s: %s", type(exc).__name__, exc)
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_Families(families))
    return generate_latest(REGISTRY) + generate_latest(extra)


def install_metrics(
    app: FastAPI,
    service: str,
    scrapes: Iterable[Scrape] = (),
    engine: Callable[[], AsyncEngine] | None = None,
) -> None:
    """``GET /metrics`` (unauthenticated, like /healthz), the request metrics and spans, tracing."""
    from fastapi import Response

    from shared.http import ObserveRequests
    from shared.tracing import configure_tracing

    configure_tracing(service)
    app.add_middleware(ObserveRequests, service=service)
    # ObserveRequests makes the server span: FastAPI's own (on by itself once a tracer provider is
    # set) would add three more spans to every request, the same server span twice in each trace
    telemetry = getattr(app, "_telemetry", None)
    if isinstance(telemetry, dict):
        telemetry["tracing"] = False
    scrapes = list(scrapes)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        body = await render(service, engine() if engine else None, scrapes)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
