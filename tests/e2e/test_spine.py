"""The whole stack as separate processes: post a claim over HTTP and read the alert that arrives in
a real SMTP server and a real HTTP server standing in for Slack. Then kill and restart services
mid-flow: no claim is lost and no alert is sent twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from deploy.bootstrap import seed_tenant
from deploy.devstack import SERVICES, Stack
from shared.rules.calendar import federal_calendar
from shared.temporal import connect
from tests.integration.conftest import claim

CAL = federal_calendar()
NY = ZoneInfo("America/New_York")
PATIENT = {"name": "Jane Roe", "member_id": "MEM-778899"}


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[Stack]:
    for name in (*SERVICES, "relay"):
        stack.start_service(name)
    stack.wait_healthy()
    yield stack
    for name in (*SERVICES, "relay"):
        stack.stop_service(name)


def received_for_deadline_tomorrow() -> str:
    """A receipt date whose 30-business-day deadline is the next business day: an alert is due now."""
    today = datetime.now(UTC).astimezone(NY).date()
    target = CAL.business_days_after(today, 1)
    received = target - timedelta(days=60)
    while CAL.business_day_beginning(received, 30) < target:
        received += timedelta(days=1)
    assert CAL.business_day_beginning(received, 30) == target
    return received.isoformat()


def urgent_claim(claim_id: str) -> dict[str, Any]:
    received = received_for_deadline_tomorrow()
    body = claim(claim_id=claim_id, bill_sent_on=None, initial_payment_received_on=received, patient=PATIENT)
    body["lines"][0]["service_date"] = received
    return body


async def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def mails_for(stack: Stack, claim_id: str) -> list[Any]:
    assert stack.mail is not None
    return [m for m in stack.mail.messages if f"claim {claim_id}," in str(m["Subject"])]


def slack_for(stack: Stack, claim_id: str) -> list[dict[str, Any]]:
    assert stack.slack is not None
    return [p for p in stack.slack.posts if f"`{claim_id}`" in p.get("text", "")]


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_key}"}  # type: ignore[attr-defined]


def url(stack: Stack, service: str, path: str) -> str:
    return f"http://127.0.0.1:{stack.ports.of(service)}{path}"


async def post_claim(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(url(stack, "intake", "/v1/claims"), json=body, headers=auth(stack))


async def claim_status(stack: Stack, claim_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.get(
            url(stack, "dispute", f"/v1/claims/{claim_id}"), headers=headers or auth(stack)
        )


async def test_a_posted_claim_reaches_email_and_slack_without_patient_data(running: Stack) -> None:
    cid = f"E2E-{uuid.uuid4().hex[:8]}"
    r = await post_claim(running, urgent_claim(cid))
    assert r.status_code == 202, r.text

    mails = await wait_for("the alert email", lambda: mails_for(running, cid))
    posts = await wait_for("the Slack post", lambda: slack_for(running, cid))
    mail = mails[0]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Open negotiation must start in 1 business day" in str(mail["Subject"])
    assert "Acme Health Plan" in body and "Send the open negotiation notice" in body
    due = CAL.business_days_after(datetime.now(UTC).astimezone(NY).date(), 1).isoformat()
    assert due in body and due in posts[0]["text"]
    for text in (str(mail), str(posts[0])):
        assert "Jane Roe" not in text and "MEM-778899" not in text

    status = (await claim_status(running, cid)).json()
    assert status["stage"] == "open_negotiation_window"
    assert status["deadlines"]["open_negotiation_initiation_deadline"]["due_on"] == due
    assert [r["business_days_before"] for r in status["reminders_sent"]] in ([1], [2])

    async with httpx.AsyncClient() as client:
        deliveries = (
            await client.get(
                url(running, "notifier", "/v1/deliveries"), params={"claim_id": cid}, headers=auth(running)
            )
        ).json()
    assert sorted(d["channel"] for d in deliveries) == ["email", "slack"]
    assert {d["status"] for d in deliveries} == {"sent"}

    client = await connect(running_settings(running))
    found = [
        w.id
        async for w in client.list_workflows(f"IdrClaimId = '{cid}' AND IdrStage = 'open_negotiation_window'")
    ]
    assert found == [f"claim:demo:{cid}"]


def running_settings(stack: Stack) -> Any:
    from shared.settings import get_settings

    return get_settings().model_copy(update={"temporal_address": stack.temporal_address})


async def test_the_issue_example_shows_its_deadline_and_other_tenants_see_nothing(running: Stack) -> None:
    cid = f"CLM-1001-{uuid.uuid4().hex[:6]}"
    assert (await post_claim(running, claim(claim_id=cid))).status_code == 202

    async def known() -> Any:
        r = await claim_status(running, cid)
        return r.json() if r.status_code == 200 and r.json()["deadlines"] else None  # planned

    status = await wait_for("the claim workflow", known)
    deadline = status["deadlines"]["open_negotiation_initiation_deadline"]
    assert deadline["due_on"] == "2026-12-15"
    assert "skipped 2026-11-11 Veterans Day, 2026-11-26 Thanksgiving Day" in deadline["explanation"]

    await seed_tenant(running.database_url, "other", "Other Billing", "other-key-e2e", None, None)
    r = await claim_status(running, cid, headers={"Authorization": "Bearer other-key-e2e"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert (await claim_status(running, cid, headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_killing_services_mid_flow_loses_nothing_and_sends_nothing_twice(running: Stack) -> None:
    before = await post_claim(running, urgent_claim(f"K0-{uuid.uuid4().hex[:8]}"))
    first_id = before.json()["claim_id"]
    await wait_for("the first alert", lambda: mails_for(running, first_id) and slack_for(running, first_id))

    # SIGKILL the consumer-and-worker processes and the relay: no graceful shutdown
    for name in ("dispute", "notifier", "relay"):
        running.stop_service(name, kill=True)
    ids = [f"K{i}-{uuid.uuid4().hex[:8]}" for i in (1, 2)]
    for cid in ids:
        r = await post_claim(running, urgent_claim(cid))
        assert r.status_code == 202  # accepted and durable while the rest is down
    for name in ("relay", "dispute", "notifier"):
        running.start_service(name)
    running.wait_healthy(("dispute", "notifier"))

    for cid in ids:
        await wait_for(
            f"the alert of {cid}", lambda cid=cid: mails_for(running, cid) and slack_for(running, cid), 90
        )
    await asyncio.sleep(5)  # give any duplicate time to show up

    assert running.mail is not None and running.slack is not None
    for cid in [first_id, *ids]:
        per_event = Counter(str(m["X-Idrflow-Event-Id"]) for m in mails_for(running, cid))
        assert per_event and set(per_event.values()) == {1}, per_event
        slack_texts = Counter(p["text"] for p in slack_for(running, cid))
        assert set(slack_texts.values()) == {1}, slack_texts
