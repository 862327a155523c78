"""Notifier isolation (issue 10 item 3): a tenant whose Slack webhook never answers does not delay
other tenants' alerts. The alert consumer only records deliveries and commits its offset; the
sender sends them with bounded timeouts, a few at a time per target, and retries a failure from the
durable schedule in the deliveries table, which survives a restart and is sent exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from services.notifier.channels import default_channels
from services.notifier.consumer import CONSUMER, AlertHandler
from services.notifier.models import deliveries, inbox
from services.notifier.sender import DeliverySender, sending
from services.notifier.service import render_alert
from shared.db import get_engine, unit_of_work
from shared.events import Envelope
from shared.kafka import make_producer
from shared.kafka.consumer import run_consumer
from shared.settings import Settings, get_settings
from tests.integration.test_kafka_plumbing import create_topics
from tests.unit.test_notifier_render import approaching

Step = tuple[int, dict[str, str], str] | None  # an answer, or None: never answer


@dataclass
class Webhook:
    """A local HTTP endpoint standing in for a Slack webhook: answers each POST with the next step
    of ``script`` (then ``then``); a ``None`` step accepts the request and never answers."""

    script: list[Step] = field(default_factory=list)
    then: Step = (200, {}, "ok")
    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _hanging: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/services/T000/B000/{uuid.uuid4().hex}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next(
                int(line.split(":", 1)[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            )
            body = json.loads(await reader.readexactly(length))
            self.posts.append((time.monotonic(), body))
            step = self.script.pop(0) if self.script else self.then
            if step is None:
                self._hanging.append(writer)
                await asyncio.Event().wait()  # accepted, never answered
                return
            status, headers, text = step
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {len(text)}\r\n"
                f"connection: close\r\n{extra}\r\n{text}".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for w in self._hanging:
            w.close()
        if self._server is not None:
            self._server.close()


@asynccontextmanager
async def webhook(*script: Step, then: Step = (200, {}, "ok")) -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook(list(script), then)
    url = await hook.start()
    try:
        yield hook, url
    finally:
        await hook.stop()


async def tenant_with_slack(stack: Stack, prefix: str, url: str) -> str:
    tenant = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await seed_tenant(stack.database_url, tenant, f"{prefix} Co", f"key-{tenant}", None, url)
    return tenant


def alert_for(tenant: str, left: int = 2) -> Envelope:
    return approaching(left).model_copy(
        update={"tenant_id": tenant, "event_id": uuid.uuid4(), "claim_id": f"CLM-{uuid.uuid4().hex[:6]}"}
    )


async def delivery(engine: AsyncEngine, event_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(deliveries).where(deliveries.c.event_id == event_id))).one_or_none()


def slack_text(env: Envelope) -> str:
    return render_alert(env, Settings()).slack_text


async def record(settings: Settings, env: Envelope) -> None:
    """What the alert consumer does with an alert, without the broker."""
    async with unit_of_work(get_engine()) as session:
        await AlertHandler(settings, ["email", "slack"])(session, env)


async def test_a_webhook_that_never_answers_does_not_delay_other_tenants(stack: Stack) -> None:
    settings = get_settings().model_copy(
        update={"slack_timeout_seconds": 2.0, "notifier_retry_base_seconds": 60.0}
    )
    topic = f"test.alerts.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")  # one partition: A's alert is ahead of B's
    group = f"{CONSUMER}-{uuid.uuid4().hex[:6]}"
    engine = get_engine()
    async with webhook(then=None) as (hanging, dead_url), webhook() as (healthy, ok_url):
        a = await tenant_with_slack(stack, "slow", dead_url)
        b = await tenant_with_slack(stack, "fast", ok_url)
        sender = DeliverySender(engine, settings, default_channels(settings), tenants=[a, b])
        handler = AlertHandler(settings, ["email", "slack"], on_commit=sender.wake)
        stop = asyncio.Event()
        producer = make_producer(settings)
        await producer.start()
        consumer = asyncio.create_task(
            run_consumer(
                topic=topic,
                group_id=group,
                inbox=inbox,
                handler=handler,
                engine=engine,
                settings=settings,
                stop=stop,
            )
        )
        try:
            async with sending(sender):
                warm = alert_for(b)  # the consumer has joined its group once this is delivered
                await producer.send_and_wait(topic, warm.to_bytes(), key=b"k")
                async with asyncio.timeout(90):
                    while (row := await delivery(engine, warm.event_id)) is None or row.status != "sent":
                        await asyncio.sleep(0.05)

                alert_a, alert_b = alert_for(a), alert_for(b)
                await producer.send_and_wait(topic, alert_a.to_bytes(), key=b"k")
                published = time.monotonic()
                await producer.send_and_wait(topic, alert_b.to_bytes(), key=b"k")
                async with asyncio.timeout(30):
                    while (row := await delivery(engine, alert_b.event_id)) is None or row.status != "sent":
                        await asyncio.sleep(0.02)
                latency = time.monotonic() - published
                # the bound: B's alert is out within a second of being published
                assert latency < 1.0, f"tenant B's alert took {latency:.2f} s behind a dead webhook"
                assert [p["text"] for _, p in healthy.posts].count(slack_text(alert_b)) == 1

                async with asyncio.timeout(30):  # A's delivery times out and waits for its retry
                    while (row := await delivery(engine, alert_a.event_id)) is None or row.attempts < 1:
                        await asyncio.sleep(0.1)
                    while row.status != "pending":
                        await asyncio.sleep(0.1)
                        row = await delivery(engine, alert_a.event_id)
                assert row.attempts >= 1 and row.next_attempt_at > datetime.now(UTC)
                assert "no answer within" in row.detail and row.sent_at is None
                assert len(hanging.posts) == 1  # called once, not again before its next attempt
        finally:
            stop.set()
            await asyncio.wait_for(consumer, 20)
            await producer.stop()

    reader = AIOKafkaConsumer(bootstrap_servers=stack.kafka, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        committed = await reader.committed(TopicPartition(topic, 0))
    finally:
        await reader.stop()
    assert committed == 3  # the consumer moved past A's alert without waiting for its webhook


async def test_the_retry_schedule_survives_a_restart_and_sends_once(stack: Stack) -> None:
    settings = get_settings().model_copy(
        update={"notifier_retry_base_seconds": 0.4, "notifier_poll_seconds": 0.05}
    )
    async with webhook((503, {}, "service_unavailable")) as (hook, url):
        tenant = await tenant_with_slack(stack, "restart", url)
        env = alert_for(tenant)
        await record(settings, env)
        first = create_async_engine(stack.database_url)
        before = DeliverySender(first, settings, default_channels(settings), tenants=[tenant])
        assert await before.run_once() == 1
        row = await delivery(first, env.event_id)
        assert (row.status, row.attempts) == ("pending", 1) and "503" in row.detail
        await first.dispose()  # the process is gone; its schedule is in the table

        # two new notifier processes (own engines, own senders) pick the schedule up: one sends
        engines = [create_async_engine(stack.database_url) for _ in range(2)]
        senders = [DeliverySender(e, settings, default_channels(settings), tenants=[tenant]) for e in engines]
        try:
            async with sending(senders[0]), sending(senders[1]):
                async with asyncio.timeout(30):
                    while (row := await delivery(engines[0], env.event_id)).status != "sent":
                        await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # a second send would show now
        finally:
            for e in engines:
                await e.dispose()
    assert len(hook.posts) == 2  # the refused try and exactly one delivery
    assert row.attempts == 2 and row.provider_message_id == f"slack:{env.event_id}"
