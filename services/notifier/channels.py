"""Notification channels behind one interface: email (SMTP, aiosmtplib) and Slack (webhook, slack_sdk)."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiosmtplib
from slack_sdk.webhook.async_client import AsyncWebhookClient

from services.notifier.service import AlertMessage
from shared.settings import Settings


class DeliveryError(Exception):
    """The channel refused the message."""


class Channel(Protocol):
    name: str

    async def send(self, target: str, message: AlertMessage) -> str:
        """Deliver ``message`` to ``target``; return the provider's message id."""
        ...


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, target: str, message: AlertMessage) -> str:
        return await self.send_email(
            target, message.subject, message.text, message.html, message.event_id, attachments=()
        )

    async def send_email(
        self,
        to: str,
        subject: str,
        text: str,
        html: str,
        event_id: str,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> str:
        """Send one message; return its Message-ID (derived from the event id, so a receiving
        system can drop a repeat). ``attachments`` are (file name, MIME type, bytes)."""
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.email_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<{event_id}@idrflow>"
        msg["X-Idrflow-Event-Id"] = event_id
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        for name, mime, data in attachments:
            maintype, _, subtype = mime.partition("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        await aiosmtplib.send(
            msg,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_start_tls,
            timeout=20,
        )
        return str(msg["Message-ID"])


class SlackChannel:
    name = "slack"

    async def send(self, target: str, message: AlertMessage) -> str:
        client = AsyncWebhookClient(target, timeout=20)
        response = await client.send(text=message.slack_text, blocks=message.slack_blocks)
        if response.status_code != 200:
            raise DeliveryError(f"Slack webhook answered {response.status_code}: {response.body[:200]}")
        return f"slack:{message.event_id}"


def default_channels(settings: Settings) -> dict[str, Channel]:
    return {"email": EmailChannel(settings), "slack": SlackChannel()}
