"""The pure parts of idempotent actions: key validation, the request hash, the update id, and the
paths that never touch the database (no key, a bad key)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.dispute.models import action_requests
from services.intake.batch import sorted_json
from shared.http import PROBLEM_JSON, Problem, install_problem_handlers
from shared.idempotency import (
    MAX_KEY_LENGTH,
    Answer,
    IdempotencyKey,
    canonical_json,
    request_sha256,
    run_idempotent,
    update_id_for,
    uuid_for,
    validate_key,
)
from shared.lifecycle import OfferSubmitted, PaymentReceived, actor_of


@pytest.mark.parametrize(
    "key", ["a", "7d0f3c1e-2b9a-4f5e-8c1d-0a1b2c3d4e5f", "x" * MAX_KEY_LENGTH, "pay 1/2"]
)
def test_good_keys_pass(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", ["", "   ", "x" * (MAX_KEY_LENGTH + 1), "caf\u00e9", "tab\there", "nl\n"])
def test_bad_keys_are_a_422_naming_the_header(key: str) -> None:
    with pytest.raises(Problem) as caught:
        validate_key(key)
    assert caught.value.status == 422 and caught.value.type == "validation-error"
    assert caught.value.errors == [{"field": "Idempotency-Key", "reason": caught.value.detail}]


def test_update_ids_are_stable_per_scope_tenant_and_key() -> None:
    one = update_id_for("dispute", "demo", "k-1")
    assert one == update_id_for("dispute", "demo", "k-1")
    assert one.startswith("idem:") and len(one) <= 100 and "k-1" not in one
    others = {
        update_id_for("negotiation", "demo", "k-1"),
        update_id_for("dispute", "other", "k-1"),
        update_id_for("dispute", "demo", "k-2"),
        update_id_for("dispute", "demo\x00k", "-1"),
    }
    assert one not in others and len(others) == 4
    assert uuid_for(one) == uuid_for(one) != uuid_for(update_id_for("dispute", "demo", "k-2"))


def test_the_request_hash_ignores_spelling_but_not_meaning() -> None:
    a = PaymentReceived(received_on=date(2026, 12, 1), amount=Decimal("600.00"))
    same = PaymentReceived.model_validate({"amount": 600, "received_on": "2026-12-01"})
    path = "/v1/claims/C-1/actions/payment-received"
    assert canonical_json(a) == canonical_json(same)
    assert request_sha256("POST", path, a) == request_sha256("post", path, same)
    more = PaymentReceived(received_on=date(2026, 12, 1), amount=Decimal("600.01"))
    assert request_sha256("POST", path, a) != request_sha256("POST", path, more)
    assert request_sha256("POST", path, a) != request_sha256("POST", path.replace("C-1", "C-2"), a)
    # the resolved actor is part of the request: another person with the same key is another request
    jane, joe = actor_of(a, "demo", "jane@billing.example"), actor_of(a, "demo", "joe@billing.example")
    assert request_sha256("POST", path, jane) != request_sha256("POST", path, joe)


def test_canonical_json_sorts_keys_and_normalizes_numbers() -> None:
    offer = OfferSubmitted.model_validate({"submitted_on": "2026-12-01", "amounts": {"2": "10.50", "1": "7"}})
    text = canonical_json(offer)
    assert '"amounts":{"1":"7","2":"10.5"}' in text and " " not in text
    assert (
        canonical_json({"b": [Decimal("0.00"), True, None], "a": 1.50}) == '{"a":"1.5","b":["0",true,null]}'
    )


def test_answers_carry_their_content_type_and_the_replay_header() -> None:
    first = Answer(200, {"stage": "payment_due"}).response()
    assert first.media_type == "application/json" and "idempotent-replayed" not in first.headers
    replayed = Answer(409, {"type": "x"}, replayed=True).response()
    assert replayed.media_type == PROBLEM_JSON and replayed.headers["idempotent-replayed"] == "true"


def _app(calls: list[str | None]) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things/{thing_id}")
    async def thing(thing_id: str, body: dict[str, Any], request: Request, key: IdempotencyKey = None) -> Any:
        async def run(update_id: str | None) -> dict[str, Any]:
            calls.append(update_id)
            return {"thing_id": thing_id, **body}

        return await run_idempotent(request, action_requests, "demo", key, body, run)

    return app


async def test_without_a_key_the_action_runs_as_before_and_a_bad_key_never_runs_it() -> None:
    calls: list[str | None] = []
    transport = httpx.ASGITransport(app=_app(calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        plain = await client.post("/things/T-1", json={"n": 1})
        bad = await client.post("/things/T-1", json={"n": 1}, headers={"Idempotency-Key": "x" * 201})
    assert plain.status_code == 200 and plain.json() == {"thing_id": "T-1", "n": 1}
    assert "idempotent-replayed" not in plain.headers
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON
    assert bad.json()["errors"][0]["field"] == "Idempotency-Key"
    assert calls == [None]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(JSON_VALUES)
@example("\x7f")  # DEL: ASCII, escaped by json.dumps, not by orjson (found by this test)
@example({"a\x7f": ["\x1f", "é", "\u2028"]})
def test_the_claim_request_hash_bytes_are_what_json_dumps_made(value: object) -> None:
    """Intake's request hashes were made with json.dumps; the faster encoding must give the same
    bytes for every value (control characters, non-ASCII, nesting), or a retry after an upgrade
    would be refused as a reused key."""
    assert sorted_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert sorted_json(10**30) == b"1000000000000000000000000000000"  # beyond orjson's integers
