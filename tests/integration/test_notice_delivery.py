"""Open negotiation notices go out from the delivery schedule: an SMTP outage delays a notice (it
is retried with backoff, never dead-lettered) and its proof follows the one email that went out; a
recipient the mail server refuses for good is proven ``failed`` with the reason."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.devstack import Stack
from deploy.servers import free_port
from services.notifier.channels import default_channels
from services.notifier.consumer import NoticeHandler
from services.notifier.models import deliveries, outbox
from services.notifier.outcomes import Outcome, record_outcome
from services.notifier.sender import DeliverySender
from shared.db import get_engine, unit_of_work
from shared.events import Envelope, OpenNegotiationNoticeIssued, deterministic_event_id
from shared.settings import get_settings
from tests.integration.test_notifier_isolation import delivery

PDF = b"%PDF-1.4\n% a notice\n%%EOF\n"


def notice_for(tenant: str, recipient: str = "idr@acme.example") -> Envelope:
    return Envelope.wrap(
        OpenNegotiationNoticeIssued(
            notice_id=uuid.uuid4(),
            recipient=recipient,
            subject="Open Negotiation Notice: claim NOTICE-1",
            html="<p>Open negotiation</p>",
            pdf_base64=base64.b64encode(PDF).decode(),
            pdf_sha256=hashlib.sha256(PDF).hexdigest(),
        ),
        tenant_id=tenant,
        claim_id=f"NOTICE-{uuid.uuid4().hex[:6]}",
    )


TRACEPARENT = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


async def consume(env: Envelope) -> None:
    """What the notice consumer does with the event, without the broker; in a running notifier the
    consumer's span is current, so the row's envelope carries its traceparent: so does this one."""
    async with unit_of_work(get_engine()) as session:
        await NoticeHandler()(session, env)
        await session.execute(
            update(deliveries)
            .where(deliveries.c.event_id == env.event_id, deliveries.c.envelope.is_not(None))
            .values(envelope=deliveries.c.envelope.op("||")(literal({"_headers": TRACEPARENT}, JSONB)))
        )


async def set_row(engine: AsyncEngine, env: Envelope, **values: Any) -> None:
    async with unit_of_work(engine) as session:
        await session.execute(
            update(deliveries).where(deliveries.c.event_id == env.event_id).values(**values)
        )


async def send_until(sender: DeliverySender, engine: AsyncEngine, env: Envelope, status: str) -> Any:
    async with asyncio.timeout(30):
        while (row := await delivery(engine, env.event_id)).status != status:
            await sender.run_once()
            await asyncio.sleep(0.05)
    return row


async def proof_of(engine: AsyncEngine, env: Envelope, *, failed: bool = False) -> Any:
    """The proof staged for the notice: ``sent``, or (``failed``) the failure's, which has an id of
    its own so that a send that overran it is still heard."""
    parts = ("delivered", "failed") if failed else ("delivered",)
    proof_id = deterministic_event_id(str(env.event_id), *parts)
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(outbox.c.envelope).where(outbox.c.event_id == proof_id))
        ).one_or_none()
    return None if row is None else row.envelope["payload"]


async def rows_of(engine: AsyncEngine, env: Envelope) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(deliveries).where(deliveries.c.event_id == env.event_id)
                )
            ).scalar_one()
        )


async def test_a_notice_waits_out_an_smtp_outage_and_its_proof_follows_the_one_email(stack: Stack) -> None:
    assert stack.mail is not None
    engine = get_engine()
    settings = get_settings().model_copy(update={"notifier_retry_base_seconds": 0.2})
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    env = notice_for(tenant)
    await consume(env)
    await consume(env)  # the event again (a redelivery): still one delivery
    assert await rows_of(engine, env) == 1

    # the mail server is down: tried, due again later, nothing proven yet
    down = settings.model_copy(update={"smtp_port": free_port()})
    outage = DeliverySender(engine, down, default_channels(down), tenants=[tenant])
    async with asyncio.timeout(30):
        while (await delivery(engine, env.event_id)).attempts < 2:
            await outage.run_once()
            await asyncio.sleep(0.05)
    row = await delivery(engine, env.event_id)
    assert row.status == "pending" and row.attempts == 2 and "Connect" in row.detail
    assert await proof_of(engine, env) is None

    # the mail server is back: sent once, with its PDF, and proven with its Message-ID
    sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
    async with asyncio.timeout(30):
        while (await delivery(engine, env.event_id)).status != "sent":
            await sender.run_once()
            await asyncio.sleep(0.05)
    assert await sender.run_once() == 0
    mails = [m for m in stack.mail.messages if str(m["Message-ID"]) == f"<{env.event_id}@idrflow>"]
    assert len(mails) == 1 and str(mails[0]["To"]) == "idr@acme.example"
    attachments = list(mails[0].iter_attachments())
    assert [a.get_content() for a in attachments] == [PDF]
    proof = await proof_of(engine, env)
    assert proof["status"] == "sent" and proof["message_id"] == str(mails[0]["Message-ID"])
    assert proof["notice_id"] == str(env.payload["notice_id"]) and proof["sent_at"]


class _Refuses:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return "550 5.1.1 no such mailbox"


@pytest.fixture
def refusing_smtp() -> Any:
    port = free_port()
    controller = Controller(_Refuses(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def test_a_recipient_refused_for_good_is_proven_failed_with_the_reason(
    stack: Stack, refusing_smtp: int
) -> None:
    engine = get_engine()
    settings = get_settings().model_copy(update={"smtp_port": refusing_smtp})
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    env = notice_for(tenant, recipient="nobody@acme.example")
    await consume(env)
    sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
    assert await sender.run_once() == 1
    row = await delivery(engine, env.event_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    proof = await proof_of(engine, env, failed=True)
    assert proof["status"] == "failed" and proof["sent_at"] is None
    assert "refused the recipient" in proof["detail"] and "550" in proof["detail"]
    assert await sender.run_once() == 0


async def test_an_interrupted_notice_is_sent_again_not_left_unconfirmed(stack: Stack) -> None:
    """A notifier that died mid-send leaves the row ``sending``: an alert is then left unconfirmed
    (never twice), a notice is sent again with the same Message-ID (never missing)."""
    assert stack.mail is not None
    engine = get_engine()
    settings = get_settings()
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    env = notice_for(tenant)
    await consume(env)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await set_row(engine, env, status="sending", attempts=1, next_attempt_at=long_ago)
    sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
    assert await sender.recover() == 0  # none unconfirmed
    assert (await delivery(engine, env.event_id)).status == "pending"
    row = await send_until(sender, engine, env, "sent")
    assert row.attempts == 2
    assert [str(m["Message-ID"]) for m in stack.mail.messages].count(f"<{env.event_id}@idrflow>") == 1
    assert (await proof_of(engine, env))["status"] == "sent"


async def test_a_notice_is_retried_for_hours_not_attempts_then_proven_failed(stack: Stack) -> None:
    engine = get_engine()
    down = get_settings().model_copy(
        update={
            "smtp_port": free_port(),
            "notifier_max_attempts": 1,
            "notifier_retry_base_seconds": 0.1,
            "notifier_notice_give_up_hours": 24.0,
        }
    )
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    env = notice_for(tenant)
    await consume(env)
    sender = DeliverySender(engine, down, default_channels(down), tenants=[tenant])
    assert await sender.run_once() == 1
    row = await delivery(engine, env.event_id)
    assert row.status == "pending" and row.attempts == 1  # past the attempts, within the hours
    # issued 25 hours ago: the next failure is the last, and the negotiation service hears why
    issued = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    await set_row(
        engine,
        env,
        envelope=deliveries.c.envelope.op("||")(literal({"occurred_at": issued}, JSONB)),
    )
    row = await send_until(sender, engine, env, "failed")
    proof = await proof_of(engine, env, failed=True)
    assert proof["status"] == "failed" and proof["sent_at"] is None and "Connect" in proof["detail"]


async def test_rows_from_before_notices_were_scheduled(stack: Stack) -> None:
    """The previous release emailed notices from the consumer and logged each try as a row without
    an envelope: a notice it failed to send is scheduled when its event comes again; one it sent has
    its proof staged again (the previous release staged it with the inbox commit), not a second email."""
    assert stack.mail is not None
    engine = get_engine()
    settings = get_settings()
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    failed, sent = notice_for(tenant), notice_for(tenant, recipient="payer@acme.example")
    now = datetime.now(UTC)
    async with unit_of_work(engine) as session:
        for env, status in ((failed, "failed"), (sent, "sent")):
            await session.execute(
                insert(deliveries).values(
                    event_id=env.event_id,
                    tenant_id=tenant,
                    claim_id=env.claim_id,
                    event_type=env.event_type,
                    channel="email",
                    target=env.payload["recipient"],
                    status=status,
                    attempts=1,
                    provider_message_id=f"<{env.event_id}@idrflow>" if status == "sent" else None,
                    sent_at=now if status == "sent" else None,
                    detail=None if status == "sent" else "SMTPConnectError: refused",
                    updated_at=now,
                )
            )
    await consume(failed)
    await consume(sent)
    assert (await delivery(engine, failed.event_id)).status == "pending"
    proof = await proof_of(engine, sent)
    assert proof["status"] == "sent" and proof["message_id"] == f"<{sent.event_id}@idrflow>"

    sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
    await send_until(sender, engine, failed, "sent")
    assert (await proof_of(engine, failed))["status"] == "sent"
    assert await sender.run_once() == 0
    ids = [str(m["Message-ID"]) for m in stack.mail.messages]
    assert ids.count(f"<{failed.event_id}@idrflow>") == 1 and ids.count(f"<{sent.event_id}@idrflow>") == 0


async def test_a_send_that_overran_its_lease_is_recorded_sent_and_not_sent_again(stack: Stack) -> None:
    """Sender A reached DATA, then stalled past its lease; recovery queued the notice again. A's
    answer still marks it sent (by id), so no other sender emails it a second time."""
    engine = get_engine()
    settings = get_settings()
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    env = notice_for(tenant)
    await consume(env)
    sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
    (claimed,) = await sender.claim(1)
    await set_row(engine, env, status="sending", next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    await sender.recover()
    assert (await delivery(engine, env.event_id)).status == "pending"
    await record_outcome(engine, settings, claimed, Outcome("sent", f"<{env.event_id}@idrflow>"))
    row = await delivery(engine, env.event_id)
    assert row.status == "sent" and row.provider_message_id == f"<{env.event_id}@idrflow>"
    assert await sender.run_once() == 0
    assert (await proof_of(engine, env))["status"] == "sent"


async def test_the_negotiation_service_keeps_a_sent_notice_sent(stack: Stack) -> None:
    """A failure proof that arrives after the notice was proven sent changes nothing."""
    from services.negotiation.models import notices
    from services.negotiation.service import record_delivery
    from shared.events import OpenNegotiationNoticeDelivered

    engine = get_engine()
    tenant = f"notice-{uuid.uuid4().hex[:6]}"
    notice_id = uuid.uuid4()
    async with unit_of_work(engine) as session:
        await session.execute(
            insert(notices).values(
                notice_id=notice_id,
                tenant_id=tenant,
                claim_id="NOTICE-KEPT",
                recipient="idr@acme.example",
                content={},
                html="<p>notice</p>",
                pdf=PDF,
                pdf_sha256=hashlib.sha256(PDF).hexdigest(),
            )
        )
    sent_at = datetime.now(UTC)
    for proof in (
        OpenNegotiationNoticeDelivered(
            notice_id=notice_id,
            recipient="idr@acme.example",
            channel="email",
            status="sent",
            message_id="<m@idrflow>",
            sent_at=sent_at,
        ),
        OpenNegotiationNoticeDelivered(
            notice_id=notice_id,
            recipient="idr@acme.example",
            channel="email",
            status="failed",
            detail="SMTPServerDisconnected",
        ),
    ):
        async with unit_of_work(engine) as session:
            await record_delivery(session, tenant, proof)
    async with engine.connect() as conn:
        row = (await conn.execute(select(notices).where(notices.c.notice_id == notice_id))).one()
    assert (row.status, row.message_id, row.detail) == ("sent", "<m@idrflow>", None)
