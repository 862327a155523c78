"""Observability against the real stack (issue 10 item 7): /metrics on every service, one trace from
the HTTP request through the outbox, Kafka, the consumer and the workflow, /healthz reporting a dead
consumer loop, and the DeadLetter operator alert (no patient data) in the consumer's outbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deploy.devstack import Stack
from services.dispute.models import inbox as dispute_inbox
from services.dispute.models import outbox as dispute_outbox
from services.intake.models import outbox as intake_outbox
from shared.db import get_engine
from shared.events import DeadLetter, Envelope, deterministic_event_id
from shared.kafka import make_producer
from shared.kafka.consumer import PermanentError, process_message, run_consumer
from shared.kafka.outbox import relay_once
from shared.metrics import LOOPS
from shared.settings import get_settings
from shared.tracing import provider
from tests.integration.conftest import claim
from tests.integration.test_dead_letters import alert
from tests.integration.test_kafka_plumbing import create_topics, read

SERVICES = ("intake", "negotiation", "dispute", "notifier")


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider("tests").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


def client_for(app: Any, stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://svc",
        headers={"Authorization": f"Bearer {stack.api_key}"},  # type: ignore[attr-defined]
    )


def create(service: str) -> Any:
    module = __import__(f"services.{service}.app", fromlist=["create_app"])
    return module.create_app()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition ``text`` (labels given must match), or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def metrics_of(app: Any, stack: Stack) -> str:
    async with client_for(app, stack) as c:
        r = await c.get("/metrics", headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_every_service_answers_metrics_with_its_families(stack: Stack) -> None:
    expected = {
        "intake": ["idrflow_outbox_unpublished", "idrflow_outbox_oldest_unpublished_age_seconds"],
        "negotiation": ["idrflow_outbox_unpublished", "idrflow_dlq_depth"],
        "dispute": ["idrflow_outbox_unpublished", "idrflow_dlq_depth"],
        "notifier": ["idrflow_outbox_unpublished", "idrflow_dlq_depth", "idrflow_deliveries"],
    }
    for service in SERVICES:
        app = create(service)
        async with client_for(app, stack) as c:
            assert (await c.get("/v1/nothing-here")).status_code in (401, 404)
        text = await metrics_of(app, stack)
        for family in [*expected[service], "idrflow_http_requests_total", "idrflow_alert_latency_seconds"]:
            assert f"# TYPE {family} " in text, (service, family)
        assert sample(text, "idrflow_outbox_unpublished", outbox=service) is not None
        # a path nobody routes is one bounded label, never the raw path
        assert "/v1/nothing-here" not in text
        assert sample(text, "idrflow_http_requests_total", service=service, route="unmatched") is not None


async def test_a_claim_post_is_counted_by_route_template_and_waits_in_the_outbox_gauge(stack: Stack) -> None:
    app = create("intake")
    cid = f"OBS-{uuid.uuid4().hex[:8]}"
    before = sample(await metrics_of(app, stack), "idrflow_http_requests_total", route="/v1/claims") or 0.0
    async with client_for(app, stack) as c:
        r = await c.post("/v1/claims", json=claim(claim_id=cid), headers={"Idempotency-Key": cid})
    assert r.status_code == 202, r.text
    text = await metrics_of(app, stack)
    labels = {"service": "intake", "method": "POST", "route": "/v1/claims", "status": "202"}
    assert sample(text, "idrflow_http_requests_total", **labels) == before + 1
    assert (sample(text, "idrflow_http_request_duration_seconds_count", **labels) or 0) >= 1
    assert cid not in text  # no ids in labels
    assert (sample(text, "idrflow_outbox_unpublished", outbox="intake") or 0) >= 1


async def test_one_claim_is_one_trace_from_the_post_through_kafka_to_the_workflow(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    from services.dispute.consumer import ClaimEventHandler
    from services.dispute.worker import build_worker
    from shared.temporal import connect

    spans.clear()
    cid = f"TRC-{uuid.uuid4().hex[:8]}"
    async with client_for(create("intake"), stack) as c:
        r = await c.post("/v1/claims", json=claim(claim_id=cid), headers={"Idempotency-Key": cid})
    assert r.status_code == 202, r.text
    server = [s for s in spans.get_finished_spans() if s.name == "POST /v1/claims"]
    assert server, [s.name for s in spans.get_finished_spans()]
    trace_id = format(server[-1].context.trace_id, "032x")
    assert server[-1].attributes is not None and server[-1].attributes["http.route"] == "/v1/claims"

    # the outbox row keeps the request's traceparent beside the envelope
    async with get_engine().connect() as conn:
        stored = (
            await conn.execute(
                select(intake_outbox.c.envelope).where(intake_outbox.c.message_key == f"demo:{cid}")
            )
        ).scalar_one()
    assert trace_id in stored["_headers"]["traceparent"]

    producer = make_producer()
    await producer.start()
    try:
        while await relay_once(get_engine(), intake_outbox, producer, 500):
            pass
    finally:
        await producer.stop()
    settings = get_settings()
    [msg] = await read(stack.kafka, settings.topic_claims, 1, until=lambda m: m.key == f"demo:{cid}".encode())
    headers = dict(msg.headers)
    assert trace_id in headers["traceparent"].decode()

    queue = f"obs-{uuid.uuid4().hex[:8]}"
    mine = settings.model_copy(update={"dispute_task_queue": queue, "negotiation_task_queue": f"{queue}-n"})
    client = await connect(mine)
    worker = build_worker(client, get_engine(), mine)
    running = asyncio.create_task(worker.run())
    try:
        outcome = await process_message(
            msg,
            engine=get_engine(),
            inbox=dispute_inbox,
            consumer_name=f"obs-{queue}",
            handler=ClaimEventHandler(client, mine),
            producer=producer,
        )
        assert outcome == "applied"
        async with asyncio.timeout(60):  # the workflow runs and its activity records the claim
            while True:
                names = {
                    s.name
                    for s in spans.get_finished_spans()
                    if format(s.context.trace_id, "032x") == trace_id
                }
                if any(n.startswith("RunActivity:") for n in names) and any(
                    n.startswith("RunWorkflow:") for n in names
                ):
                    break
                await asyncio.sleep(0.2)
        async with asyncio.timeout(30):  # ... and the events it writes carry the same trace on
            while True:
                async with get_engine().connect() as conn:
                    rows = (
                        (
                            await conn.execute(
                                select(dispute_outbox.c.envelope).where(
                                    dispute_outbox.c.message_key == f"demo:{cid}"
                                )
                            )
                        )
                        .scalars()
                        .all()
                    )
                if rows:
                    break
                await asyncio.sleep(0.2)
    finally:
        await worker.shutdown()
        with suppress(Exception):
            await running
    assert all(trace_id in r["_headers"]["traceparent"] for r in rows)
    assert {f"publish {settings.topic_claims}", f"process {settings.topic_claims}"} <= names
    assert "SignalWithStartWorkflow:ClaimLifecycleWorkflow" in names
    for s in spans.get_finished_spans():  # no patient data in any span
        assert "Jane Roe" not in json.dumps(dict(s.attributes or {}))


@pytest.fixture
async def dispute_on_a_test_topic(stack: Stack) -> AsyncIterator[str]:
    """The dispute service's settings pointed at a topic and task queue of its own."""
    topic = f"test.obs.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")
    saved = dict(os.environ)
    os.environ.update(
        {"IDRFLOW_TOPIC_CLAIMS": topic, "IDRFLOW_DISPUTE_TASK_QUEUE": f"obs-{uuid.uuid4().hex[:8]}"}
    )
    get_settings.cache_clear()
    try:
        yield topic
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


