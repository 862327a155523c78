"""The notifier consumers: each alert on ``idr.alerts.v1`` is delivered once per subscribed channel;
each open negotiation notice on ``idr.notices.v1`` is emailed to its recipient once, with proof.

Each delivery is recorded in its own transaction right after the channel accepts it, so when one
channel fails and the event is retried, the channels that already succeeded are not sent again.
An alert's delivery is recorded as ``sending`` before the channel is called: a row still ``sending``
when the alert is handled again means the process stopped after calling the channel and before
recording its answer. Such a delivery is not sent again (a second Slack post or email is worse than
a missing record); it is marked ``unconfirmed`` and reported, for a person to check.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.notifier.channels import Channel, EmailChannel
from services.notifier.models import deliveries, outbox, subscriptions
from services.notifier.service import ALERT_TYPES, render_alert
from shared.db import unit_of_work
from shared.events import (
    Envelope,
    OpenNegotiationNoticeDelivered,
    OpenNegotiationNoticeIssued,
    deterministic_event_id,
)
from shared.kafka.outbox import add_to_outbox
from shared.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "notifier-alerts"


class _DeliveryLog:
    """Writes one delivery row in its own transaction, right after the channel answered."""

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


async def claim_delivery(engine: AsyncEngine, env: Envelope, channel: str, target: str) -> str:
    """Record that ``channel`` is about to be called for this alert; ``send`` when it may be, else
    the status that forbids it (``sent``, or ``unconfirmed`` for one interrupted mid-send)."""
    now = datetime.now(UTC)
    stmt = insert(deliveries).values(
        event_id=env.event_id,
        tenant_id=env.tenant_id,
        claim_id=env.claim_id,
        event_type=env.event_type,
        channel=channel,
        target=target,
        status="sending",
        updated_at=now,
    )
    claim = stmt.on_conflict_do_update(
        constraint="uq_deliveries_event_channel_target",
        set_={"status": "sending", "updated_at": now, "attempts": deliveries.c.attempts + 1},
        where=deliveries.c.status == "failed",
    ).returning(deliveries.c.id)
    mine = deliveries.c.event_id == env.event_id
    where = (mine, deliveries.c.channel == channel, deliveries.c.target == target)
    async with unit_of_work(engine) as session:
        if (await session.execute(claim)).first() is not None:
            return "send"
        status = (await session.execute(select(deliveries.c.status).where(*where))).scalar_one()
        if status == "sending":
            await session.execute(
                update(deliveries)
                .where(*where)
                .values(
                    status="unconfirmed",
                    updated_at=now,
                    detail="the notifier stopped after calling the channel and before recording its answer; "
                    "not sent again: check the channel",
                )
            )
            status = "unconfirmed"
    return str(status)


class AlertHandler:
    def __init__(self, engine: AsyncEngine, settings: Settings, channels: dict[str, Channel]) -> None:
        self.engine = engine
        self.settings = settings
        self.channels = channels

    async def __call__(self, session: AsyncSession, env: Envelope) -> None:
        if env.event_type not in ALERT_TYPES:
            return
        message = render_alert(env, self.settings)
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
        done = {
            (r.channel, r.target)
            for r in (
                await session.execute(
                    select(deliveries.c.channel, deliveries.c.target).where(
                        deliveries.c.event_id == env.event_id, deliveries.c.status == "sent"
                    )
                )
            ).all()
        }
        failures: list[str] = []
        for channel_name, target in targets:
            if (channel_name, target) in done:
                continue
            channel = self.channels.get(channel_name)
            if channel is None:
                log.error("unknown channel %s for tenant %s", channel_name, env.tenant_id)
                continue
            claimed = await claim_delivery(self.engine, env, channel_name, target)
            if claimed != "send":
                if claimed == "unconfirmed":
                    log.error(
                        "alert %s for claim %s by %s was interrupted mid-send: not sent again (unconfirmed)",
                        env.event_id,
                        env.claim_id,
                        channel_name,
                    )
                continue
            try:
                provider_id = await channel.send(target, message)
            except Exception as exc:
                await _DeliveryLog(self.engine)(
                    env, channel_name, target, False, f"{type(exc).__name__}: {exc}"
                )
                failures.append(f"{channel_name}: {exc}")
                continue
            await _DeliveryLog(self.engine)(env, channel_name, target, True, provider_id)
            log.info("alert %s for claim %s sent by %s", env.event_id, env.claim_id, channel_name)
        if failures:
            raise RuntimeError("delivery failed: " + "; ".join(failures))


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
