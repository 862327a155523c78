"""Accept many canonical claims in one transaction, with two statements whatever their number.

The single-claim endpoint, ``POST /v1/claims:batch``, canonical JSON files and 837s all come here.
Per claim the rules are those of a single post: its idempotency key (given, or the natural key
``source_system:claim_id:event_sequence``) answers a retry with the first answer and refuses the key
with another body; an event sequence already taken under another key is refused; an older event
never overwrites newer facts. A claim that is refused does not fail the others: each gets its own
result (``accepted``, ``duplicate`` or ``rejected`` with the reason).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.intake.schemas import ClaimIn
from shared.db import get_engine
from shared.events import ClaimAdjudicated, ClaimLine, deterministic_event_id, topic_for
from shared.kafka.outbox import with_trace_headers
from shared.temporal import claim_workflow_id

Result = Literal["accepted", "duplicate", "rejected"]


@dataclass
class ClaimResult:
    index: int
    claim_id: str
    event_sequence: int
    result: Result
    status_code: int  # what a single post would have answered: 202, 200 (replayed) or 409
    body: dict[str, Any] = field(default_factory=dict)  # ClaimAccepted, or the refusal
    problem: str | None = None  # idempotency-key-reused | event-sequence-taken
    reason: str | None = None


def sorted_json(value: Any) -> bytes:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))`` as bytes, which every stored
    request hash was made from: orjson gives the same bytes when they are printable ASCII (in a
    fraction of the time); anything else (json.dumps escapes non-ASCII and DEL, orjson does not)
    goes the old way."""
    with suppress(orjson.JSONEncodeError):  # an integer beyond 64 bits, say
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if fast.isascii() and b"\x7f" not in fast:
            return fast
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def request_hash(claim: ClaimIn) -> str:
    return hashlib.sha256(sorted_json(claim.model_dump(mode="json"))).hexdigest()


def derived_key(claim: ClaimIn) -> str:
    return f"{claim.source_system}:{claim.claim_id}:{claim.event_sequence}"


def to_event(claim: ClaimIn) -> ClaimAdjudicated:
    """What leaves intake: claim facts without patient data."""
    return ClaimAdjudicated(
        claim_id=claim.claim_id,
        event_sequence=claim.event_sequence,
        source_system=claim.source_system,
        payer_name=claim.payer.name,
        plan_type=claim.payer.plan_type,
        payer_contact_email=claim.payer.contact_email,
        provider_npi=claim.provider.npi,
        provider_tin=claim.provider.tin,
        provider_name=claim.provider.name,
        service_category=claim.service_category,
        state=claim.state,
        bill_sent_on=claim.bill_sent_on,
        initial_payment_received_on=claim.initial_payment_received_on,
        open_negotiation_started_on=claim.open_negotiation_started_on,
        lines=[
            ClaimLine(
                line_number=i + 1,
                service_code=line.service_code,
                code_system=line.code_system,
                service_date=line.service_date,
                billed=line.billed,
                paid=line.paid,
                qpa=line.qpa,
                cost_sharing=line.cost_sharing,
            )
            for i, line in enumerate(claim.lines)
        ],
    )


def _claim_values(claim: ClaimIn) -> tuple[Any, ...]:
    """The claim row (``intake.claims``, without the tenant) in the order of ``_CLAIM_COLUMNS``."""
    patient = claim.patient
    return (
        claim.claim_id,
        claim.source_system,
        claim.event_sequence,
        claim.payer.name,
        claim.payer.plan_type,
        claim.payer.contact_email,
        claim.provider.npi,
        claim.provider.tin,
        claim.provider.name,
        patient.name if patient else None,
        patient.member_id if patient else None,
        patient.date_of_birth if patient else None,
        claim.service_category,
        claim.state,
        claim.bill_sent_on,
        claim.initial_payment_received_on,
        sum((line.billed for line in claim.lines), Decimal(0)),  # billed_total: an 835 is found by it
    )


@dataclass
class _Item:
    index: int
    claim: ClaimIn
    key: str
    digest: str
    event_id: Any
    body: dict[str, Any]