async def test_healthz_is_503_when_the_consumer_loop_dies(stack: Stack, dispute_on_a_test_topic: str) -> None:
    from services.dispute.consumer import CONSUMER

    app = create("dispute")
    async with app.router.lifespan_context(app), client_for(app, stack) as c:
        async with asyncio.timeout(60):
            while (r := await c.get("/healthz")).status_code != 200:
                await asyncio.sleep(0.3)
        assert r.json()["checks"]["consumer"] == "ok"
        loop = LOOPS[CONSUMER]
        assert loop.task is not None
        loop.task.cancel()
        with suppress(asyncio.CancelledError):
            await loop.task
        r = await c.get("/healthz")
        assert r.status_code == 503
        assert r.json()["checks"] == r.json()["checks"] | {"consumer": "down", "worker": "ok"}
        text = (await c.get("/metrics")).text
        assert sample(text, "idrflow_loop_up", loop=CONSUMER) == 0.0
        assert "# TYPE temporal_" in text  # the Temporal SDK's own metrics, forwarded


async def test_a_dead_letter_is_counted_and_raises_a_deadletter_alert_without_patient_data(
    stack: Stack,
) -> None:
    topic = f"test.obsdlq.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")
    phi = b'{"patient_name": "Jane Roe", "member_id": "MEM-778899", "date_of_birth": "1980-02-03"}'
    poison = alert("C-obs")

    async def handler(session: AsyncSession, env: Envelope) -> None:
        raise PermanentError("claim C-obs for Jane Roe is not known")

    from tests.integration.test_dead_letters import _send

    await _send(stack.kafka, topic, phi, poison.to_bytes())
    group = f"g-{topic}"
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            topic=topic,
            group_id=group,
            inbox=dispute_inbox,
            handler=handler,
            engine=get_engine(),
            settings=get_settings(),
            stop=stop,
        )
    )
    try:
        await read(stack.kafka, f"{topic}.dlq", 2, timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)

    ids = [deterministic_event_id("dead-letter", group, topic, "0", str(offset)) for offset in (0, 1)]
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(
                select(dispute_outbox.c.envelope, dispute_outbox.c.topic, dispute_outbox.c.tenant_id).where(
                    dispute_outbox.c.event_id.in_(ids)
                )
            )
        ).all()
    assert len(rows) == 2 and {r.topic for r in rows} == {get_settings().topic_alerts}
    for r in rows:
        text = json.dumps(r.envelope)
        assert "Jane Roe" not in text and "MEM-778899" not in text and "1980-02-03" not in text
        env = Envelope.model_validate({k: v for k, v in r.envelope.items() if k != "_headers"})
        payload = env.parse_payload()
        assert isinstance(payload, DeadLetter) and payload.topic == topic and payload.consumer == group
    by_type = {
        p.error_type: (p, env.tenant_id)
        for r in rows
        for env in [Envelope.model_validate({k: v for k, v in r.envelope.items() if k != "_headers"})]
        for p in [env.parse_payload()]
        if isinstance(p, DeadLetter)
    }
    assert by_type["ValidationError"][1] == "unknown"
    assert by_type["PermanentError"][0].original_event_id == poison.event_id
    assert by_type["PermanentError"][1] == "dlq-test"

    text = await metrics_of(create("dispute"), stack)
    assert sample(text, "idrflow_dlq_depth", schema="dispute", topic=topic) == 2.0
    assert sample(text, "idrflow_dead_lettered_total", consumer=group, error_type="ValidationError") == 1.0
    assert sample(text, "idrflow_consumer_messages_total", consumer=group, outcome="dead-lettered") == 2.0
