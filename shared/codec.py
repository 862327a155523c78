"""Payload privacy: every workflow and activity payload is encrypted before it reaches Temporal.

A claim's workflow input, its updates and its activities carry patient names, member ids and dates
of birth; the Temporal server, its database and anyone with the UI would otherwise read them in
clear. :class:`EncryptionCodec` is a Temporal ``PayloadCodec``: AES-256-GCM (or 128/192 with a
shorter key) with a fresh 96-bit nonce per payload; the whole serialized payload (its metadata
and data) is the plaintext, so the encoding is hidden too. The key id travels in the metadata
(``encryption-key-id``) and is the associated data, so a payload cannot be moved to another key.

Keys come from settings: ``IDRFLOW_PAYLOAD_KEYS`` lists ``id:base64key`` pairs separated by
commas; ``IDRFLOW_PAYLOAD_KEY_ID`` names the one that encrypts (default: the first). Rotation:
add the new key, make it the active one, keep the old one listed until every workflow that
carries payloads encrypted with it has closed (or been reset); decoding picks the key by id.

Payloads that are not encrypted (histories written before encryption was switched on) decode as
they are. A payload encrypted with a key this process does not hold fails to decode with an
error naming the key id: the workflow task is retried until the key is configured, never failed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """The key list is malformed, or a payload names a key this process does not hold."""


def parse_keys(raw: str) -> dict[str, bytes]:
    """``"k2026:BASE64,k2025:BASE64"`` -> ``{"k2026": b"...", ...}``; each key 16, 24 or 32 bytes."""
    keys: dict[str, bytes] = {}
    for n, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise PayloadKeyError(f"payload_keys: entry {n + 1} is not 'id:base64key'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadKeyError(f"payload_keys: key {key_id!r} is not base64") from exc
        if len(key) not in (16, 24, 32):
            raise PayloadKeyError(
                f"payload_keys: key {key_id!r} is {len(key)} bytes; AES-GCM needs 16, 24 or 32 (32 advised)"
            )
        if key_id in keys:
            raise PayloadKeyError(f"payload_keys: key id {key_id!r} is listed twice")
        keys[key_id] = key
    return keys


def new_key_entry(key_id: str) -> str:
    """A fresh ``id:base64`` entry with a random 256-bit key (``idrflow codec new-key``, the runner)."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes], active: str | None = None) -> None:
        if not keys:
            raise PayloadKeyError("payload_keys: no key given")
        self.active = active or next(iter(keys))
        if self.active not in keys:
            raise PayloadKeyError(f"payload_key_id: {self.active!r} is not among payload_keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self.active.encode()
        sealed = self._ciphers[self.active].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which this process does not hold "
                "(add it to IDRFLOW_PAYLOAD_KEYS)"
            )
        data = bytes(payload.data)
        plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded

    @property
    def key_ids(self) -> Iterable[str]:
        return self._ciphers.keys()


def build_codec(raw_keys: str, active: str | None) -> EncryptionCodec | None:
    keys = parse_keys(raw_keys)
    return EncryptionCodec(keys, active) if keys else None


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """The pydantic converter every idrflow client and worker uses, with the codec when keys exist."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
