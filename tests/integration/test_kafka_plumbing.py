"""Outbox relay and consumer loop against the real broker and PostgreSQL: inbox de-duplication,
manual commits, and dead-lettering of poison messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from deploy.devstack import Stack
from services.dispute.models import inbox, outbox
from shared.db import get_engine, unit_of_work
from shared.events import DeadlineMissed, Envelope
from shared.kafka import make_producer
from shared.kafka.consumer import run_consumer
from shared.kafka.outbox import add_to_outbox, relay_once
from shared.settings import get_settings


def alert(claim_id: str) -> Envelope:
    payload = DeadlineMissed(
        deadline_name="open_negotiation_initiation_deadline",
        due_on=date(2026, 12, 15),
        payer_name="Acme",
        stage="forfeited",
        consequence="x",
    )
    return Envelope.wrap(payload, tenant_id="kafka-test", claim_id=claim_id)


async def create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        await admin.close()


async def read(
    bootstrap: str, topic: str, n: int, timeout: float = 30, until: Callable[[Any], bool] = lambda m: True
) -> list[Any]:
    """Read from the start of ``topic`` until ``n`` messages matching ``until`` have been seen."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"reader-{uuid.uuid4()}", auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < n:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    got.extend(m for m in messages if until(m))
    finally:
        await consumer.stop()
    return got


async def test_relay_publishes_each_outbox_row_once(stack: Stack) -> None:
    env = alert(f"R-{uuid.uuid4().hex[:8]}")
    async with unit_of_work() as session:
        assert await add_to_outbox(session, outbox, env)
        assert not await add_to_outbox(session, outbox, env)  # same event id: staged once
    producer = make_producer()
    await producer.start()
    try:
        published = 0
        while (n := await relay_once(get_engine(), outbox, producer, 500)) > 0:
            published += n
        assert published >= 1
        assert await relay_once(get_engine(), outbox, producer, 500) == 0  # nothing left
    finally:
        await producer.stop()
    on_topic = await read(
        stack.kafka,
        get_settings().topic_alerts,
        1,
        until=lambda m: m.key == f"kafka-test:{env.claim_id}".encode(),
    )
    assert Envelope.from_bytes(on_topic[-1].value).event_id == env.event_id  # type: ignore[attr-defined]
    async with get_engine().connect() as conn:
        row = (
            await conn.execute(select(outbox.c.published_at).where(outbox.c.event_id == env.event_id))
        ).one()
    assert row.published_at is not None


async def test_consumer_applies_once_and_dead_letters_poison(stack: Stack) -> None:
    topic = f"test.plumbing.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")
    # the handler's effect is a row in a table of its own, written in the inbox transaction
    md = MetaData()
    effects = Table(
        "effects_" + topic.replace(".", "_"),
        md,
        Column("event_id", String, primary_key=True),  # in public: no schema the migrations own
    )
    async with get_engine().begin() as conn:
        await conn.run_sync(md.create_all)

    calls: list[str] = []

    async def handler(session: AsyncSession, env: Envelope) -> None:
        if env.claim_id == "always-fails":
            raise RuntimeError("downstream is broken")
        calls.append(str(env.event_id))
        await session.execute(effects.insert().values(event_id=str(env.event_id)))

    good = alert("good")
    failing = alert("always-fails")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, good.to_bytes(), key=b"k")
        await producer.send_and_wait(topic, good.to_bytes(), key=b"k")  # redelivery
        await producer.send_and_wait(topic, b"{not an envelope", key=b"k")
        await producer.send_and_wait(topic, failing.to_bytes(), key=b"k")
    finally:
        await producer.stop()

    settings = get_settings().model_copy(update={"consumer_max_attempts": 2})
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            topic=topic,
            group_id=f"g-{topic}",
            inbox=inbox,
            handler=handler,
            engine=get_engine(),
            settings=settings,
            stop=stop,
        )
    )
    try:
        dead = await read(stack.kafka, f"{topic}.dlq", 2, timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)

    assert calls == [str(good.event_id)]
    async with get_engine().connect() as conn:
        assert (await conn.execute(select(effects.c.event_id))).scalars().all() == [str(good.event_id)]
    headers = [dict(m.headers) for m in dead]  # type: ignore[attr-defined]
    assert headers[0]["x-error-type"] == b"ValidationError"
    assert headers[1]["x-error-type"] == b"RuntimeError" and b"downstream is broken" in headers[1]["x-error"]
    assert headers[1]["x-original-topic"] == topic.encode()


async def test_after_a_broker_loses_its_data_the_outbox_publishes_again(stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.kafka.outbox import republish

    env = alert(f"B-{uuid.uuid4().hex[:8]}")
    async with unit_of_work() as session:
        await add_to_outbox(session, outbox, env)
    producer = make_producer()
    await producer.start()
    try:
        while await relay_once(get_engine(), outbox, producer, 500):
            pass
        assert await republish(get_engine(), outbox, datetime.now(UTC) - timedelta(minutes=1)) >= 1
        again = 0
        while n := await relay_once(get_engine(), outbox, producer, 500):
            again += n
        assert again >= 1
    finally:
        await producer.stop()
    key = f"kafka-test:{env.claim_id}".encode()
    copies = await read(stack.kafka, get_settings().topic_alerts, 2, until=lambda m: m.key == key)
    assert {Envelope.from_bytes(m.value).event_id for m in copies} == {
        env.event_id
    }  # same id: inboxes dedupe
