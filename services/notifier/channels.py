"""Notification channels behind one interface: email (SMTP, aiosmtplib) and Slack (webhook, slack_sdk)."""

from __future__ import annotations

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
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.email_from
        msg["To"] = target
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False)
        # the same alert always carries the same Message-ID, so a receiving system can drop a repeat
        msg["Message-ID"] = f"<{message.event_id}@idrflow>"
        msg["X-Idrflow-Event-Id"] = message.event_id
        msg.set_content(message.text)
        msg.add_alternative(message.html, subtype="html")
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
