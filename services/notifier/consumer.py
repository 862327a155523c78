"""The notifier consumers: each alert on ``idr.alerts.v1`` becomes one ``pending`` delivery per
subscribed channel target; each open negotiation notice on ``idr.notices.v1`` one ``pending`` email
delivery to its recipient (sent once, with proof, by the sender).

The alert consumer calls no channel: in the inbox transaction it writes the delivery rows (the
natural key (event id, channel, target) makes a replayed alert a no-op) and returns, so the offset
moves on at once and one tenant's dead Slack webhook cannot hold a partition that other tenants'
alerts wait behind. The notifier's sender (:mod:`services.notifier.sender`) sends the rows, retries
failures from their schedule and keeps the at-most-once rule for interrupted sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import and_, event, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.models import deliveries, subscriptions
from services.notifier.notices import stage_proof
from services.notifier.service import ALERT_TYPES, render_alert
from shared.events import (
    Envelope,
    OpenNegotiationNoticeIssued,
)
from shared.kafka.outbox import with_trace_headers
from shared.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "notifier-alerts"


def pending_delivery(env: Envelope, channel: str, target: str, now: datetime) -> dict[str, object]:
    """A delivery row due now; the consumer span's traceparent rides along (the send continues it)."""
    return {
        "event_id": env.event_id,
        "tenant_id": env.tenant_id,
        "claim_id": env.claim_id,
        "event_type": env.event_type,
        "channel": channel,
        "target": target,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "envelope": with_trace_headers(env.model_dump(mode="json")),
        "updated_at": now,
    }


async def record_deliveries(
    session: AsyncSession, rows: list[dict[str, object]], on_commit: Callable[[], None] | None
) -> None:
    """Insert ``rows`` (a replayed event's are already there: skipped); ``on_commit`` once committed."""
    await session.execute(
        insert(deliveries)
        .values(rows)
        .on_conflict_do_nothing(constraint="uq_deliveries_event_channel_target")
    )
    wake_after_commit(session, on_commit)


def wake_after_commit(session: AsyncSession, on_commit: Callable[[], None] | None) -> None:
    if on_commit is not None:
        wake = on_commit
        event.listen(session.sync_session, "after_commit", lambda _session: wake(), once=True)


class AlertHandler:
    """Records the deliveries of an alert as ``pending`` rows, due now; ``on_commit`` (the sender's
    wake-up) is called once the inbox transaction has committed them."""

    def __init__(
        self,
        settings: Settings,
        channels: Iterable[str],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.channels = frozenset(channels)
        self.on_commit = on_commit

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type not in ALERT_TYPES:
            return
        render_alert(env, self.settings)  # an alert that cannot be worded is dead-lettered here
        targets = (
            await session.execute(
                select(subscriptions.c.channel, subscriptions.c.target).where(
                    subscriptions.c.tenant_id == env.tenant_id
                )
            )
        ).all()
        if not targets:
            log.warning(
                "tenant %s has no alert subscriptions; alert %s not delivered", env.tenant_id, env.event_id
            )
            return
        now = datetime.now(UTC)
        rows = []
        for channel_name, target in targets:
            if channel_name not in self.channels:
                log.error("unknown channel %s for tenant %s", channel_name, env.tenant_id)
                continue
            rows.append(pending_delivery(env, channel_name, target, now))
        if rows:
            await record_deliveries(session, rows, self.on_commit)


NOTICE_CONSUMER = "notifier-notices"


class NoticeHandler:
    """Records each generated open negotiation notice as a ``pending`` email delivery to its recipient
    (the sender sends it with its PDF, retries it from the schedule and answers with the proof:
    :mod:`services.notifier.notices`); ``on_commit`` wakes the sender."""

    def __init__(self, on_commit: Callable[[], None] | None = None) -> None:
        self.on_commit = on_commit

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type != OpenNegotiationNoticeIssued.event_type:
            return
        notice = OpenNegotiationNoticeIssued.model_validate(env.payload)  # unreadable: dead-lettered
        now = datetime.now(UTC)
        row = pending_delivery(env, "email", notice.recipient, now)
        d = deliveries
        # a row from before notices were scheduled (no envelope): a failed try is scheduled now; a
        # notice it sent has its proof staged again (that release staged it with the inbox commit)
        written = await session.execute(
            insert(d)
            .values(row)
            .on_conflict_do_update(
                constraint="uq_deliveries_event_channel_target",
                set_={
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "envelope": row["envelope"],
                    "detail": None,
                    "updated_at": now,
                },
                where=and_(d.c.envelope.is_(None), d.c.status == "failed"),
            )
            .returning(d.c.id)
        )
        # written (new, or revived): no legacy row to answer for; else look for a legacy sent one
        sent = None
        if written.first() is None:
            sent = (
                await session.execute(
                    select(d.c.provider_message_id, d.c.sent_at).where(
                        d.c.event_id == env.event_id,
                        d.c.channel == "email",
                        d.c.status == "sent",
                        d.c.envelope.is_(None),
                    )
                )
            ).first()
        if sent is not None:
            await stage_proof(
                session,
                env,
                sent_at=sent.sent_at,
                message_id=sent.provider_message_id,
            )
        wake_after_commit(session, self.on_commit)
