"""835s on the real stack: one starts a tracked claim's open negotiation clock, a later one pays an
award and the claim is paid, one that matches nothing waits in the review list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from deploy.devstack import Stack
from tests.e2e.test_idempotent_actions import claim_in_payment_due
from tests.e2e.test_lifecycle_http import stage_is
from tests.e2e.test_spine import CAL, NY, auth, claim_status, running, url, wait_for
from tests.integration.x12_kit import x835, x837

__all__ = ["running"]

X12 = {"content-type": "application/edi-x12"}


async def post_file(stack: Stack, path: str, body: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            url(stack, "intake", path), content=body, headers={**auth(stack), **X12}, params=params
        )


async def test_an_835_starts_the_clock_of_a_claim_that_came_as_an_837(running: Stack) -> None:
    cid = f"E835-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).astimezone(NY).date()
    billed_on = (today - timedelta(days=20)).strftime("%Y%m%d")
    served_on = (today - timedelta(days=25)).strftime("%Y%m%d")
    r = await post_file(
        running,
        "/v1/claims/x12",
        x837(cid, created=billed_on, service_date=served_on),
        plan_type="self_insured_erisa",
        state="TX",
    )
    assert r.status_code == 202 and r.json()["results"][0]["result"] == "accepted", r.text
    waiting = await wait_for(
        "the claim awaiting its initial payment", lambda: stage_is(running, cid, "awaiting_initial_payment")
    )
    assert waiting["stage"] == "awaiting_initial_payment"

    remit = x835([{"claim_id": cid, "billed": "2400", "paid": "350", "pr": "50", "service_date": served_on}])
    r = await post_file(running, "/v1/remittances", remit)
    assert r.status_code == 202, r.text
    assert r.json()["results"][0]["applied_as"] == "initial_payment"
    status = await wait_for(
        "the open negotiation window", lambda: stage_is(running, cid, "open_negotiation_window")
    )
    due = CAL.business_day_beginning(today, 30).isoformat()
    assert status["deadlines"]["open_negotiation_initiation_deadline"]["due_on"] == due


async def test_a_later_835_pays_the_award_and_the_claim_is_paid(running: Stack) -> None:
    cid = await claim_in_payment_due(running)  # 1,150.00 owed on an award
    today = datetime.now(UTC).astimezone(NY).date()
    paid_on = today.strftime("%Y%m%d")
    remit = x835(
        [{"claim_id": cid, "billed": "2400", "paid": "1150", "pccn": "PCN-AWARD"}],
        trace="CHK-835",
        paid_on=paid_on,
    )
    r = await post_file(running, "/v1/remittances", remit)
    assert r.status_code == 202, r.text
    assert r.json()["results"][0]["applied_as"] == "payment", r.text
    status = await wait_for("paid by the 835", lambda: stage_is(running, cid, "paid"))
    assert status["amount_received"] == "1150.00"
    payment = [a for a in status["actions"] if a["action"] == "payment_received"]
    assert payment and "CHK-835" in str(payment[-1])

    # the same file again changes nothing
    again = await post_file(running, "/v1/remittances", remit)
    assert again.status_code == 200 and again.json()["duplicate_file"] is True
    assert (await claim_status(running, cid)).json()["amount_received"] == "1150.00"


async def test_an_835_claim_that_matches_nothing_waits_in_the_review_list(running: Stack) -> None:
    stranger = f"NOPE-{uuid.uuid4().hex[:8]}"
    r = await post_file(
        running,
        "/v1/remittances",
        x835([{"claim_id": stranger, "billed": "77.77", "paid": "7"}], payer="NOBODY MUTUAL"),
    )
    assert r.json()["results"][0]["result"] == "unmatched"
    async with httpx.AsyncClient(timeout=30) as client:
        listed = (
            await client.get(
                url(running, "intake", "/v1/remittances/unmatched"),
                params={"limit": 500},
                headers=auth(running),
            )
        ).json()
    assert stranger in {x["claim_ref"] for x in listed}