def _refused(item: _Item, problem: str, reason: str) -> ClaimResult:
    return ClaimResult(
        item.index,
        item.claim.claim_id,
        item.claim.event_sequence,
        "rejected",
        409,
        problem=problem,
        reason=reason,
    )


KEY_REUSED = "idempotency-key-reused"
SEQUENCE_TAKEN = "event-sequence-taken"


def _sequence_taken(item: _Item) -> ClaimResult:
    return _refused(
        item,
        SEQUENCE_TAKEN,
        f"Claim {item.claim.claim_id!r} already has event_sequence {item.claim.event_sequence} with "
        "different content; send a higher event_sequence for a correction.",
    )


def _key_reused(item: _Item) -> ClaimResult:
    return _refused(item, KEY_REUSED, f"The key {item.key!r} was first used with a different request body.")


async def accept_many(
    tenant_id: str,
    batch: list[tuple[ClaimIn, str | None]],
    engine: AsyncEngine | None = None,
    session: AsyncSession | None = None,
) -> list[ClaimResult]:
    """Accept ``(claim, idempotency key or None)`` pairs durably; one result per pair, in order.
    With ``session`` the rows join the caller's transaction (a file and its claims commit together)."""
    results, items = _plan(tenant_id, batch)
    if items:
        if session is not None:
            await _write(_Alchemy(await session.connection()), tenant_id, items, results)
        else:
            # a transaction of our own: straight on the pooled asyncpg connection (the same SQL,
            # without the ORM session's bookkeeping on every request)
            async with (engine or get_engine()).connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                async with raw.transaction():
                    await _write(_Asyncpg(raw), tenant_id, items, results)
    return [results[i] for i in range(len(batch))]


def _plan(
    tenant_id: str, batch: list[tuple[ClaimIn, str | None]]
) -> tuple[dict[int, ClaimResult], list[_Item]]:
    """Each claim's key, digest and answer; twins within the batch answered here, the rest to write."""
    results: dict[int, ClaimResult] = {}
    items: list[_Item] = []
    first_by_key: dict[str, _Item] = {}
    first_by_sequence: dict[tuple[str, int], _Item] = {}
    for index, (claim, given) in enumerate(batch):
        key = given or derived_key(claim)
        event_id = deterministic_event_id("intake", tenant_id, claim.claim_id, str(claim.event_sequence))
        body = {  # ClaimAccepted(...).model_dump(mode="json"), without building the model
            "status": "accepted",
            "tenant_id": tenant_id,
            "claim_id": claim.claim_id,
            "event_sequence": claim.event_sequence,
            "event_id": str(event_id),
            "workflow_id": claim_workflow_id(tenant_id, claim.claim_id),
        }
        item = _Item(index, claim, key, request_hash(claim), event_id, body)
        twin = first_by_key.get(key)
        if twin is not None:  # the same key twice in one batch: answered like a retry
            results[index] = (
                ClaimResult(index, claim.claim_id, claim.event_sequence, "duplicate", 200, twin.body)
                if twin.digest == item.digest
                else _key_reused(item)
            )
            continue
        first_by_key[key] = item
        sequence = (claim.claim_id, claim.event_sequence)
        if sequence in first_by_sequence:
            results[index] = _sequence_taken(item)
            continue
        first_by_sequence[sequence] = item
        items.append(item)
    return results, items


class _Alchemy:
    """Statements on a SQLAlchemy connection (inside the caller's session transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        result = await self.conn.exec_driver_sql(sql, args)
        return [tuple(r) for r in result.all()] if result.returns_rows else []


class _Asyncpg:
    """Statements on a bare asyncpg connection (in a transaction of its own)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(sql, *args)]


