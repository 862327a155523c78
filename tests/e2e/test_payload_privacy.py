"""Temporal sees only ciphertext: a claim's workflow history holds no claim fact in clear, the
services (which hold the key) still run and read it, and the codec server decodes it for the UI."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from deploy.devstack import Stack
from services.codec_server import create_app
from shared.codec import ENCODING, KEY_ID
from shared.settings import Settings
from tests.e2e.test_spine import claim_status, post_claim, wait_for
from tests.integration.conftest import claim

SERVICES = ("intake", "dispute", "relay")
PAYER = "Quillfeather Mutual Health"
# what the SDK writes beside our payloads, with no claim fact in it: a marker's bookkeeping (a patch
# id; a local activity's id, type and attempt: its result is ours and is checked) and the tracing
# interceptor's trace context header
SDK_KEYS = {"details": {"patch-data", "data"}, "fields": {"_tracer-data"}}


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[Stack]:
    for name in SERVICES:
        stack.start_service(name)
    stack.wait_healthy(("intake", "dispute"))
    yield stack
    for name in SERVICES:
        stack.stop_service(name)


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in a history event (inputs, results, updates, signals, headers)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.name == "search_attributes":  # in clear by design
            continue
        if field.message_type.GetOptions().map_entry:
            skip = SDK_KEYS.get(field.name, set())
            items = [v for k, v in value.items() if k not in skip]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


async def test_claim_facts_reach_temporal_encrypted_and_the_codec_server_decodes_them(running: Stack) -> None:
    cid = f"ENC-{uuid.uuid4().hex[:8]}"
    body = claim(claim_id=cid)
    body["payer"]["name"] = PAYER
    r = await post_claim(running, body)
    assert r.status_code == 202, r.text

    async def planned() -> bool:
        answer = await claim_status(running, cid)
        return answer.status_code == 200 and answer.json()["stage"] == "open_negotiation_window"

    await wait_for("the claim planned by its (encrypted) workflow", planned)

    # a client without the key: what the Temporal server, its database and an operator without the
    # key see
    bare = await Client.connect(running.temporal_address)
    history = await bare.get_workflow_handle(f"claim:demo:{cid}").fetch_history()
    payloads = [p for event in history.events for p in payloads_in(event)]
    # search attributes (tenant, claim id, payer, stage, next deadline, service codes) stay in clear by
    # design: they are what operators filter on; every other fact is inside the ciphertext
    for fact in (PAYER, "2400.00", "350.00", "1234567893", "Metro Emergency Physicians", "idr@acme.example"):
        assert not [p for p in payloads if fact.encode() in p.data], f"{fact!r} in clear in the history"
    sealed = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    assert sealed and len(sealed) == len(payloads), "every payload is encrypted"
    assert {p.metadata[KEY_ID] for p in sealed} == {b"local-1"}

    # the codec server, for operators who hold the key (the UI's --ui-codec-endpoint)
    keys = running.payload_keys()
    app = create_app(Settings(payload_keys=keys, codec_token="s3cret"))
    document = MessageToDict(Payloads(payloads=sealed))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as c:
        refused = await c.post("/decode", json=document)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        decoded = await c.post("/decode", json=document, headers={"Authorization": "Bearer s3cret"})
        assert decoded.status_code == 200, decoded.text
        opened = [base64.b64decode(p["data"]) for p in decoded.json()["payloads"]]
        assert any(PAYER.encode() in data for data in opened), "the claim event decodes to its facts"
        preflight = await c.options(
            "/decode",
            headers={
                "Origin": "http://127.0.0.1:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        wrong_key = create_app(Settings(payload_keys="other:" + "A" * 43 + "="))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrong_key), base_url="http://codec") as c:
        answer = await c.post("/decode", json=document)
        assert answer.status_code == 422 and "local-1" in answer.json()["detail"]
