"""What became of a send, written on its delivery row: the rows the sender claims (:class:`Claimed`),
the outcome of one call to a channel (:class:`Outcome`) and :func:`record_outcome`, which moves the
row on (``sent``, due again after a backoff or a Retry-After, ``failed`` for good) and stages a
notice's proof in the same transaction."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.models import deliveries
from services.notifier.notices import NOTICE, stage_proof
from shared.db import unit_of_work
from shared.events import Envelope
from shared.kafka.outbox import split_trace_headers
from shared.settings import Settings

log = logging.getLogger("services.notifier.sender")  # the sender's reports, one logger to watch

_jitter = random.SystemRandom()


def backoff(attempts: int, settings: Settings) -> float:
    """``base * 2**(attempts-1)``, at most ``cap``, with equal jitter (half fixed, half random)."""
    delay = min(
        settings.notifier_retry_cap_seconds,
        settings.notifier_retry_base_seconds * 2 ** min(max(attempts, 1) - 1, 30),
    )
    return float(delay / 2 + _jitter.uniform(0, delay / 2))


@dataclass(frozen=True)
class Claimed:
    id: int
    event_id: uuid.UUID
    tenant_id: str
    claim_id: str
    channel: str
    target: str
    attempts: int
    envelope: dict[str, Any]
    rate_limited_since: datetime | None = None  # the channel's first 429 for it

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel, self.target)

    @property
    def is_notice(self) -> bool:
        """An open negotiation notice (its outcome goes back to the negotiation service as proof)."""
        return self.envelope.get("event_type") == NOTICE

    @cached_property
    def event(self) -> Envelope:
        """The stored envelope, without the traceparent the row keeps beside it (read once: the send,
        a notice's give-up age and its proof use it)."""
        return Envelope.model_validate(split_trace_headers(self.envelope)[0])


def _notice_keeps_trying(c: Claimed, settings: Settings, now: datetime) -> bool:
    """A notice is not given up after ``notifier_max_attempts`` (minutes of backoff) but
    ``notifier_notice_give_up_hours`` after it was issued: a mail server down for hours delays it."""
    if not c.is_notice:
        return False
    issued = c.event.occurred_at
    if issued.tzinfo is None:  # written without an offset by some producer: UTC
        issued = issued.replace(tzinfo=UTC)
    return now - issued < timedelta(hours=settings.notifier_notice_give_up_hours)


@dataclass(frozen=True)
class Outcome:
    kind: Literal["sent", "rate_limited", "permanent", "retry", "lost"]
    detail: str  # stored on the row (the tenant sees it in GET /v1/deliveries)
    reason: str = ""  # safe for logs: no target, no message text
    retry_after: float = 0.0


async def record_outcome(engine: AsyncEngine, settings: Settings, c: Claimed, o: Outcome) -> None:
    """Write a send's outcome on its row (and a notice's proof with it): ``sent``; due again after a
    429's Retry-After (the target's other rows wait as long) or a backoff; ``failed`` for good, logged
    at ERROR with ids only."""
    d = deliveries
    now = datetime.now(UTC)
    if o.kind == "lost":  # another sender owns the row now
        return
    mine = (d.c.id == c.id, d.c.attempts == c.attempts)
    unsent = d.c.status.in_(("claimed", "sending"))
    async with unit_of_work(engine) as session:
        if o.kind == "sent":  # even when a sibling presumed this sender dead: it was sent
            # a notice re-queued while this send overran its lease is sent: another sender that has
            # claimed it again loses its claim before DATA, not after
            sent_mine = (
                (d.c.id == c.id, d.c.status.in_(("pending", "claimed", "sending", "unconfirmed")))
                if c.is_notice
                else (*mine, d.c.status.in_(("sending", "unconfirmed")))
            )
            await session.execute(
                update(d)
                .where(*sent_mine)
                .values(
                    status="sent",
                    provider_message_id=o.detail[:300],
                    detail=None,
                    sent_at=now,
                    next_attempt_at=None,
                    updated_at=now,
                )
            )
            if c.is_notice:
                await stage_proof(session, c.event, sent_at=now, message_id=o.detail[:300])
            return
        if o.kind == "rate_limited":
            due = now + timedelta(seconds=o.retry_after)
            since = c.rate_limited_since or now
            if now - since > timedelta(hours=settings.notifier_rate_limited_give_up_hours):
                o = Outcome(  # the channel limits it for good: a person has to look (reported below)
                    "permanent",
                    f"{o.detail}; rate limited since {since:%Y-%m-%d %H:%M} UTC: given up",
                    "rate limited for too long",
                )
            else:
                await session.execute(
                    update(d)
                    .where(*mine, unsent)
                    .values(
                        status="pending",
                        attempts=d.c.attempts - 1,
                        next_attempt_at=due,
                        detail=f"{o.detail}; retry after {o.retry_after:g} s",
                        rate_limited_since=since,
                        updated_at=now,
                    )
                )
            await session.execute(  # the provider limits the target, not this one message
                update(d)
                .where(
                    d.c.channel == c.channel,
                    d.c.target == c.target,
                    d.c.status == "pending",
                    d.c.next_attempt_at < due,
                )
                .values(next_attempt_at=due)
            )
            if o.kind == "rate_limited":
                return
        final = o.kind == "permanent" or (
            c.attempts >= settings.notifier_max_attempts and not _notice_keeps_trying(c, settings, now)
        )
        due_at = None if final else now + timedelta(seconds=backoff(c.attempts, settings))
        failed = await session.execute(
            update(d)
            .where(*mine, unsent)
            .values(
                status="failed" if final else "pending",
                next_attempt_at=due_at,
                detail=o.detail,
                updated_at=now,
            )
            .returning(d.c.id)
        )
        if final and c.is_notice and failed.first() is not None:
            await stage_proof(session, c.event, sent_at=None, detail=o.detail)
    if final:
        log.error(
            "delivery %s of alert %s for tenant %s claim %s by %s failed for good after %d attempt(s): %s",
            c.id,
            c.event_id,
            c.tenant_id,
            c.claim_id,
            c.channel,
            c.attempts,
            o.reason,
        )
    else:
        log.warning(
            "delivery %s of alert %s by %s failed (attempt %d, %s); next attempt at %s",
            c.id,
            c.event_id,
            c.channel,
            c.attempts,
            o.reason,
            due_at.isoformat() if due_at else None,
        )
