"""The notifier consumers: each alert on ``idr.alerts.v1`` becomes one ``pending`` delivery per
subscribed channel target; each open negotiation notice on ``idr.notices.v1`` is emailed to its
recipient once, with proof.

The alert consumer calls no channel: in the inbox transaction it writes the delivery rows (the
natural key (event id, channel, target) makes a replayed alert a no-op) and returns, so the offset
moves on at once and one tenant's dead Slack webhook cannot hold a partition that other tenants'
alerts wait behind. The notifier's sender (:mod:`services.notifier.sender`) sends the rows, retries
failures from their schedule and keeps the at-most-once rule for interrupted sends.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.notifier.channels import EmailChannel
from services.notifier.models import deliveries, outbox, subscriptions
from services.notifier.service import ALERT_TYPES, render_alert
from shared.db import unit_of_work
from shared.events import (
    Envelope,
    OpenNegotiationNoticeDelivered,
    OpenNegotiationNoticeIssued,
    deterministic_event_id,
)
from shared.kafka.outbox import add_to_outbox, with_trace_headers
from shared.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "notifier-alerts"


class _DeliveryLog:
    """Writes a notice's delivery row in its own transaction, right after the channel answered
    (``failed`` here means this try failed: the notice consumer retries the event)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def __call__(self, env: Envelope, channel: str, target: str, ok: bool, detail: str) -> None:
        now = datetime.now(UTC)
        values = {
            "event_id": env.event_id,
            "tenant_id": env.tenant_id,
            "claim_id": env.claim_id,
            "event_type": env.event_type,
            "channel": channel,
            "target": target,
            "status": "sent" if ok else "failed",
            "provider_message_id": detail if ok else None,
            "detail": None if ok else detail[:2000],
            "sent_at": now if ok else None,
            "updated_at": now,
        }
        stmt = insert(deliveries).values(**values)
        stmt = stmt.on_conflict_do_update(
            constraint="uq_deliveries_event_channel_target",
            set_={
                k: stmt.excluded[k]
                for k in ("status", "provider_message_id", "detail", "sent_at", "updated_at")
            }
            | {"attempts": deliveries.c.attempts + 1},
        )
        async with unit_of_work(self.engine) as session:
            await session.execute(stmt)


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
            rows.append(
                {
                    "event_id": env.event_id,
                    "tenant_id": env.tenant_id,
                    "claim_id": env.claim_id,
                    "event_type": env.event_type,
                    "channel": channel_name,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    # the consumer span's traceparent rides along: the send continues the trace
                    "envelope": with_trace_headers(env.model_dump(mode="json")),
                    "updated_at": now,
                }
            )
        if not rows:
            return
        await session.execute(
            insert(deliveries)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_deliveries_event_channel_target")
        )
        if self.on_commit is not None:
            wake = self.on_commit
            event.listen(session.sync_session, "after_commit", lambda _session: wake(), once=True)


NOTICE_CONSUMER = "notifier-notices"


class NoticeHandler:
    """Sends each generated open negotiation notice to its recipient, PDF attached, once; records the
    delivery and answers with ``OpenNegotiationNoticeDelivered`` (the proof) through the outbox."""

    def __init__(self, engine: AsyncEngine, email: EmailChannel) -> None:
        self.engine = engine
        self.email = email

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type != OpenNegotiationNoticeIssued.event_type:
            return
        notice = OpenNegotiationNoticeIssued.model_validate(env.payload)
        prior = (
            await session.execute(
                select(deliveries.c.provider_message_id, deliveries.c.sent_at).where(
                    deliveries.c.event_id == env.event_id,
                    deliveries.c.channel == "email",
                    deliveries.c.status == "sent",
                )
            )
        ).first()
        if prior is not None:
            message_id, sent_at = prior.provider_message_id, prior.sent_at
        else:
            text = (
                f"Open Negotiation Notice for claim {env.claim_id}: see the attached PDF "
                f"(SHA-256 {notice.pdf_sha256})."
            )
            pdf = base64.b64decode(notice.pdf_base64)
            name = f"open-negotiation-notice-{env.claim_id}.pdf"
            record = _DeliveryLog(self.engine)
            try:
                message_id = await self.email.send_email(
                    notice.recipient,
                    notice.subject,
                    text,
                    notice.html,
                    str(env.event_id),
                    attachments=[(name, "application/pdf", pdf)],
                )
            except Exception as exc:
                await record(env, "email", notice.recipient, False, f"{type(exc).__name__}: {exc}")
                raise
            await record(env, "email", notice.recipient, True, message_id)
            sent_at = datetime.now(UTC)
        proof = OpenNegotiationNoticeDelivered(
            notice_id=notice.notice_id,
            recipient=notice.recipient,
            channel="email",
            status="sent",
            message_id=message_id,
            sent_at=sent_at,
        )
        await add_to_outbox(
            session,
            outbox,
            Envelope.wrap(
                proof,
                tenant_id=env.tenant_id,
                claim_id=env.claim_id,
                event_id=deterministic_event_id(str(env.event_id), "delivered"),
            ),
        )
