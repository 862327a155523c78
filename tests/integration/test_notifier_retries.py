"""How the sender treats a channel's answers (issue 10 item 3): a Slack 429 is tried again after its
Retry-After (and is not counted as a failed attempt); a 4xx such as 404 no_service fails the delivery
at once without retries, reported at ERROR without the target; a 5xx is retried with backoff until
``notifier_max_attempts``, then fails for good."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from deploy.devstack import Stack
from services.notifier.channels import default_channels, retry_after_seconds
from services.notifier.outcomes import backoff
from services.notifier.sender import DeliverySender
from shared.db import get_engine
from shared.settings import Settings, get_settings
from tests.integration.test_notifier_isolation import alert_for, delivery, record, tenant_with_slack, webhook


def test_retry_after_and_backoff() -> None:
    assert retry_after_seconds({"Retry-After": "7"}, 1.0) == 7.0
    assert retry_after_seconds({"retry-after": "garbage"}, 1.0) == 1.0
    assert retry_after_seconds({}, 3.0) == 3.0
    settings = Settings(notifier_retry_base_seconds=2, notifier_retry_cap_seconds=10)
    for attempts, full in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (40, 10.0)):
        assert full / 2 <= backoff(attempts, settings) <= full
    with pytest.raises(ValueError):
        Settings(slack_timeout_seconds=0)
    with pytest.raises(ValueError):
        Settings(smtp_timeout_seconds=-1)


async def test_a_429_is_tried_again_after_its_retry_after(stack: Stack) -> None:
    settings = get_settings().model_copy(update={"notifier_per_target_concurrency": 1})
    engine = get_engine()
    async with webhook((429, {"Retry-After": "2"}, "rate_limited")) as (hook, url):
        tenant = await tenant_with_slack(stack, "limited", url)
        first, second = alert_for(tenant, 2), alert_for(tenant, 1)
        await record(settings, first)
        await record(settings, second)
        sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
        assert await sender.run_once() == 1  # one call at a time per target
        rows = [await delivery(engine, e.event_id) for e in (first, second)]
        limited = next(r for r in rows if r.detail)
        assert limited.status == "pending" and limited.attempts == 0  # not counted as a failure
        assert "429" in limited.detail and "retry after 2 s" in limited.detail
        assert limited.next_attempt_at - limited.updated_at == timedelta(seconds=2)
        # the webhook is rate limited, not the message: the other alert waits as long
        assert all(r.next_attempt_at >= limited.next_attempt_at for r in rows)

        async with asyncio.timeout(30):
            while len(hook.posts) < 3:
                await sender.run_once()
                await asyncio.sleep(0.05)
        rows = [await delivery(engine, e.event_id) for e in (first, second)]
    assert [r.status for r in rows] == ["sent", "sent"]
    assert sorted(r.attempts for r in rows) == [1, 1]
    # the 429's retry came after the time Slack asked for
    assert hook.posts[1][0] - hook.posts[0][0] >= 2.0


async def test_a_404_fails_at_once_and_is_reported_without_the_target(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = get_settings()
    engine = get_engine()
    async with webhook((404, {}, "no_service")) as (hook, url):
        tenant = await tenant_with_slack(stack, "gone", url)
        env = alert_for(tenant)
        await record(settings, env)
        sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
        with caplog.at_level(logging.ERROR, logger="services.notifier.sender"):
            assert await sender.run_once() == 1
        row = await delivery(engine, env.event_id)
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
        assert "404" in row.detail and "no_service" in row.detail
        assert await sender.run_once() == 0  # never tried again
        assert len(hook.posts) == 1
    reports = [r.getMessage() for r in caplog.records if "failed for good" in r.getMessage()]
    assert len(reports) == 1 and str(env.event_id) in reports[0] and env.claim_id in reports[0]
    assert url not in reports[0] and "Acme" not in reports[0]


async def test_a_5xx_is_retried_with_backoff_then_fails_for_good(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = get_settings().model_copy(
        update={"notifier_max_attempts": 3, "notifier_retry_base_seconds": 0.2}
    )
    engine = get_engine()
    async with webhook(then=(500, {}, "internal_error")) as (hook, url):
        tenant = await tenant_with_slack(stack, "broken", url)
        env = alert_for(tenant)
        await record(settings, env)
        sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
        with caplog.at_level(logging.ERROR, logger="services.notifier.sender"):
            async with asyncio.timeout(30):
                while (row := await delivery(engine, env.event_id)).status != "failed":
                    await sender.run_once()
                    await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert await sender.run_once() == 0
    assert row.attempts == 3 and len(hook.posts) == 3 and "500" in row.detail
    assert any("failed for good after 3 attempt(s)" in r.getMessage() for r in caplog.records)


async def test_a_delivery_rate_limited_for_a_day_fails_and_is_reported(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that answers 429 for ever does not keep an alert pending for ever; an old alert that
    meets its first 429 (a backlog after an outage) waits its turn like any other."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from services.notifier.models import deliveries

    settings = get_settings().model_copy(update={"notifier_rate_limited_give_up_hours": 24.0})
    engine = get_engine()
    limited = (429, {"Retry-After": "1"}, "rate_limited")
    async with webhook(limited, then=limited) as (hook, url):
        tenant = await tenant_with_slack(stack, "forever", url)
        backlog, stuck = alert_for(tenant), alert_for(tenant)
        backlog = backlog.model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(hours=30)})
        await record(settings, backlog)
        await record(settings, stuck)
        async with engine.begin() as conn:  # the channel has refused this one since yesterday
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == stuck.event_id)
                .values(rate_limited_since=datetime.now(UTC) - timedelta(hours=25))
            )
        sender = DeliverySender(engine, settings, default_channels(settings), tenants=[tenant])
        with caplog.at_level(logging.ERROR, logger="services.notifier.sender"):
            async with asyncio.timeout(30):
                while (await delivery(engine, stuck.event_id)).status != "failed" or len(hook.posts) < 3:
                    await sender.run_once()
                    await asyncio.sleep(0.1)
        gave_up, waiting = await delivery(engine, stuck.event_id), await delivery(engine, backlog.event_id)
    assert "rate limited since" in gave_up.detail and "given up" in gave_up.detail
    assert waiting.status == "pending" and "429" in waiting.detail and waiting.rate_limited_since is not None
    assert any("rate limited for too long" in r.getMessage() for r in caplog.records)
    assert url not in caplog.text  # the webhook is a secret
