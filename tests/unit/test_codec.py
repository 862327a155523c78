"""Payload encryption: AES-GCM per payload, key id in the metadata, rotation, refusal of bad keys."""

from __future__ import annotations

import base64
import os
from decimal import Decimal

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload

from shared.codec import ENCODING, KEY_ID, EncryptionCodec, PayloadKeyError, new_key_entry, parse_keys
from shared.settings import Settings
from shared.temporal import PayloadsInClear, converter_for

K1 = new_key_entry("k1")
K2 = new_key_entry("k2")


def codec(raw: str, active: str | None = None) -> EncryptionCodec:
    return EncryptionCodec(parse_keys(raw), active)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_a_payload_is_sealed_with_the_active_key_and_opens_to_the_same_payload() -> None:
    c = codec(f"{K1},{K2}", "k2")
    original = plain('{"payer": "Acme Health Plan", "billed": "2400.00"}')
    [sealed] = await c.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k2"
    assert b"Acme" not in sealed.data and b"json/plain" not in sealed.SerializeToString()
    [opened] = await c.decode([sealed])
    assert opened == original
    # a fresh nonce each time: the same payload never seals to the same bytes
    [again] = await c.encode([original])
    assert again.data != sealed.data


async def test_rotation_a_new_active_key_still_opens_what_the_old_key_sealed() -> None:
    [old] = await codec(K1).encode([plain("before rotation")])
    rotated = codec(f"{K2},{K1}", "k2")
    [new] = await rotated.encode([plain("after rotation")])
    assert new.metadata[KEY_ID] == b"k2"
    assert [p.data for p in await rotated.decode([old, new])] == [b"before rotation", b"after rotation"]
    # once k1 is dropped, its payloads name the missing key instead of decoding to garbage
    with pytest.raises(PayloadKeyError, match="'k1'"):
        await codec(K2).decode([old])


async def test_tampering_or_moving_a_payload_to_another_key_id_fails() -> None:
    c = codec(f"{K1},{K2}")
    [sealed] = await c.encode([plain("amount 350.00")])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    with pytest.raises(InvalidTag):
        await c.decode([Payload(metadata=dict(sealed.metadata), data=bytes(flipped))])
    moved = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k2"}, data=sealed.data)
    with pytest.raises(InvalidTag):  # the key id is the associated data
        await c.decode([moved])


async def test_payloads_written_before_encryption_decode_as_they_are() -> None:
    c = codec(K1)
    old = plain("recorded in clear last release")
    assert await c.decode([old]) == [old]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("k1", "not 'id:base64key'"),
        (":" + base64.b64encode(os.urandom(32)).decode(), "not 'id:base64key'"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(os.urandom(20)).decode(), "20 bytes"),
        (f"{K1},{K1}", "listed twice"),
    ],
)
def test_malformed_key_lists_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(PayloadKeyError, match=reason):
        parse_keys(raw)


def test_settings_refuse_malformed_keys_and_an_unknown_active_key_at_start() -> None:
    with pytest.raises(ValidationError, match="20 bytes"):
        Settings(payload_keys="k1:" + base64.b64encode(os.urandom(20)).decode())
    with pytest.raises(ValidationError, match="payload_key_id: 'k9'"):
        Settings(payload_keys=K1, payload_key_id="k9")
    assert Settings(payload_keys=f"{K1},{K2}", payload_key_id="k2").payload_key_id == "k2"


def test_a_remote_temporal_without_keys_is_refused_unless_encryption_is_switched_off() -> None:
    with pytest.raises(PayloadsInClear, match="IDRFLOW_PAYLOAD_KEYS"):
        converter_for(Settings(temporal_address="temporal.prod.internal:7233", payload_keys=""))
    assert converter_for(Settings(temporal_address="temporal.prod.internal:7233", payload_encryption="off"))
    local = converter_for(Settings(temporal_address="127.0.0.1:7233", payload_keys=""))
    assert local.payload_codec is None  # this machine's dev server: allowed in clear
    keyed = converter_for(Settings(temporal_address="temporal.prod.internal:7233", payload_keys=K1))
    assert isinstance(keyed.payload_codec, EncryptionCodec)


async def test_the_converter_round_trips_decimal_money_through_encryption() -> None:
    converter = converter_for(Settings(payload_keys=K1))
    payloads = await converter.encode([{"billed": Decimal("2400.10")}])
    assert payloads[0].metadata["encoding"] == ENCODING
    [value] = await converter.decode(payloads, [dict[str, Decimal]])
    assert value == {"billed": Decimal("2400.10")}
