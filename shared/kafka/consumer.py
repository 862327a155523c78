"""The consumer loop: inbox de-duplication, manual commits after the database commit, DLQ.

For each message: record ``(consumer, event_id)`` in the inbox and apply the handler in one
transaction; commit the Kafka offset only after that transaction commits. A replayed event finds
its inbox row and is skipped. A message that cannot be parsed, or whose handler keeps failing after
``max_attempts``, goes to ``<topic>.dlq`` with the error in its headers, and the loop moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import unit_of_work
from shared.events import Envelope
from shared.kafka import make_producer
from shared.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class PermanentError(Exception):
    """The event can never be applied: send it to the DLQ without retrying."""


async def _apply(
    engine: AsyncEngine, inbox: Table, consumer_name: str, env: Envelope, handler: Handler
) -> bool:
    async with unit_of_work(engine) as session:
        result = await session.execute(
            insert(inbox)
            .values(consumer=consumer_name, event_id=env.event_id)
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        if result.first() is None:
            return False
        await handler(session, env)
        return True


async def _dead_letter(
    producer: AIOKafkaProducer, msg: ConsumerRecord[bytes, bytes], error: BaseException
) -> None:
    headers = [
        *(msg.headers or ()),
        ("x-error-type", type(error).__name__.encode()),
        ("x-error", str(error)[:2000].encode()),
        ("x-original-topic", msg.topic.encode()),
        ("x-original-partition", str(msg.partition).encode()),
        ("x-original-offset", str(msg.offset).encode()),
    ]
    await producer.send_and_wait(f"{msg.topic}.dlq", value=msg.value, key=msg.key, headers=headers)


async def process_message(
    msg: ConsumerRecord[bytes, bytes],
    *,
    engine: AsyncEngine,
    inbox: Table,
    consumer_name: str,
    handler: Handler,
    producer: AIOKafkaProducer,
    max_attempts: int,
) -> str:
    """Apply one message; return 'applied', 'duplicate' or 'dead-lettered'."""
    try:
        env = Envelope.from_bytes(msg.value or b"")
    except Exception as exc:
        log.error("unparseable message at %s[%d]@%d to DLQ: %s", msg.topic, msg.partition, msg.offset, exc)
        await _dead_letter(producer, msg, exc)
        return "dead-lettered"
    delay = 0.5
    for attempt in range(1, max_attempts + 1):
        try:
            applied = await _apply(engine, inbox, consumer_name, env, handler)
            return "applied" if applied else "duplicate"
        except PermanentError as exc:
            log.error("%s: event %s rejected: %s", consumer_name, env.event_id, exc)
            await _dead_letter(producer, msg, exc)
            return "dead-lettered"
        except Exception as exc:
            if attempt == max_attempts:
                log.error(
                    "%s: event %s failed %d times, to DLQ: %s", consumer_name, env.event_id, attempt, exc
                )
                await _dead_letter(producer, msg, exc)
                return "dead-lettered"
            log.warning("%s: event %s attempt %d failed: %s", consumer_name, env.event_id, attempt, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


async def run_consumer(
    *,
    topic: str,
    group_id: str,
    inbox: Table,
    handler: Handler,
    engine: AsyncEngine,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Consume ``topic`` until ``stop`` is set, reconnecting while the broker is unreachable."""
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        producer = make_producer(settings)
        try:
            await consumer.start()
            await producer.start()
            log.info("%s consuming %s", group_id, topic)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, messages in batches.items():
                    for msg in messages:
                        outcome = await process_message(
                            msg,
                            engine=engine,
                            inbox=inbox,
                            consumer_name=group_id,
                            handler=handler,
                            producer=producer,
                            max_attempts=settings.consumer_max_attempts,
                        )
                        log.info("%s %s[%d]@%d %s", group_id, msg.topic, msg.partition, msg.offset, outcome)
                        await consumer.commit({TopicPartition(tp.topic, tp.partition): msg.offset + 1})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: consumer error, reconnecting: %s", group_id, exc)
            await asyncio.sleep(2)
        finally:
            await consumer.stop()
            await producer.stop()


@asynccontextmanager
async def consuming(
    *, topic: str, group_id: str, inbox: Table, handler: Handler, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    """Run :func:`run_consumer` in the background for the life of the block (a service's lifespan)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            topic=topic,
            group_id=group_id,
            inbox=inbox,
            handler=handler,
            engine=engine,
            settings=settings,
            stop=stop,
        )
    )
    try:
        yield
    finally:
        stop.set()
        with suppress(Exception):
            await asyncio.wait_for(task, 10)
