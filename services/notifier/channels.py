"""Notification channels behind one interface: email (SMTP, aiosmtplib) and Slack (webhook, slack_sdk).

Every call is bounded by a short timeout (``smtp_timeout_seconds``, ``slack_timeout_seconds``) and
tells the sender what kind of failure it met: :class:`RateLimited` (try again after the time the
provider asked for), :class:`PermanentDeliveryError` (the target can never take it: no retry) or
anything else (retried from the delivery's schedule)."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr, parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import aiosmtplib
from slack_sdk.webhook.async_client import AsyncWebhookClient

from services.notifier.service import AlertMessage
from shared.settings import Settings


class DeliveryError(Exception):
    """The channel refused the message (for now: the delivery is retried)."""


class PermanentDeliveryError(DeliveryError):
    """The target can never take this message (no such webhook, recipient refused): not retried."""


class RateLimited(DeliveryError):
    """The provider asked to wait ``retry_after`` seconds; not counted as a failed attempt."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


Commit = Callable[[], Awaitable[None]]


class Channel(Protocol):
    name: str

    async def send(self, target: str, message: AlertMessage, commit: Commit | None = None) -> str:
        """Deliver ``message`` to ``target``; return the provider's message id. ``commit`` is awaited
        right before the step that cannot be taken back (SMTP DATA, the webhook POST): what went before
        it (connecting, the SMTP envelope) leaves nothing at the other end if the process dies."""
        ...


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local_hostname: str | None = None

    async def local_hostname(self) -> str:
        """This host's name for EHLO, looked up once (aiosmtplib looks it up, in a thread, on every
        connection: a DNS query per email during a burst)."""
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def send(self, target: str, message: AlertMessage, commit: Commit | None = None) -> str:
        return await self.send_email(
            target,
            message.subject,
            message.text,
            message.html,
            message.event_id,
            attachments=(),
            commit=commit,
        )

    async def send_email(
        self,
        to: str,
        subject: str,
        text: str,
        html: str,
        event_id: str,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        commit: Commit | None = None,
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
        try:
            # the timeout bounds each SMTP step; the whole exchange is bounded at three of them
            async with asyncio.timeout(3 * s.smtp_timeout_seconds):
                smtp = aiosmtplib.SMTP(
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password,
                    start_tls=s.smtp_start_tls,
                    timeout=s.smtp_timeout_seconds,
                    local_hostname=await self.local_hostname(),
                )
                async with smtp:  # connected, EHLO, STARTTLS and login as configured
                    await smtp.mail(parseaddr(s.email_from)[1])
                    await smtp.rcpt(to)
                    if commit is not None:
                        await commit()  # only DATA delivers: nothing before it reaches the recipient
                    await smtp.data(msg.as_bytes())
        except aiosmtplib.SMTPRecipientRefused as exc:
            if exc.code >= 500:
                raise PermanentDeliveryError(f"the SMTP server refused the recipient ({exc.code})") from exc
            raise DeliveryError(f"the SMTP server deferred the recipient ({exc.code})") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(f"the SMTP server refused the recipient ({codes})") from exc
            raise DeliveryError(f"the SMTP server deferred the recipient ({codes})") from exc
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                raise PermanentDeliveryError(f"the SMTP server refused the message ({exc.code})") from exc
            raise
        return str(msg["Message-ID"])


def retry_after_seconds(headers: Mapping[str, Any], default: float) -> float:
    """The ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    value = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return default
    return seconds if math.isfinite(seconds) and seconds > 0 else default


class SlackChannel:
    name = "slack"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # one HTTP session for every post: its connections (and TLS sessions) to hooks.slack.com
        # are kept and reused, not opened anew for each alert of a burst
        # (made on the first post, inside the notifier's event loop)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, target: str, message: AlertMessage, commit: Commit | None = None) -> str:
        timeout = self.settings.slack_timeout_seconds
        # no retry handlers: retries come from the delivery's schedule, never inside one call
        client = AsyncWebhookClient(
            target, timeout=math.ceil(timeout), retry_handlers=[], session=self._http()
        )
        if commit is not None:
            await commit()
        async with asyncio.timeout(timeout):
            response = await client.send(text=message.slack_text, blocks=message.slack_blocks)
        status = response.status_code
        if status == 200:
            return f"slack:{message.event_id}"
        reason = f"Slack webhook answered {status}: {str(response.body)[:200]}"
        if status == 429:
            default = self.settings.notifier_retry_base_seconds
            raise RateLimited(reason, retry_after_seconds(response.headers or {}, default))
        if 400 <= status < 500:  # invalid_payload, no_service, channel_is_archived, ...
            raise PermanentDeliveryError(reason)
        raise DeliveryError(reason)


def default_channels(settings: Settings) -> dict[str, Channel]:
    return {"email": EmailChannel(settings), "slack": SlackChannel(settings)}


async def close_channels(channels: Mapping[str, Channel]) -> None:
    """Close what the channels keep open (the Slack channel's HTTP session)."""
    for channel in channels.values():
        close = getattr(channel, "close", None)
        if close is not None:
            await close()
