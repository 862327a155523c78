"""Consumers against the real broker and PostgreSQL: a transient failure is retried until it passes
and never dead-lettered; a poison message is dead-lettered (topic and table) and replayed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import date

from aiokafka import AIOKafkaProducer
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from deploy.devstack import Stack
from services.dispute.models import inbox, outbox
from services.dlq_cli import list_dead_letters, replay_dead_letter, show_dead_letter
from shared.db import dead_letters_table, get_engine
from shared.events import DeadlineMissed, Envelope
from shared.kafka import make_producer
from shared.kafka.consumer import PermanentError, classify, run_consumer
from shared.kafka.outbox import relay_once
from shared.settings import get_settings
from tests.integration.test_kafka_plumbing import create_topics, read

dead_letters = dead_letters_table("dispute")


def alert(claim_id: str) -> Envelope:
    payload = DeadlineMissed(
        deadline_name="open_negotiation_initiation_deadline",
        due_on=date(2026, 12, 15),
        payer_name="Acme",
        stage="forfeited",
        consequence="x",
    )
    return Envelope.wrap(payload, tenant_id="dlq-test", claim_id=claim_id)


def test_classify() -> None:
    assert classify(OperationalError("select 1", {}, ConnectionResetError("reset"))) == "transient"
    assert classify(ConnectionRefusedError()) == "transient"
    assert classify(TimeoutError()) == "transient"
    assert classify(PermanentError("no")) == "permanent"
    assert classify(RuntimeError("?")) == "unknown"
    assert classify(FileNotFoundError("template")) == "unknown"


async def _effects_table(topic: str) -> Table:
    md = MetaData()
    effects = Table("effects_" + topic.replace(".", "_"), md, Column("event_id", String, primary_key=True))
    async with get_engine().begin() as conn:
        await conn.run_sync(md.create_all)
    return effects


async def _send(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"k")
    finally:
        await producer.stop()


async def test_a_transient_failure_is_retried_until_it_passes_and_never_dead_lettered(stack: Stack) -> None:
    topic = f"test.transient.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")
    effects = await _effects_table(topic)
    calls: list[str] = []

    async def handler(session: AsyncSession, env: Envelope) -> None:
        calls.append(str(env.event_id))
        if len(calls) <= 2:  # the database "goes away" twice
            raise OperationalError("insert", {}, ConnectionResetError("connection reset"))
        await session.execute(effects.insert().values(event_id=str(env.event_id)))

    env = alert("transient")
    await _send(stack.kafka, topic, env.to_bytes())
    # consumer_max_attempts=1: were the failure not transient, the first one would dead-letter it
    settings = get_settings().model_copy(
        update={"consumer_max_attempts": 1, "consumer_retry_base_seconds": 0.05}
    )
    stop = asyncio.Event()
    group = f"g-{topic}"
    task = asyncio.create_task(
        run_consumer(
            topic=topic,
            group_id=group,
            inbox=inbox,
            handler=handler,
            engine=get_engine(),
            settings=settings,
            stop=stop,
        )
    )
    try:
        async with asyncio.timeout(60):
            while True:
                async with get_engine().connect() as conn:
                    done = (await conn.execute(select(effects.c.event_id))).scalars().all()
                if done:
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # anything more would show now
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert calls == [str(env.event_id)] * 3
    assert done == [str(env.event_id)]
    async with get_engine().connect() as conn:
        dead = (await conn.execute(select(dead_letters.c.id).where(dead_letters.c.consumer == group))).all()
    assert dead == []


async def test_a_poison_message_is_dead_lettered_listed_and_replayed(stack: Stack) -> None:
    topic = f"test.poison.{uuid.uuid4().hex[:6]}"
    await create_topics(stack.kafka, topic, f"{topic}.dlq")
    effects = await _effects_table(topic)
    broken = True

    async def handler(session: AsyncSession, env: Envelope) -> None:
        if broken:
            raise PermanentError("claim C-poison is not known to this tenant")
        await session.execute(effects.insert().values(event_id=str(env.event_id)))

    env = alert("C-poison")
    await _send(stack.kafka, topic, b"{not an envelope", env.to_bytes())
    settings = get_settings().model_copy(update={"consumer_retry_base_seconds": 0.05})
    group = f"g-{topic}"

    def start(stop: asyncio.Event) -> asyncio.Task[None]:
        return asyncio.create_task(
            run_consumer(
                topic=topic,
                group_id=group,
                inbox=inbox,
                handler=handler,
                engine=get_engine(),
                settings=settings,
                stop=stop,
            )
        )

    stop = asyncio.Event()
    task = start(stop)
    try:
        on_dlq = await read(stack.kafka, f"{topic}.dlq", 2, timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert [dict(m.headers)["x-error-type"] for m in on_dlq] == [b"ValidationError", b"PermanentError"]

    rows = [d for d in await list_dead_letters(get_engine(), "dispute") if d["topic"] == topic]
    assert [(d["error_type"], d["event_id"], d["claim_id"]) for d in rows] == [
        ("ValidationError", None, None),
        ("PermanentError", str(env.event_id), "C-poison"),
    ]
    undecodable, poison = rows
    shown = await show_dead_letter(get_engine(), uuid.UUID(poison["id"]))
    assert shown is not None and shown["payload"]["event_id"] == str(env.event_id)
    assert "not known" in shown["error"]

    # the operator's view, through the CLI
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "dlq", "list", "--service", "dispute", "--json"],
        env={**os.environ, "DATABASE_URL": stack.database_url},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert {poison["id"], undecodable["id"]} <= {d["id"] for d in json.loads(out.stdout)}

    # an undecodable message cannot be replayed; the envelope can, once the cause is fixed
    replay = subprocess.run(
        [sys.executable, "-m", "services.cli", "dlq", "replay", undecodable["id"]],
        env={**os.environ, "DATABASE_URL": stack.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 1 and "not an envelope" in replay.stderr
    broken = False
    assert await replay_dead_letter(get_engine(), uuid.UUID(poison["id"])) == "dispute"
    producer = make_producer()
    await producer.start()
    try:
        while await relay_once(get_engine(), outbox, producer, 500):
            pass
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = start(stop)
    try:
        async with asyncio.timeout(60):
            while True:
                async with get_engine().connect() as conn:
                    done = (await conn.execute(select(effects.c.event_id))).scalars().all()
                if done:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert done == [str(env.event_id)]
    left = [d["id"] for d in await list_dead_letters(get_engine(), "dispute") if d["topic"] == topic]
    assert left == [undecodable["id"]]  # the replayed one is marked