# Two statements whatever the batch size (fixed SQL: prepared once per connection, never
# recompiled): claim the keys and record the events; write the claims, their lines and the outbox
# rows. Only when a key or an event sequence was taken: read the prior answers, release keys.
_CLAIM_KEYS = """
WITH given AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::uuid[])
        AS g(key, request_sha256, response, claim_id, event_sequence, event_id)
), claimed AS (
    INSERT INTO intake.idempotency_keys (tenant_id, key, request_sha256, status_code, response)
    SELECT $1, key, request_sha256, 202, response::jsonb FROM given
    ON CONFLICT DO NOTHING
    RETURNING key
), recorded AS (
    INSERT INTO intake.claim_events (tenant_id, claim_id, event_sequence, event_id, idempotency_key)
    SELECT $1, g.claim_id, g.event_sequence, g.event_id, g.key FROM given g JOIN claimed c USING (key)
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT key, NULL::uuid FROM claimed UNION ALL SELECT NULL, event_id FROM recorded
"""
_PRIOR = """
SELECT key, request_sha256, status_code, response::text FROM intake.idempotency_keys
WHERE tenant_id = $1 AND key = ANY($2::text[])
"""
_RELEASE = "DELETE FROM intake.idempotency_keys WHERE tenant_id = $1 AND key = ANY($2::text[])"

_CLAIM_COLUMNS = (
    "claim_id", "source_system", "latest_event_sequence", "payer_name", "plan_type",
    "payer_contact_email", "provider_npi", "provider_tin", "provider_name", "patient_name",
    "patient_member_id", "patient_date_of_birth", "service_category", "state", "bill_sent_on",
    "initial_payment_received_on", "billed_total",
)  # fmt: skip
_CLAIM_TYPES = ("text", "text", "int", *["text"] * 8, "date", "text", "text", "date", "date", "numeric")
_LINE_COLUMNS = (
    "claim_id", "line_number", "service_code", "code_system", "service_date", "billed", "paid", "qpa",
    "cost_sharing",
)  # fmt: skip
_LINE_TYPES = ("text", "smallint", "text", "text", "date", "numeric", "numeric", "numeric", "numeric")
_OUTBOX_COLUMNS = ("event_id", "topic", "message_key", "event_type", "tenant_id", "envelope")


def _unnest(first: int, types: tuple[str, ...], names: tuple[str, ...], alias: str) -> str:
    params = ", ".join(f"${first + n}::{t}[]" for n, t in enumerate(types))
    return f"unnest({params}) AS {alias}({', '.join(names)})"


