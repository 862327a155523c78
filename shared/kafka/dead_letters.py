"""Dead-lettering one message: the consumer schema's ``dead_letters`` row, a ``DeadLetter`` operator
alert in that schema's outbox (same transaction), then the copy on ``<topic>.dlq`` with the error in
its headers.

The alert carries ids, the topic and the error class only (never the message or the error text,
which may quote the payload); its event id is derived from the message's position, so dead-lettering
the same message again (after a crash between the database commit and the DLQ send) stages nothing
new. A dead-lettered ``DeadLetter`` alert raises no alert of its own.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import unit_of_work
from shared.events import DeadLetter, Envelope, deterministic_event_id
from shared.metrics import DEAD_LETTERED

log = logging.getLogger(__name__)


def clean(text: str | None, limit: int = 2000) -> str | None:
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


def dead_letter_alert(
    dead_letter_id: uuid.UUID,
    msg: ConsumerRecord[bytes, bytes],
    error: BaseException,
    consumer_name: str,
    env: Envelope | None,
) -> Envelope:
    """The ``DeadLetter`` alert for one dead-lettered message (tenant and claim of the message when
    it was an envelope, else ``unknown`` and ``-``)."""
    payload = DeadLetter(
        dead_letter_id=dead_letter_id,
        consumer=consumer_name,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        error_type=type(error).__name__,
        original_event_id=env.event_id if env else None,
        original_event_type=clean(env.event_type, 100) if env else None,
    )
    return Envelope.wrap(
        payload,
        tenant_id=(clean(env.tenant_id, 64) if env else None) or "unknown",
        claim_id=(clean(env.claim_id, 200) if env else None) or "-",
        event_id=deterministic_event_id(
            "dead-letter", consumer_name, msg.topic, str(msg.partition), str(msg.offset)
        ),
    )


async def _record(
    session: AsyncSession,
    dead_letters: Table,
    msg: ConsumerRecord[bytes, bytes],
    error: BaseException,
    consumer_name: str,
    env: Envelope | None,
) -> None:
    from shared.kafka.outbox import add_to_outbox

    dead_letter_id = uuid.uuid4()
    inserted = await session.execute(
        insert(dead_letters)
        .values(
            id=dead_letter_id,
            consumer=consumer_name,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=clean(msg.key.decode(errors="replace") if msg.key is not None else None, 1000),
            event_id=env.event_id if env else None,
            event_type=clean(env.event_type if env else None, 200),
            tenant_id=clean(env.tenant_id if env else None, 200),
            claim_id=clean(env.claim_id if env else None, 200),
            error_type=type(error).__name__,
            error=clean(str(error)) or "",
            payload=_payload(msg.value or b""),
        )
        .on_conflict_do_nothing(constraint="uq_dead_letters_position")
        .returning(dead_letters.c.id)
    )
    if inserted.first() is None or (env is not None and env.event_type == DeadLetter.event_type):
        return  # recorded (and alerted) before; or an alert about a dead letter: no alert loop
    outbox = dead_letters.metadata.tables.get(f"{dead_letters.schema}.outbox")
    if outbox is None:
        log.warning("%s: no outbox in schema %s for the DeadLetter alert", consumer_name, dead_letters.schema)
        return
    await add_to_outbox(session, outbox, dead_letter_alert(dead_letter_id, msg, error, consumer_name, env))


async def dead_letter(
    producer: AIOKafkaProducer,
    msg: ConsumerRecord[bytes, bytes],
    error: BaseException,
    *,
    engine: AsyncEngine | None = None,
    dead_letters: Table | None = None,
    consumer_name: str = "",
    env: Envelope | None = None,
) -> None:
    """Record the message in the dead-letter table with its alert (when given), send it to ``.dlq``."""
    if engine is not None and dead_letters is not None:
        async with unit_of_work(engine) as session:
            await _record(session, dead_letters, msg, error, consumer_name, env)
    headers = [
        *(msg.headers or ()),
        ("x-error-type", type(error).__name__.encode()),
        ("x-error", str(error)[:2000].encode()),
        ("x-original-topic", msg.topic.encode()),
        ("x-original-partition", str(msg.partition).encode()),
        ("x-original-offset", str(msg.offset).encode()),
    ]
    await producer.send_and_wait(f"{msg.topic}.dlq", value=msg.value, key=msg.key, headers=headers)
    DEAD_LETTERED.labels(consumer_name, msg.topic, type(error).__name__).inc()
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
        clean(str(error), 500),
    )
