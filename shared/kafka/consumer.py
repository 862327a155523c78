"""The consumer loop: inbox de-duplication, manual commits after the database commit, retries, DLQ.

For each message: record ``(consumer, event_id)`` in the inbox and apply the handler in one
transaction; commit the Kafka offset only after that transaction commits. A replayed event finds
its inbox row and is skipped.

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
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

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
from shared.settings import Settings

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


def _clean(text: str | None, limit: int = 2000) -> str | None:
    """PostgreSQL text and JSONB refuse NUL characters."""
    return None if text is None else text.replace("\x00", "\\0")[:limit]


def _payload(raw: bytes) -> Any:
    try:
        text = raw.decode()
        if "\\u0000" not in text:
            return json.loads(text)
    except ValueError:
        pass
    return {"raw_base64": base64.b64encode(raw).decode()}


async def _dead_letter(
    producer: AIOKafkaProducer,
    msg: ConsumerRecord[bytes, bytes],
    error: BaseException,
    *,
    engine: AsyncEngine | None = None,
    dead_letters: Table | None = None,
    consumer_name: str = "",
    env: Envelope | None = None,
) -> None:
    """Record the message in the dead-letter table (when given) and send it to ``<topic>.dlq``."""
    if engine is not None and dead_letters is not None:
        async with unit_of_work(engine) as session:
            await session.execute(
                insert(dead_letters)
                .values(
                    id=uuid.uuid4(),
                    consumer=consumer_name,
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=_clean(msg.key.decode(errors="replace") if msg.key is not None else None, 1000),
                    event_id=env.event_id if env else None,
                    event_type=_clean(env.event_type if env else None, 200),
                    tenant_id=_clean(env.tenant_id if env else None, 200),
                    claim_id=_clean(env.claim_id if env else None, 200),
                    error_type=type(error).__name__,
                    error=_clean(str(error)) or "",
                    payload=_payload(msg.value or b""),
                )
                .on_conflict_do_nothing(constraint="uq_dead_letters_position")
            )
    headers = [
        *(msg.headers or ()),
        ("x-error-type", type(error).__name__.encode()),
        ("x-error", str(error)[:2000].encode()),
        ("x-original-topic", msg.topic.encode()),
        ("x-original-partition", str(msg.partition).encode()),
        ("x-original-offset", str(msg.offset).encode()),
    ]
    await producer.send_and_wait(f"{msg.topic}.dlq", value=msg.value, key=msg.key, headers=headers)
    log.error(
        "%s: dead letter %s[%d]@%d event %s type %s tenant %s claim %s: %s: %s",
        consumer_name,
        msg.topic,
        msg.partition,
        msg.offset,
        env.event_id if env else None,
        env.event_type if env else None,
        env.tenant_id if env else None,
        env.claim_id if env else None,
        type(error).__name__,
        _clean(str(error), 500),
    )


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
    where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
    env: Envelope | None = None
    failure: BaseException
    try:
        env = Envelope.from_bytes(msg.value or b"")
    except Exception as exc:
        failure = exc  # not an envelope: can never succeed
    else:
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
) -> None:
    """Consume ``topic`` until ``stop`` is set, reconnecting while the broker is unreachable.

    The dead letters go to ``dead_letters`` (default: the table in the inbox's schema)."""
    if dead_letters is None and inbox.schema is not None:
        dead_letters = dead_letters_table(inbox.schema)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
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
                for tp, messages in batches.items():
                    for msg in messages:
                        prior = retrying.get(tp)
                        attempt = prior.attempts + 1 if prior and prior.offset == msg.offset else 1
                        outcome = await process_message(
                            msg,
                            engine=engine,
                            inbox=inbox,
                            consumer_name=group_id,
                            handler=handler,
                            producer=producer,
                            attempt=attempt,
                            max_attempts=settings.consumer_max_attempts,
                            dead_letters=dead_letters,
                        )
                        if outcome == "retry":
                            delay = retry_delay(
                                attempt,
                                settings.consumer_retry_base_seconds,
                                settings.consumer_retry_cap_seconds,
                            )
                            # rewind and pause this partition only: the offset stays, others go on
                            consumer.seek(tp, msg.offset)
                            consumer.pause(tp)
                            retrying[tp] = _Retry(msg.offset, attempt, loop.time() + delay)
                            break
                        retrying.pop(tp, None)
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
