"""Open negotiation notices on the delivery schedule: the notice consumer records one ``pending``
email delivery per notice (its recipient the target) and the sender sends it like an alert, with its
retries and backoff, so an SMTP outage delays a notice instead of dead-lettering it. Unlike an alert,
a notice is given up by age (``notifier_notice_give_up_hours``), not attempts, and one interrupted
mid-send is sent again with the same Message-ID (a missing notice is worse than a repeat). Its
outcome goes back to the negotiation service as ``OpenNegotiationNoticeDelivered`` (the proof, or why
it failed), staged in the notifier's outbox with the delivery row's final status."""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.channels import Channel, Commit, EmailChannel, PermanentDeliveryError
from services.notifier.models import outbox
from shared.events import (
    Envelope,
    OpenNegotiationNoticeDelivered,
    OpenNegotiationNoticeIssued,
    deterministic_event_id,
)
from shared.kafka.outbox import add_to_outbox

NOTICE = OpenNegotiationNoticeIssued.event_type


async def send_notice(channel: Channel, env: Envelope, target: str, commit: Commit) -> str:
    """Email the notice to ``target`` with its PDF; the Message-ID. Only email carries notices."""
    if not isinstance(channel, EmailChannel):
        raise PermanentDeliveryError(f"a notice goes by email, not by {channel.name}")
    notice = OpenNegotiationNoticeIssued.model_validate(env.payload)
    text = (
        f"Open Negotiation Notice for claim {env.claim_id}: see the attached PDF "
        f"(SHA-256 {notice.pdf_sha256})."
    )
    return await channel.send_email(
        target,
        notice.subject,
        text,
        notice.html,
        str(env.event_id),
        attachments=[
            (
                f"open-negotiation-notice-{env.claim_id}.pdf",
                "application/pdf",
                base64.b64decode(notice.pdf_base64),
            )
        ],
        commit=commit,
    )


async def stage_proof(
    session: AsyncSession,
    env: Envelope,
    *,
    sent_at: datetime | None,
    message_id: str | None = None,
    detail: str | None = None,
) -> None:
    """``OpenNegotiationNoticeDelivered`` for the notice ``env``: sent (``sent_at``) or failed
    for good (``detail``), in the caller's transaction (the one that records the delivery's outcome)."""
    notice = OpenNegotiationNoticeIssued.model_validate(env.payload)
    proof = OpenNegotiationNoticeDelivered(
        notice_id=notice.notice_id,
        recipient=notice.recipient,
        channel="email",
        status="sent" if sent_at is not None else "failed",
        message_id=message_id,
        sent_at=sent_at,
        detail=None if sent_at is not None else (detail or "not delivered")[:500],
    )
    await add_to_outbox(
        session,
        outbox,
        Envelope.wrap(
            proof,
            tenant_id=env.tenant_id,
            claim_id=env.claim_id,
            # a failure has an id of its own: a send that overran it (and went out) is still heard
            event_id=deterministic_event_id(str(env.event_id), "delivered")
            if sent_at is not None
            else deterministic_event_id(str(env.event_id), "delivered", "failed"),
        ),
    )