_N_CLAIM = 2
_N_COUNT = _N_CLAIM + len(_CLAIM_COLUMNS)
_N_LINE = _N_COUNT + 1
_N_OUTBOX = _N_LINE + len(_LINE_COLUMNS)
# the newest accepted event of each claim: the claim row unless it already holds a newer event;
# where it was written, its lines replace the old ones (upserted by number, the rest deleted)
_WRITE_ROWS = f"""
WITH newest AS (
    SELECT * FROM {_unnest(_N_CLAIM, (*_CLAIM_TYPES, "int"), (*_CLAIM_COLUMNS, "line_count"), "n")}
), written AS (
    INSERT INTO intake.claims AS c (tenant_id, {", ".join(_CLAIM_COLUMNS)})
    SELECT $1, {", ".join(_CLAIM_COLUMNS)} FROM newest
    ON CONFLICT (tenant_id, claim_id) DO UPDATE SET
        {", ".join(f"{k} = excluded.{k}" for k in _CLAIM_COLUMNS[1:])}, updated_at = excluded.created_at
    WHERE c.latest_event_sequence < excluded.latest_event_sequence
    RETURNING c.claim_id
), lines AS (
    INSERT INTO intake.claim_lines (tenant_id, {", ".join(_LINE_COLUMNS)})
    SELECT $1, {", ".join(f"x.{k}" for k in _LINE_COLUMNS)}
    FROM {_unnest(_N_LINE, _LINE_TYPES, _LINE_COLUMNS, "x")} JOIN written w USING (claim_id)
    ON CONFLICT (tenant_id, claim_id, line_number) DO UPDATE SET
        {", ".join(f"{k} = excluded.{k}" for k in _LINE_COLUMNS[2:])}
), trimmed AS (
    DELETE FROM intake.claim_lines l USING newest n JOIN written w USING (claim_id)
    WHERE l.tenant_id = $1 AND l.claim_id = n.claim_id AND l.line_number > n.line_count
), published AS (
    INSERT INTO intake.outbox ({", ".join(_OUTBOX_COLUMNS)})
    SELECT event_id, topic, message_key, event_type, tenant_id, envelope::jsonb
    FROM {_unnest(_N_OUTBOX, ("uuid", "text", "text", "text", "text", "text"), _OUTBOX_COLUMNS, "o")}
    ON CONFLICT (event_id) DO NOTHING
)
SELECT count(*) FROM written
"""  # noqa: S608 (no value is formatted into the SQL: column names and parameter numbers only)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Row tuples as one list per column (the arrays ``unnest`` takes)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)  # as Envelope writes occurred_at


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _write(
    db: _Alchemy | _Asyncpg, tenant_id: str, items: list[_Item], results: dict[int, ClaimResult]
) -> None:
    # claim the keys first: a concurrent twin blocks here until this transaction ends
    claimed = await db.rows(
        _CLAIM_KEYS,
        tenant_id,
        *_columns(
            [
                (i.key, i.digest, _json(i.body), i.claim.claim_id, i.claim.event_sequence, i.event_id)
                for i in items
            ],
            6,
        ),
    )
    new_keys: set[str] = set()
    taken_ok: set[Any] = set()
    for key, event_id in claimed:
        if key is not None:
            new_keys.add(key)
        else:
            taken_ok.add(event_id)
    old = [i for i in items if i.key not in new_keys]
    if old:
        prior = {r[0]: r for r in await db.rows(_PRIOR, tenant_id, [i.key for i in old])}
        for i in old:
            _, digest, status_code, response = prior[i.key]
            results[i.index] = (
                ClaimResult(
                    i.index,
                    i.claim.claim_id,
                    i.claim.event_sequence,
                    "duplicate",
                    status_code,
                    json.loads(response),
                )
                if digest == i.digest
                else _key_reused(i)
            )
    fresh = [i for i in items if i.key in new_keys]
    refused = [i for i in fresh if i.event_id not in taken_ok]
    if refused:
        for i in refused:
            results[i.index] = _sequence_taken(i)
        await db.rows(_RELEASE, tenant_id, [i.key for i in refused])
    accepted = [i for i in fresh if i.event_id in taken_ok]
    if not accepted:
        return
    for i in accepted:
        results[i.index] = ClaimResult(
            i.index, i.claim.claim_id, i.claim.event_sequence, "accepted", 202, i.body
        )

    # the claim rows: the newest event of each claim in this batch; an older event never wins
    newest: dict[str, _Item] = {}
    for i in accepted:
        if (
            i.claim.claim_id not in newest
            or i.claim.event_sequence > newest[i.claim.claim_id].claim.event_sequence
        ):
            newest[i.claim.claim_id] = i
    claim_rows = [(*_claim_values(i.claim), len(i.claim.lines)) for i in newest.values()]
    line_rows = [
        (
            i.claim.claim_id,
            n,
            line.service_code,
            line.code_system,
            line.service_date,
            line.billed,
            line.paid,
            line.qpa,
            line.cost_sharing,
        )
        for i in newest.values()
        for n, line in enumerate(i.claim.lines, start=1)
    ]
    # add_to_outbox's row of Envelope.wrap(to_event(claim), ...) for each claim, with what they share
    # made once: the instant, the topic, the request's trace headers (the payload is dumped once)
    occurred_at = _INSTANT.dump_python(datetime.now(UTC), mode="json")
    event_type, schema_version = ClaimAdjudicated.event_type, ClaimAdjudicated.schema_version
    topic, trace = topic_for(event_type), with_trace_headers({})
    outbox_rows = [
        (
            i.event_id,
            topic,
            f"{tenant_id}:{i.claim.claim_id}",
            event_type,
            tenant_id,
            _json(
                {
                    "event_id": str(i.event_id),
                    "event_type": event_type,
                    "schema_version": schema_version,
                    "occurred_at": occurred_at,
                    "tenant_id": tenant_id,
                    "claim_id": i.claim.claim_id,
                    "payload": to_event(i.claim).model_dump(mode="json"),
                    **trace,
                }
            ),
        )
        for i in accepted
    ]
    await db.rows(
        _WRITE_ROWS,
        tenant_id,
        *_columns(claim_rows, len(_CLAIM_COLUMNS) + 1),
        *_columns(line_rows, len(_LINE_COLUMNS)),
        *_columns(outbox_rows, len(_OUTBOX_COLUMNS)),
    )
