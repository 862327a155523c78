"""The notifier's sender: sends the deliveries the alert and notice consumers recorded, from a
durable schedule (the ``deliveries`` rows themselves: ``status``, ``attempts``, ``next_attempt_at``;
outcomes are written by :mod:`services.notifier.outcomes`, a notice's email by
:mod:`services.notifier.notices`).

- A pass claims due ``pending`` rows with ``FOR UPDATE SKIP LOCKED`` (several notifiers may run),
  at most ``notifier_per_target_concurrency`` in flight per (channel, target) in this process (a
  burst to one webhook or mailbox goes a few at a time; other targets are claimed beside it), and
  marks them ``claimed`` (attempts + 1, ``next_attempt_at`` = the end of the claim) in its own
  transaction. Right before the step that cannot be taken back (SMTP DATA, the webhook POST; the
  connection and the SMTP envelope come first) the row becomes ``sending``.
- Up to ``notifier_send_concurrency`` sends run at once, each bounded by its channel's timeout, so a
  target that does not answer holds one slot for that long and every other target goes on.
- Outcomes: ``sent``; rate limited (429: due again after its Retry-After, not counted as an
  attempt, and the target's other pending rows wait as long; ``failed`` once the channel has
  refused it with 429 for longer than ``notifier_rate_limited_give_up_hours``); permanent (a 4xx, a refused
  recipient: ``failed`` at once); anything else (5xx, timeouts, connection errors): due again after
  a capped exponential backoff with jitter, ``failed`` after ``notifier_max_attempts``. A delivery
  that fails for good is logged at ERROR with ids only (no patient data, no target).
- At most once: a row still ``claimed`` after its claim expired belonged to a process that died
  before anything reached the channel: it is due again. A row still ``sending`` was being sent by a
  process that died between the irrevocable step and recording the answer (a few milliseconds). It
  is not sent again (a second Slack post or email is worse than a missing record); it becomes
  ``unconfirmed`` and is reported, for a person to check. Open negotiation notices are the exception:
  sent again with the same Message-ID (a missing notice is worse than a repeat).

New rows are picked up within ``notifier_poll_seconds``, at once when the alert consumer of the same
process wakes the sender after its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, case, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.channels import Channel, PermanentDeliveryError, RateLimited
from services.notifier.models import deliveries
from services.notifier.notices import NOTICE, send_notice
from services.notifier.outcomes import Claimed, Outcome, record_outcome
from services.notifier.service import render_alert
from shared.db import unit_of_work
from shared.metrics import observe_alert_delivered
from shared.settings import Settings
from shared.tracing import delivery_span

log = logging.getLogger(__name__)

_RECOVERY_INTERVAL_SECONDS = 5.0
UNCONFIRMED = (
    "the notifier stopped after calling the channel and before recording its answer; "
    "not sent again: check the channel"
)


def send_deadline(settings: Settings, channel: str) -> float:
    """The longest one call to ``channel`` may take (the channel's own timeouts fit inside it)."""
    per_channel = {
        "slack": settings.slack_timeout_seconds + 1.0,
        "email": 3 * settings.smtp_timeout_seconds + 1.0,
    }
    return per_channel.get(channel, max(per_channel.values()))


def claim_lease(settings: Settings, channel: str) -> timedelta:
    """How long a ``sending`` row belongs to its sender: the call's bound plus time to record the
    answer. A row still ``sending`` past that was claimed by a sender that died (or froze)."""
    return timedelta(seconds=send_deadline(settings, channel) + 10.0)


class LeaseLost(Exception):
    """This sender's claim on a delivery expired and another took it: it must not send."""


class DeliverySender:
    """Sends due deliveries; ``tenants`` limits it to those tenants' rows (default: every tenant)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        channels: Mapping[str, Channel],
        tenants: Collection[str] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.channels = dict(channels)
        self.tenants = sorted(tenants) if tenants is not None else None
        self._wake = asyncio.Event()
        self._busy: Counter[tuple[str, str]] = Counter()  # sends in flight by (channel, target)
        self._tasks: set[asyncio.Task[None]] = set()

    def _mine(self) -> tuple[ColumnElement[bool], ...]:
        return () if self.tenants is None else (deliveries.c.tenant_id.in_(self.tenants),)

    def wake(self) -> None:
        """New rows are committed: look now rather than at the next poll."""
        self._wake.set()

    async def recover(self) -> int:
        """A row whose sender died before the irrevocable step (``claimed``, its claim expired) is due
        again; an alert whose sender died during it (``sending``) is marked ``unconfirmed``: not sent
        again; a notice is (see :mod:`services.notifier.notices`)."""
        d = deliveries
        now = datetime.now(UTC)
        async with unit_of_work(self.engine) as session:
            await session.execute(
                update(d)
                .where(d.c.status == "claimed", d.c.next_attempt_at <= now, *self._mine())
                .values(status="pending", next_attempt_at=now, updated_at=now)
            )
            # a notice is sent again (at least once, with the same Message-ID): a missing open
            # negotiation notice costs the claim its negotiation; a repeat the recipient can drop
            again = await session.execute(
                update(d)
                .where(
                    d.c.status == "sending",
                    d.c.event_type == NOTICE,
                    d.c.next_attempt_at <= now,
                    *self._mine(),
                )
                .values(status="pending", next_attempt_at=now, updated_at=now)
                .returning(d.c.id, d.c.event_id, d.c.claim_id)
            )
            for r in again.all():
                log.warning(
                    "delivery %s of notice %s for claim %s was interrupted mid-send: sent again "
                    "(same Message-ID)",
                    r.id,
                    r.event_id,
                    r.claim_id,
                )
        stmt = (
            update(d)
            .where(d.c.status == "sending", d.c.next_attempt_at <= now, *self._mine())
            .values(status="unconfirmed", next_attempt_at=None, updated_at=now, detail=UNCONFIRMED)
            .returning(d.c.id, d.c.event_id, d.c.tenant_id, d.c.claim_id, d.c.channel)
        )
        async with unit_of_work(self.engine) as session:
            rows = (await session.execute(stmt)).all()
        for r in rows:
            log.error(
                "delivery %s of alert %s for tenant %s claim %s by %s was interrupted mid-send: "
                "not sent again (unconfirmed)",
                r.id,
                r.event_id,
                r.tenant_id,
                r.claim_id,
                r.channel,
            )
        return len(rows)

    async def claim(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due rows, at most ``notifier_per_target_concurrency`` in flight per
        (channel, target): one webhook or mailbox gets a few sends at once, never the whole burst."""
        if limit <= 0:
            return []
        d = deliveries
        now = datetime.now(UTC)
        due = select(d.c.id, d.c.channel, d.c.target).where(
            d.c.status == "pending", d.c.next_attempt_at <= now
        )
        due = due.where(*self._mine())
        per_target = self.settings.notifier_per_target_concurrency
        full = sorted(k for k, n in self._busy.items() if n >= per_target)
        if full:
            due = due.where(tuple_(d.c.channel, d.c.target).not_in(full))
        due = due.order_by(d.c.next_attempt_at, d.c.id).limit(limit * 4).with_for_update(skip_locked=True)
        async with unit_of_work(self.engine) as session:
            picked: list[int] = []
            room: dict[tuple[str, str], int] = {}
            for r in (await session.execute(due)).all():
                if len(picked) >= limit:
                    break
                key = (r.channel, r.target)
                left = room.setdefault(key, per_target - self._busy[key])
                if left > 0:
                    picked.append(r.id)
                    room[key] = left - 1
            if not picked:
                return []
            stmt = (
                update(d)
                .where(d.c.id.in_(picked))
                .values(
                    status="claimed",
                    attempts=d.c.attempts + 1,
                    next_attempt_at=case(
                        {c: now + claim_lease(self.settings, c) for c in ("slack", "email")},
                        value=d.c.channel,
                        else_=now + claim_lease(self.settings, ""),
                    ),
                    updated_at=now,
                )
                .returning(
                    d.c.id,
                    d.c.event_id,
                    d.c.tenant_id,
                    d.c.claim_id,
                    d.c.channel,
                    d.c.target,
                    d.c.attempts,
                    d.c.envelope,
                    d.c.rate_limited_since,
                )
            )
            rows = (await session.execute(stmt)).all()
        claimed = [Claimed(*r) for r in rows]
        self._busy.update(c.key for c in claimed)
        return claimed

    async def _call(self, c: Claimed) -> Outcome:
        channel = self.channels.get(c.channel)
        if channel is None:
            return Outcome("permanent", f"no channel {c.channel!r} in this notifier", "unknown channel")
        try:
            env = c.event
            message = None if env.event_type == NOTICE else render_alert(env, self.settings)
        except Exception as exc:
            reason = f"the alert cannot be rendered ({type(exc).__name__})"
            return Outcome("permanent", reason, reason)
        deadline = send_deadline(self.settings, c.channel)

        async def commit() -> None:
            """``sending``: from here a crash leaves the delivery unconfirmed (never sent twice)."""
            d = deliveries
            async with unit_of_work(self.engine) as session:
                mine = await session.execute(
                    update(d)
                    .where(d.c.id == c.id, d.c.attempts == c.attempts, d.c.status == "claimed")
                    .values(status="sending", updated_at=datetime.now(UTC))
                    .returning(d.c.id)
                )
                if mine.first() is None:
                    raise LeaseLost(f"delivery {c.id}: its claim expired and was taken over")

        try:
            with delivery_span(c.envelope, c.channel):
                async with asyncio.timeout(deadline):
                    if message is None:
                        provider_id = await send_notice(channel, env, c.target, commit)
                    else:
                        provider_id = await channel.send(c.target, message, commit)
        except LeaseLost as exc:
            return Outcome("lost", str(exc), "claim lost")
        except RateLimited as exc:
            return Outcome("rate_limited", str(exc)[:2000], "rate limited", exc.retry_after)
        except PermanentDeliveryError as exc:
            return Outcome("permanent", str(exc)[:2000], str(exc)[:200])
        except TimeoutError:
            return Outcome("retry", f"no answer within {deadline:g} s", "timeout")
        except Exception as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}"[:2000], type(exc).__name__)
        return Outcome("sent", provider_id)

    async def _send(self, c: Claimed) -> None:
        try:
            outcome = await self._call(c)
            for attempt in range(3):  # the database blinked: a row left `sending` would end unconfirmed
                try:
                    await record_outcome(self.engine, self.settings, c, outcome)
                    break
                except Exception as exc:
                    log.warning("delivery %s: could not record its outcome: %s", c.id, type(exc).__name__)
                    await asyncio.sleep(0.5 * 2**attempt)
            else:
                log.error(
                    "delivery %s of %s for claim %s by %s: its outcome (%s) could not be recorded; "
                    "recovery will treat it as interrupted",
                    c.id,
                    c.event_id,
                    c.claim_id,
                    c.channel,
                    outcome.kind,
                )
            if outcome.kind == "sent" and not c.is_notice:
                observe_alert_delivered(c.envelope, c.channel)
                log.info("alert %s for claim %s sent by %s", c.event_id, c.claim_id, c.channel)
        finally:
            self._busy[c.key] -= 1
            if self._busy[c.key] <= 0:
                del self._busy[c.key]
            self._wake.set()

    async def run_once(self) -> int:
        """One pass: recover, claim what is due, send it and wait for the answers."""
        await self.recover()
        claimed = await self.claim(self.settings.notifier_send_concurrency)
        await asyncio.gather(*(self._send(c) for c in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Send due deliveries until ``stop`` is set, then wait briefly for the sends in flight."""
        loop = asyncio.get_running_loop()
        next_recovery = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                if loop.time() >= next_recovery:
                    await self.recover()
                    next_recovery = loop.time() + _RECOVERY_INTERVAL_SECONDS
                claimed = await self.claim(self.settings.notifier_send_concurrency - len(self._tasks))
            except Exception as exc:
                log.warning("notifier sender: cannot read the schedule, will retry: %s", type(exc).__name__)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
                continue
            for c in claimed:
                task = asyncio.create_task(self._send(c))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if claimed:
                continue  # other targets may be due as well
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.notifier_poll_seconds)
        if self._tasks:  # a send cut short here stays `sending` and ends unconfirmed
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=10)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)


@asynccontextmanager
async def sending(sender: DeliverySender) -> AsyncIterator[DeliverySender]:
    """Run the sender in the background for the life of the block (the notifier's lifespan)."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        sender.wake()
        with suppress(Exception):
            await asyncio.wait_for(task, 15)
