"""Claims through the lifecycle HTTP APIs on the real stack: one from post to paid (with the dispute
worker killed and restarted mid-flow), one settled through the negotiation API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from deploy.devstack import Stack
from tests.e2e.test_spine import CAL, NY, auth, claim_status, post_claim, running, url, wait_for
from tests.integration.conftest import claim

__all__ = ["running"]  # the module-scoped fixture that starts the services


def window_dates() -> tuple[date, date, date]:
    """(open negotiation start, business day 31, today) with today inside business days 31-34."""
    today = datetime.now(UTC).astimezone(NY).date()
    start = today - timedelta(days=70)
    while CAL.business_day_beginning(start, 34) < today:
        start += timedelta(days=1)
    assert CAL.business_day_beginning(start, 31) <= today <= CAL.business_day_beginning(start, 34)
    return start, CAL.business_day_beginning(start, 31), today


async def act(
    stack: Stack, cid: str, action: str, body: dict[str, Any], service: str = "dispute"
) -> httpx.Response:
    if service == "negotiation":
        path = f"/v1/claims/{cid}/open-negotiation/{action}"
    else:
        path = f"/v1/claims/{cid}/actions/{action}"
    # a client's contract: a 503 (the worker restarting, Temporal moving the claim off a dead worker's
    # sticky queue) is retried after Retry-After with the same Idempotency-Key, applied once
    headers = {**auth(stack), "X-Actor": "jane@billing.example", "Idempotency-Key": uuid.uuid4().hex}
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(8):
            r = await client.post(url(stack, service, path), json=body, headers=headers)
            if r.status_code != 503:
                return r
            await asyncio.sleep(float(r.headers.get("Retry-After", "5")))
        return r


async def stage_is(stack: Stack, cid: str, stage: str) -> Any:
    r = await claim_status(stack, cid)
    return r.json() if r.status_code == 200 and r.json()["stage"] == stage else None


async def test_post_to_paid_through_the_apis_with_a_worker_restart(running: Stack) -> None:
    start, day31, today = window_dates()
    cid = f"LC-{uuid.uuid4().hex[:8]}"
    body = claim(
        claim_id=cid,
        bill_sent_on=(start - timedelta(days=20)).isoformat(),
        initial_payment_received_on=start.isoformat(),
        open_negotiation_started_on=start.isoformat(),  # the notice went out before idrflow knew the claim
    )
    body["lines"][0]["service_date"] = (start - timedelta(days=30)).isoformat()
    assert (await post_claim(running, body)).status_code == 202
    # the 30-business-day period already lies in the past: the IDR initiation window is open now
    status = await wait_for("IDR initiation window", lambda: stage_is(running, cid, "idr_initiation_window"))
    assert status["deadlines"]["idr_initiation_window_opens"]["due_on"] == day31.isoformat()

    # kill the dispute process (its worker holds the claim's workflow) and start it again
    running.stop_service("dispute", kill=True)
    running.start_service("dispute")
    running.wait_healthy(("dispute",))

    today_ = today.isoformat()
    award = [{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}]
    steps = [
        (
            "idr-initiated",
            {"initiated_on": day31.isoformat(), "dispute_number": "DISP-778899"},
            "idr_initiated",
        ),
        ("entity-selected", {"selected_on": today_, "entity": "Maximus", "by": "joint"}, "offers_and_fees"),
        ("offer-submitted", {"submitted_on": today_, "amounts": {"1": "1500.00"}}, "offers_and_fees"),
        (
            "fees-paid",
            {"paid_on": today_, "administrative_fee": "15.00", "idre_fee": "475.00"},
            "awaiting_determination",
        ),
        ("determination", {"determined_on": today_, "lines": award}, "payment_due"),
        ("payment-received", {"received_on": today_, "amount": "400.00"}, "payment_due"),
        ("payment-received", {"received_on": today_, "amount": "750.00", "source": "835"}, "paid"),
        ("fee-refund-received", {"received_on": today_, "amount": "475.00"}, "closed"),
    ]
    for action, payload, expected in steps:
        r = await act(running, cid, action, payload)
        assert r.status_code == 200, (action, r.text)
        assert r.json()["stage"] == expected, (action, r.json()["stage"])

    final = (await claim_status(running, cid)).json()
    assert final["amount_owed"] == "1150.00" and final["amount_received"] == "1150.00"
    assert [t["stage"] for t in final["transitions"]] == [
        "open_negotiation_window",
        "open_negotiation",
        "idr_initiation_window",
        "idr_initiated",
        "offers_and_fees",
        "awaiting_determination",
        "payment_due",
        "paid",
        "closed",
    ]
    assert {a["actor"] for a in final["actions"]} == {"jane@billing.example"}
    closed = await act(running, cid, "close", {"reason": "again"})
    assert closed.status_code == 409 and closed.json()["type"].endswith("claim-closed")


async def test_open_negotiation_notice_offers_and_settlement_through_the_negotiation_api(
    running: Stack,
) -> None:
    today = datetime.now(UTC).astimezone(NY).date()
    received = CAL.business_days_after(today, -3)
    cid = f"ON-{uuid.uuid4().hex[:8]}"
    body = claim(claim_id=cid, bill_sent_on=None, initial_payment_received_on=received.isoformat())
    body["lines"][0]["service_date"] = (received - timedelta(days=20)).isoformat()
    assert (await post_claim(running, body)).status_code == 202
    await wait_for("open negotiation window", lambda: stage_is(running, cid, "open_negotiation_window"))

    # an action out of order, or dated in the future, is refused with the reason and the field
    early = await act(
        running, cid, "entity-selected", {"selected_on": today.isoformat(), "entity": "X", "by": "joint"}
    )
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert (
        "open_negotiation_window" in early.json()["detail"] and early.json()["errors"][0]["field"] == "stage"
    )
    future = (today + timedelta(days=5)).isoformat()
    r = await act(running, cid, "notice", {"sent_on": future, "recipient": "idr@acme.example"}, "negotiation")
    assert (
        r.status_code == 409
        and r.json()["errors"][0]["field"] == "sent_on"
        and "future" in r.json()["detail"]
    )

    r = await act(
        running, cid, "notice", {"sent_on": today.isoformat(), "recipient": "idr@acme.example"}, "negotiation"
    )
    assert r.status_code == 200 and r.json()["stage"] == "open_negotiation", r.text
    period_end = r.json()["deadlines"]["open_negotiation_period_end"]["due_on"]
    assert period_end == CAL.business_day_beginning(today, 30).isoformat()

    async def negotiating() -> Any:
        async with httpx.AsyncClient() as client:
            path = f"/v1/claims/{cid}/open-negotiation"
            got = await client.get(url(running, "negotiation", path), headers=auth(running))
        return got.json() if got.status_code == 200 else None

    await wait_for("the open negotiation workflow", negotiating)
    offer = {"party": "provider", "offered_on": today.isoformat(), "amounts": {"1": "1800.00"}}
    r = await act(running, cid, "offers", offer, "negotiation")
    assert r.status_code == 200 and len(r.json()["offers"]) == 1, r.text
    bad = await act(running, cid, "offers", {**offer, "amounts": {"7": "1.00"}}, "negotiation")
    assert bad.status_code == 409 and bad.json()["errors"][0]["field"] == "amounts"
    r = await act(
        running, cid, "settlement", {"settled_on": today.isoformat(), "amount": "1200.00"}, "negotiation"
    )
    assert r.status_code == 200 and r.json()["settled"] is True
    # the plan pays what was agreed, less its $350, within 30 days (audit row 5)
    status = await wait_for("payment due", lambda: stage_is(running, cid, "payment_due"))
    assert "settled in open negotiation for $1,200.00" in status["transitions"][-2]["reason"]
    assert status["amount_owed"] == "850.00"


def test_claims_list_and_show_read_the_record(running: Stack) -> None:
    """The operator's view from the claim record in PostgreSQL (after the claims above ran)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "idrflow")
    env = {**os.environ, "DATABASE_URL": running.database_url}

    def idrflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, env=env)

    def listed() -> list[dict[str, str]]:
        args = ("--stage", "closed", "--tenant", "demo", "--include-final", "--limit", "10000", "--json")
        done = idrflow("claims", "list", *args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    import time

    for _ in range(50):  # the record is written by an activity just after the stage changes
        rows = listed()
        if any(r["claim_id"].startswith("LC-") for r in rows):
            break
        time.sleep(0.2)
    lc = [r for r in rows if r["claim_id"].startswith("LC-")]
    assert lc and lc[0]["stage"] == "closed"
    shown = idrflow("claims", "show", lc[0]["claim_id"], "--tenant", "demo")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["stage"] == "closed" and record["workflow_id"] == f"claim:demo:{lc[0]['claim_id']}"
    missing = idrflow("claims", "show", "NOPE", "--tenant", "demo")
    assert missing.returncode == 2 and "NOPE" in missing.stderr


async def test_a_generated_notice_goes_out_through_the_notifier_and_starts_open_negotiation(
    running: Stack,
) -> None:
    today = datetime.now(UTC).astimezone(NY).date()
    received = CAL.business_days_after(today, -2)
    cid = f"NT-{uuid.uuid4().hex[:8]}"
    body = claim(claim_id=cid, bill_sent_on=None, initial_payment_received_on=received.isoformat())
    body["lines"][0]["service_date"] = (received - timedelta(days=20)).isoformat()
    assert (await post_claim(running, body)).status_code == 202
    await wait_for("open negotiation window", lambda: stage_is(running, cid, "open_negotiation_window"))

    request = {"offer": {"1": "1800.00"}, "sender": {"name": "Jane Roe", "email": "jane@metro.example"}}
    r = await act(running, cid, "notices", request, "negotiation")
    assert r.status_code == 202, r.text
    notice = r.json()
    assert notice["status"] == "issued" and notice["recipient"] == "idr@acme.example"

    def mailed() -> Any:
        assert running.mail is not None
        return [
            m
            for m in running.mail.messages
            if str(m["To"]) == "idr@acme.example" and cid in str(m["Subject"])
        ]

    mails = await wait_for("the notice email", mailed)
    attachments = list(mails[0].iter_attachments())
    assert len(attachments) == 1 and attachments[0].get_content_type() == "application/pdf"
    pdf = attachments[0].get_content()
    assert pdf.startswith(b"%PDF-")

    async def proven() -> Any:
        async with httpx.AsyncClient() as client:
            got = await client.get(
                url(running, "negotiation", f"/v1/claims/{cid}/open-negotiation/notices"),
                headers=auth(running),
            )
        rows = got.json()
        return rows if rows and rows[0]["status"] == "sent" else None

    proof = (await wait_for("the delivery proof", proven))[0]
    assert proof["message_id"] == str(mails[0]["Message-ID"]) and proof["sent_at"]
    import hashlib

    assert hashlib.sha256(pdf).hexdigest() == proof["pdf_sha256"]
    status = await wait_for("open negotiation", lambda: stage_is(running, cid, "open_negotiation"))
    sent = [a for a in status["actions"] if a["action"] == "open_negotiation_notice_sent"]
    assert (
        sent
        and sent[0]["actor"] == "idrflow notifier"
        and sent[0]["details"]["recipient"] == "idr@acme.example"
    )
    again = await act(running, cid, "notices", request, "negotiation")
    assert again.status_code == 409 and "open_negotiation" in again.json()["detail"]


async def test_a_batch_through_the_api(running: Stack) -> None:
    start, day31, _ = window_dates()
    ids = [f"BT-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for i, cid in enumerate(ids):
        body = claim(
            claim_id=cid,
            bill_sent_on=None,
            initial_payment_received_on=start.isoformat(),
            open_negotiation_started_on=start.isoformat(),
        )
        body["lines"][0]["service_date"] = (start - timedelta(days=20)).isoformat()
        if i == 2:  # another provider group: cannot join the others
            body["provider"] = {"npi": "1245319599", "tin": "987654321", "name": "Other Group"}
        assert (await post_claim(running, body)).status_code == 202
    for cid in ids:
        await wait_for(
            f"{cid} in its window", lambda cid=cid: stage_is(running, cid, "idr_initiation_window")
        )

    async def post(path: str, payload: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(url(running, "dispute", path), json=payload, headers=auth(running))

    members = [{"claim_id": cid, "condition_group": "chest-pain"} for cid in ids]
    refused = await post("/v1/batches", {"batch_id": "B-REFUSED", "members": members})
    assert refused.status_code == 422 and "DIFFERENT_PROVIDER" in refused.json()["detail"]
    created = await post("/v1/batches", {"batch_id": "B-OK", "members": members[:1] + members[1:2]})
    assert created.status_code == 201, created.text
    joined = await post("/v1/batches/B-OK/members", members[2])
    assert joined.status_code == 422 and "DIFFERENT_PROVIDER" in joined.json()["detail"]
    r = await post(
        "/v1/batches/B-OK/actions/idr-initiated",
        {"initiated_on": day31.isoformat(), "dispute_number": "DISP-B"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "initiated" and {
        x["stage"] for x in r.json()["results"]["idr_initiated"]
    } == {"idr_initiated"}
    for cid in ids[:2]:
        assert (await claim_status(running, cid)).json()["dispute_number"] == "DISP-B"
