"""Idempotent HTTP actions: an ``Idempotency-Key`` header makes a retry return the first answer.

The key is claimed in the service's ``action_requests`` table (its own transaction) before the
action runs, with a SHA-256 of the request (method, path, canonical JSON of the validated body):

- the same key and the same request, answered before: the stored answer again (same status and
  JSON body) with ``Idempotent-Replayed: true``;
- the same key with another body, endpoint or claim: ``409 idempotency-key-reused``;
- the same key and request still unanswered (a twin in flight, or a process that died): the action
  runs again with the same *update id* (``idem:`` + a SHA-256 prefix of scope, tenant and key).
  Temporal applies an update id once and the claim workflow de-duplicates it too; a non-update
  action derives its own ids from it (the notice id), so running twice still has one effect.

Stored: a 2xx answer and a ``409 action-rejected`` (a deterministic refusal). Not stored: a
5xx or any other failure, so a retry can succeed; a 4xx other than those means nothing was done,
so the key is released and may be used again with a corrected body.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import get_engine, unit_of_work
from shared.http import PROBLEM_JSON, Problem

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
STORED_PROBLEMS = frozenset({"action-rejected"})
_PRINTABLE = re.compile(r"[\x20-\x7e]+")

# the same rule as validate_key, for the OpenAPI document and FastAPI's own check of the header
KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        max_length=MAX_KEY_LENGTH,
        pattern=KEY_PATTERN,
        description=(
            "Makes a retry safe: the same key with the same body returns the first answer again "
            f"(with `{REPLAYED_HEADER}: true`); the same key with another body is a 409. "
            f"1-{MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID."
        ),
    ),
]

REPLAYED_RESPONSE_HEADERS: dict[str, Any] = {
    REPLAYED_HEADER: {
        "description": f"`true` when this is the stored answer to an earlier request with this {KEY_HEADER}",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def validate_key(key: str) -> str:
    """The key as given, or a 422 problem naming the header."""
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not _PRINTABLE.fullmatch(key):
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            f"{KEY_HEADER}: 1-{MAX_KEY_LENGTH} printable ASCII characters",
            field=KEY_HEADER,
        )
    return key


def update_id_for(scope: str, tenant_id: str, key: str) -> str:
    """The Temporal update id of a keyed request: stable for (scope, tenant, key), opaque."""
    digest = hashlib.sha256(f"{scope}\x00{tenant_id}\x00{key}".encode()).hexdigest()
    return f"idem:{digest[:40]}"


def uuid_for(update_id: str) -> uuid.UUID:
    """A stable UUID for a record created by a keyed request (e.g. the notice id)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://idrflow.dev/idempotency/{update_id}")


def _plain(value: Any) -> Any:
    """A JSON value for the canonical form: numbers as normalized decimal strings (600 == 600.00)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, int | float | Decimal):
        d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        return "0" if d == 0 else format(d.normalize(), "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, numbers normalized: equal requests have equal text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_sha256(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical_json(body)}".encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        extra = {REPLAYED_HEADER: "true"} if self.replayed else {}
        return JSONResponse(
            self.body,
            status_code=self.status_code,
            media_type=PROBLEM_JSON if self.status_code >= 400 else "application/json",
            headers={**(headers or {}), **extra},
        )


def _reused() -> Problem:
    return Problem(
        409,
        "idempotency-key-reused",
        "Idempotency key reused with a different request",
        f"This {KEY_HEADER} was first used with a different body, endpoint or claim; "
        "use a new key for a new request.",
        field=KEY_HEADER,
    )


@dataclass(frozen=True)
class _Claim:
    table: Table
    tenant_id: str
    key: str
    path: str
    digest: str
    update_id: str
    engine: AsyncEngine

    def _row(self) -> Any:
        return (self.table.c.tenant_id == self.tenant_id) & (self.table.c.key == self.key)

    async def take(self) -> Any:
        """None when this request claimed the key; else the row of the earlier request."""
        t = self.table
        stmt = insert(t).values(
            tenant_id=self.tenant_id,
            key=self.key,
            path=self.path,
            request_sha256=self.digest,
            update_id=self.update_id,
        )
        while True:
            async with unit_of_work(self.engine) as session:
                inserted = (await session.execute(stmt.on_conflict_do_nothing().returning(t.c.key))).first()
                if inserted is not None:
                    return None
                row = (await session.execute(select(t).where(self._row()))).first()
                if row is not None:
                    return row
            # the twin that held the key released it in between (its request was refused): try again

    async def complete(self, answer: Answer) -> Answer:
        """Store the answer; if a twin stored one first, that one is the answer."""
        t = self.table
        async with unit_of_work(self.engine) as session:
            done = (
                await session.execute(
                    update(t)
                    .where(self._row(), t.c.status_code.is_(None), t.c.request_sha256 == self.digest)
                    .values(status_code=answer.status_code, response=answer.body, completed_at=func.now())
                    .returning(t.c.key)
                )
            ).first()
            if done is not None:
                return answer
            row = (await session.execute(select(t).where(self._row()))).first()
        if row is None or row.status_code is None or row.request_sha256 != self.digest:
            return answer
        return Answer(row.status_code, row.response, replayed=True)

    async def release(self) -> None:
        """Free the key after an answer that changed nothing and is not stored."""
        t = self.table
        async with unit_of_work(self.engine) as session:
            await session.execute(
                delete(t).where(self._row(), t.c.status_code.is_(None), t.c.request_sha256 == self.digest)
            )


Run = Callable[[str | None], Awaitable[Any]]


async def run_idempotent(
    request: Request,
    table: Table,
    tenant_id: str,
    key: str | None,
    body: Any,
    run: Run,
    *,
    status_code: int = 200,
    engine: AsyncEngine | None = None,
) -> Any:
    """Run ``run(update_id)`` at most once per key: without a key, ``run(None)`` as is (its result
    is returned for FastAPI to serialize); with one, see the module docstring."""
    if key is None:
        return await run(None)
    validate_key(key)
    path = request.url.path
    claim = _Claim(
        table,
        tenant_id,
        key,
        path,
        request_sha256(request.method, path, body),
        update_id_for(str(table.schema), tenant_id, key),
        engine or get_engine(),
    )
    prior = await claim.take()
    if prior is not None:
        if prior.request_sha256 != claim.digest:
            raise _reused()
        if prior.status_code is not None:
            return Answer(prior.status_code, prior.response, replayed=True).response()
    try:
        result = await run(claim.update_id)
    except Problem as problem:
        if problem.status == 409 and problem.type in STORED_PROBLEMS:
            refused = Answer(problem.status, problem.body(path))
            return (await claim.complete(refused)).response(problem.headers)
        if problem.status < 500:
            await claim.release()
        raise
    return (await claim.complete(Answer(status_code, jsonable_encoder(result)))).response()
