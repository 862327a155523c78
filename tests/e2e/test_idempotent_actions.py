"""Idempotent actions on the real stack: a payment posted twice with one ``Idempotency-Key`` counts
once, the key reused for another amount is a 409, and a double-submitted notice is one notice and
one email (without a key, the second is refused unless it says ``resend``)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from deploy.devstack import Stack
from tests.e2e.test_lifecycle_http import stage_is, window_dates
from tests.e2e.test_spine import CAL, NY, auth, claim_status, post_claim, running, url, wait_for
from tests.integration.conftest import claim

__all__ = ["running"]  # the module-scoped fixture that starts the services

PROBLEM = "application/problem+json"


async def post_action(
    stack: Stack,
    cid: str,
    action: str,
    body: dict[str, Any],
    *,
    key: str | None = None,
    service: str = "dispute",
) -> httpx.Response:
    if service == "negotiation":
        path = f"/v1/claims/{cid}/open-negotiation/{action}"
    else:
        path = f"/v1/claims/{cid}/actions/{action}"
    headers = {**auth(stack), "X-Actor": "jane@billing.example", **({"Idempotency-Key": key} if key else {})}
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(url(stack, service, path), json=body, headers=headers)


async def claim_in_payment_due(stack: Stack) -> str:
    """A claim whose open negotiation started before idrflow knew it, driven to ``payment_due``
    (1,150.00 owed) through the action endpoints."""
    start, day31, today = window_dates()
    cid = f"IK-{uuid.uuid4().hex[:8]}"
    body = claim(
        claim_id=cid,
        bill_sent_on=(start - timedelta(days=20)).isoformat(),
        initial_payment_received_on=start.isoformat(),
        open_negotiation_started_on=start.isoformat(),
    )
    body["lines"][0]["service_date"] = (start - timedelta(days=30)).isoformat()
    assert (await post_claim(stack, body)).status_code == 202
    await wait_for("IDR initiation window", lambda: stage_is(stack, cid, "idr_initiation_window"))
    today_ = today.isoformat()
    steps: list[tuple[str, dict[str, Any]]] = [
        ("idr-initiated", {"initiated_on": day31.isoformat(), "dispute_number": "DISP-IK"}),
        ("entity-selected", {"selected_on": today_, "entity": "Maximus", "by": "joint"}),
        ("offer-submitted", {"submitted_on": today_, "amounts": {"1": "1500.00"}}),
        ("fees-paid", {"paid_on": today_, "administrative_fee": "15.00", "idre_fee": "475.00"}),
        (
            "determination",
            {
                "determined_on": today_,
                "lines": [{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}],
            },
        ),
    ]
    for action, payload in steps:
        r = await post_action(stack, cid, action, payload)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["stage"] == "payment_due" and r.json()["amount_owed"] == "1150.00"
    return cid


async def test_a_payment_posted_twice_with_one_key_counts_once(running: Stack) -> None:
    cid = await claim_in_payment_due(running)
    today = datetime.now(UTC).astimezone(NY).date().isoformat()
    key = f"pay-{uuid.uuid4()}"
    payment = {"received_on": today, "amount": "600.00", "reference": "EFT-1"}

    first = await post_action(running, cid, "payment-received", payment, key=key)
    again = await post_action(running, cid, "payment-received", payment, key=key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert first.json()["stage"] == "payment_due" and first.json()["amount_received"] == "600.00"

    # the same key for another amount is refused; nothing is recorded
    other = await post_action(running, cid, "payment-received", {**payment, "amount": "650.00"}, key=key)
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    bad = await post_action(running, cid, "payment-received", payment, key="x" * 201)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Idempotency-Key"

    status = (await claim_status(running, cid)).json()
    assert status["amount_received"] == "600.00" and status["stage"] == "payment_due"
    assert len([a for a in status["actions"] if a["action"] == "payment_received"]) == 1

    # a new key is a new payment: the rest arrives and the claim is paid
    rest = {"received_on": today, "amount": "550.00", "reference": "EFT-2"}
    paid = await post_action(running, cid, "payment-received", rest, key=f"pay-{uuid.uuid4()}")
    assert paid.status_code == 200 and paid.json()["stage"] == "paid", paid.text
    assert paid.json()["amount_received"] == "1150.00"


async def test_a_double_submitted_notice_is_one_notice_and_one_email(running: Stack) -> None:
    today = datetime.now(UTC).astimezone(NY).date()
    received = CAL.business_days_after(today, -2)
    cid = f"NK-{uuid.uuid4().hex[:8]}"
    body = claim(claim_id=cid, bill_sent_on=None, initial_payment_received_on=received.isoformat())
    body["lines"][0]["service_date"] = (received - timedelta(days=20)).isoformat()
    assert (await post_claim(running, body)).status_code == 202
    await wait_for("open negotiation window", lambda: stage_is(running, cid, "open_negotiation_window"))

    async def notices() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            path = f"/v1/claims/{cid}/open-negotiation/notices"
            got = await client.get(url(running, "negotiation", path), headers=auth(running))
        assert got.status_code == 200, got.text
        rows: list[dict[str, Any]] = got.json()
        return rows

    def mailed() -> list[Any]:
        assert running.mail is not None
        return [
            m
            for m in running.mail.messages
            if str(m["To"]) == "idr@acme.example" and cid in str(m["Subject"])
        ]

    request = {"offer": {"1": "1800.00"}, "sender": {"name": "Jane Roe", "email": "jane@metro.example"}}
    key = f"notice-{uuid.uuid4()}"
    running.stop_service("notifier")  # the notice stays "issued" while the double submits arrive
    try:
        first = await post_action(running, cid, "notices", request, key=key, service="negotiation")
        again = await post_action(running, cid, "notices", request, key=key, service="negotiation")
        assert first.status_code == again.status_code == 202, (first.text, again.text)
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        notice_id = first.json()["notice_id"]
        assert [n["notice_id"] for n in await notices()] == [notice_id]

        # without the key, a second notice is refused while the first is out, naming it
        twice = await post_action(running, cid, "notices", request, service="negotiation")
        assert twice.status_code == 409 and twice.headers["content-type"] == PROBLEM
        assert twice.json()["type"].endswith("/notice-exists") and notice_id in twice.json()["detail"]
        assert twice.json()["errors"][0] == {
            "field": "resend",
            "reason": twice.json()["errors"][0]["reason"],
            "notice_id": notice_id,
        }
        # the key for another body is a 409; resend issues a second notice on purpose
        reused = await post_action(
            running, cid, "notices", {**request, "resend": True}, key=key, service="negotiation"
        )
        assert reused.status_code == 409 and reused.json()["errors"][0]["field"] == "Idempotency-Key"
        resent = await post_action(
            running, cid, "notices", {**request, "resend": True}, service="negotiation"
        )
        assert resent.status_code == 202 and resent.json()["notice_id"] != notice_id, resent.text
        assert len(await notices()) == 2
    finally:
        running.start_service("notifier")
        running.wait_healthy(("notifier",))

    mails = await wait_for("both notice emails", lambda: (m := mailed()) and len(m) >= 2 and m)
    await asyncio.sleep(3)  # nothing more arrives: one email per notice
    assert len(mailed()) == 2 == len(mails)

    async def all_sent() -> Any:
        rows = await notices()
        return rows if {n["status"] for n in rows} == {"sent"} else None

    rows = await wait_for("the delivery proofs", all_sent)
    assert {n["message_id"] for n in rows} == {str(m["Message-ID"]) for m in mailed()}
    await wait_for("open negotiation", lambda: stage_is(running, cid, "open_negotiation"))
