"""The consumer loop: inbox de-duplication, manual commits after the database commit, retries, DLQ.

For each message: record ``(consumer, event_id)`` in the inbox and apply the handler in one
transaction; commit the Kafka offset only after that transaction commits (once per partition and
poll, for the messages done). A replayed event finds its inbox row and is skipped. The partitions of
a poll are handled concurrently, each in its own task and in order within it, so the events of one
key (one claim) stay in order (``consumer_partition_concurrency``; off: one message at a time).

A failure is one of three kinds (:func:`classify`):

- **transient** (the database, Temporal or the network is unavailable, or the handler raised
  :class:`TransientError`): the message is retried with a delay doubling from
  ``consumer_retry_base_seconds`` to ``consumer_retry_cap_seconds`` for as long as it takes. Its
  partition is paused and rewound meanwhile, so the offset does not move and the other partitions
  go on.
- **permanent** (not an envelope, failing validation, :class:`PermanentError`): the message can
  never succeed; it goes to ``<topic>.dlq`` with the error in its headers and is recorded in the
  consumer schema's ``dead_letters`` table, where ``idrflow dlq`` lists and replays it.
- anything else is retried the same way up to ``consumer_max_attempts`` times, then dead-lettered.

Each message is handled in a consumer span that continues the ``traceparent`` in its Kafka headers
(:mod:`shared.tracing`); a dead letter also stages a ``DeadLetter`` operator alert
(:mod:`shared.kafka.dead_letters`). The loop beats a :class:`~shared.metrics.Loop` on every poll
(``/healthz`` reports it down when it stops) and refreshes ``idrflow_consumer_lag`` every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import dead_letters_table, unit_of_work
from shared.events import Envelope
from shared.kafka import make_producer
from shared.kafka.dead_letters import clean as _clean
from shared.kafka.dead_letters import dead_letter as _dead_letter
from shared.kafka.offsets import Lag
from shared.metrics import CONSUMER_MESSAGES, Loop, register_loop, unregister_loop
from shared.settings import Settings
from shared.tracing import context_from, from_kafka_headers, tracer

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
Kind = Literal["transient", "permanent", "unknown"]
Outcome = Literal["applied", "duplicate", "dead-lettered", "retry"]


class PermanentError(Exception):
    """The event can never be applied: send it to the DLQ without retrying."""


class TransientError(Exception):
    """A dependency is unavailable: retry the event (for as long as it takes), never dead-letter it."""


# PostgreSQL SQLSTATE classes that say "try again": connection exceptions, transaction rollback
# (serialization failure, deadlock), insufficient resources, operator intervention (shutdown)
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "55P03")
_TRANSIENT_RPC_STATUSES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
_LOCAL_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 20:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return seen


def _is_transient(e: BaseException) -> bool:
    if isinstance(e, TransientError | OperationalError | InterfaceError | PoolTimeoutError | TimeoutError):
        return True
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, OSError) and not isinstance(e, _LOCAL_OS_ERRORS):
        return True  # ConnectionError, socket errors, smtplib errors
    sqlstate = getattr(e, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return True
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(e).__mro__}
    if "temporalio.RPCError" in names:
        status = getattr(e, "status", None)
        return getattr(status, "name", None) in _TRANSIENT_RPC_STATUSES
    # an update that timed out waiting for the worker; httpx's connect/read failures
    return bool(names & {"temporalio.WorkflowUpdateRPCTimeoutOrCancelledError", "httpx.TransportError"})


def classify(exc: BaseException) -> Kind:
    """Transient (retry forever), permanent (dead-letter now) or unknown (retry a few times)."""
    chain = _chain(exc)
    if any(isinstance(e, PermanentError) for e in chain) or isinstance(exc, ValidationError):
        return "permanent"
    if any(_is_transient(e) for e in chain):
        return "transient"
    return "unknown"


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


async def process_message(
    msg: ConsumerRecord[bytes, bytes],
    *,
    engine: AsyncEngine,
    inbox: Table,
    consumer_name: str,
    handler: Handler,
    producer: AIOKafkaProducer,
    attempt: int = 1,
    max_attempts: int = 5,
    dead_letters: Table | None = None,
) -> Outcome:
    """Apply one message once; return 'applied', 'duplicate', 'dead-lettered' or 'retry'.

    'retry' means a transient failure (or an unknown one before ``max_attempts``): the caller must
    not commit the offset and should try the same message again after a delay."""
    if dead_letters is None and inbox.schema is not None:
        dead_letters = dead_letters_table(inbox.schema)
    from opentelemetry.trace import SpanKind, StatusCode

    parent = context_from(from_kafka_headers(msg.headers))
    with tracer().start_as_current_span(
        f"process {msg.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": msg.topic,
            "messaging.consumer.group.name": consumer_name,
            "messaging.destination.partition.id": str(msg.partition),
            "messaging.kafka.offset": msg.offset,
            "idrflow.attempt": attempt,
        },
    ) as span:
        outcome = await _process(
            msg,
            engine=engine,
            inbox=inbox,
            consumer_name=consumer_name,
            handler=handler,
            producer=producer,
            attempt=attempt,
            max_attempts=max_attempts,
            dead_letters=dead_letters,
        )
        span.set_attribute("idrflow.outcome", outcome)
        if outcome in ("dead-lettered", "retry"):
            span.set_status(StatusCode.ERROR, outcome)
    CONSUMER_MESSAGES.labels(consumer_name, msg.topic, outcome).inc()
    return outcome


async def _process(
    msg: ConsumerRecord[bytes, bytes],
    *,
    engine: AsyncEngine,
    inbox: Table,
    consumer_name: str,
    handler: Handler,
    producer: AIOKafkaProducer,
    attempt: int,
    max_attempts: int,
    dead_letters: Table | None,
) -> Outcome:
    from opentelemetry import trace

    where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
    env: Envelope | None = None
    failure: BaseException
    try:
        env = Envelope.from_bytes(msg.value or b"")
    except Exception as exc:
        failure = exc  # not an envelope: can never succeed
    else:
        trace.get_current_span().set_attributes(
            {"idrflow.event_id": str(env.event_id), "idrflow.event_type": env.event_type[:100]}
        )
        try:
            applied = await _apply(engine, inbox, consumer_name, env, handler)
            return "applied" if applied else "duplicate"
        except Exception as exc:
            kind = classify(exc)
            if kind == "transient" or (kind == "unknown" and attempt < max_attempts):
                log.warning(
                    "%s: event %s at %s attempt %d failed (%s), will retry: %s: %s",
                    consumer_name,
                    env.event_id,
                    where,
                    attempt,
                    kind,
                    type(exc).__name__,
                    _clean(str(exc), 500),
                )
                return "retry"
            failure = exc
    try:
        await _dead_letter(
            producer,
            msg,
            failure,
            engine=engine,
            dead_letters=dead_letters,
            consumer_name=consumer_name,
            env=env,
        )
    except Exception as exc:  # the database or the broker is down: the message waits
        log.warning("%s: could not dead-letter %s yet, will retry: %s", consumer_name, where, exc)
        return "retry"
    return "dead-lettered"


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """``base * 2**(attempt-1)``, at most ``cap``."""
    return float(min(cap, base * 2 ** min(attempt - 1, 30)))


@dataclass
class _Retry:
    offset: int
    attempts: int
    resume_at: float


@dataclass
class _PartitionWork:
    """What handling one partition's batch needs (one per poll of :func:`run_consumer`)."""

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    retrying: dict[TopicPartition, _Retry]
    engine: AsyncEngine
    inbox: Table
    group_id: str
    handler: Handler
    settings: Settings
    dead_letters: Table | None

    async def __call__(self, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """One partition's batch, in order (so one claim's events stay in order); the offset of the
        messages done is committed once, also when a retry pauses the partition or a failure stops it."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        done: int | None = None
        try:
            for msg in messages:
                prior = self.retrying.get(tp)
                attempt = prior.attempts + 1 if prior and prior.offset == msg.offset else 1
                outcome = await process_message(
                    msg,
                    engine=self.engine,
                    inbox=self.inbox,
                    consumer_name=self.group_id,
                    handler=self.handler,
                    producer=self.producer,
                    attempt=attempt,
                    max_attempts=settings.consumer_max_attempts,
                    dead_letters=self.dead_letters,
                )
                if outcome == "retry":
                    delay = retry_delay(
                        attempt, settings.consumer_retry_base_seconds, settings.consumer_retry_cap_seconds
                    )
                    # rewind and pause this partition only: the offset stays, others go on
                    self.consumer.seek(tp, msg.offset)
                    self.consumer.pause(tp)
                    self.retrying[tp] = _Retry(msg.offset, attempt, loop.time() + delay)
                    break
                self.retrying.pop(tp, None)
                log.info("%s %s[%d]@%d %s", self.group_id, msg.topic, msg.partition, msg.offset, outcome)
                done = msg.offset + 1
        finally:
            if done is not None:
                await self.consumer.commit({TopicPartition(tp.topic, tp.partition): done})


async def run_consumer(
    *,
    topic: str,
    group_id: str,
    inbox: Table,
    handler: Handler,
    engine: AsyncEngine,
    settings: Settings,
    stop: asyncio.Event,
    dead_letters: Table | None = None,
    beat: Loop | None = None,
) -> None:
    """Consume ``topic`` until ``stop`` is set, reconnecting while the broker is unreachable.

    The dead letters go to ``dead_letters`` (default: the table in the inbox's schema); ``beat`` is
    beaten on every poll."""
    if dead_letters is None and inbox.schema is not None:
        dead_letters = dead_letters_table(inbox.schema)
    loop = asyncio.get_running_loop()
    lag = Lag(group_id)
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=min(
                settings.kafka_heartbeat_interval_ms, settings.kafka_session_timeout_ms // 3
            ),
        )
        producer = make_producer(settings)
        retrying: dict[TopicPartition, _Retry] = {}
        try:
            await consumer.start()
            await producer.start()
            log.info("%s consuming %s", group_id, topic)
            while not stop.is_set():
                now = loop.time()
                paused = consumer.paused()
                for tp, r in list(retrying.items()):
                    if tp not in consumer.assignment():
                        del retrying[tp]
                    elif r.resume_at <= now and tp in paused:
                        consumer.resume(tp)
                waits = [r.resume_at - now for tp, r in retrying.items() if tp in consumer.paused()]
                timeout_ms = int(max(10.0, min([500.0, *(w * 1000 for w in waits)])))
                batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=100)
                if beat is not None:
                    beat.beat()
                await lag.refresh(consumer, loop.time())
                work = _PartitionWork(
                    consumer=consumer,
                    producer=producer,
                    retrying=retrying,
                    engine=engine,
                    inbox=inbox,
                    group_id=group_id,
                    handler=handler,
                    settings=settings,
                    dead_letters=dead_letters,
                )
                if settings.consumer_partition_concurrency and len(batches) > 1:
                    # each partition in its own task; the first failure (a commit refused by a
                    # rebalance, say) reconnects once the others have committed what they did
                    results = await asyncio.gather(
                        *(work(tp, messages) for tp, messages in batches.items()), return_exceptions=True
                    )
                    failed = [r for r in results if isinstance(r, BaseException)]
                    if failed:
                        raise failed[0]
                else:
                    for tp, messages in batches.items():
                        await work(tp, messages)
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
) -> AsyncIterator[Loop]:
    """Run :func:`run_consumer` in the background for the life of the block (a service's lifespan).

    The loop is registered by its group id (:func:`shared.metrics.loop_check` reads it for
    ``/healthz``) and yielded."""
    stop = asyncio.Event()
    beat = Loop(group_id, "consumer")
    task = asyncio.create_task(
        run_consumer(
            topic=topic,
            group_id=group_id,
            inbox=inbox,
            handler=handler,
            engine=engine,
            settings=settings,
            stop=stop,
            beat=beat,
        ),
        name=f"consumer:{group_id}",
    )
    beat.task = task
    register_loop(beat)
    try:
        yield beat
    finally:
        stop.set()
        unregister_loop(beat)
        # a loop that died (or was cancelled) does not fail the shutdown; one that hangs is cancelled
        _, pending = await asyncio.wait([task], timeout=10)
        for hung in pending:
            hung.cancel()
