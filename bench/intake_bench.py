"""make bench: intake's write path, over HTTP, against bare INSERTs of the same rows.

Starts its own embedded PostgreSQL (migrated, one tenant) and intake as production runs it: a
separate ``idrflow serve intake`` process (uvicorn, JSON access logs, traces exporter ``none``,
``IDRFLOW_INTAKE_WORKERS`` workers). Kafka and Temporal are not needed: the outbox is written and
nothing relays it. Then, interleaved (baseline, subject, baseline, subject, ...), ``ROUNDS`` pairs
(default 5); the ratio printed is the median of each pair's ratio (a pair runs back to back, so a
slow minute of the shared disk or CPU slows both of its halves), with the lowest and highest:

(a) ``POST /v1/claims``, one claim a request, ``CLIENTS`` concurrent aiohttp clients on keep-alive
    connections; baseline: the same rows (idempotency key, claim event, claim, its lines, outbox
    row) written by bare asyncpg INSERTs, one transaction per claim, through a SQLAlchemy pool made
    like intake's (``IDRFLOW_DB_POOL_SIZE``, pre-ping), with the same concurrency. Target: at least 0.3x.
(b) ``POST /v1/claims:batch`` with 1,000 claims a request, ``BATCH_CLIENTS`` at a time; baseline:
    one multi-row INSERT per table, one transaction per 1,000 claims, same concurrency.
    Targets: at least 0.5x and 2,000 claims/s.

Every claim is new (its own id), so each is accepted and written; after each subject run the rows
it wrote are counted, table by table, and must equal the baseline's. The HTTP client runs in this
process, on the same cores as the server: its cost is charged to the subject.

``IDRFLOW_BENCH_INTAKE_CLAIMS`` (single claims a run, default 3,000), ``IDRFLOW_BENCH_INTAKE_BATCHES``
(1,000-claim batches a run, default 10), ``IDRFLOW_BENCH_INTAKE_CLIENTS`` (16),
``IDRFLOW_BENCH_INTAKE_BATCH_CLIENTS`` (2), ``IDRFLOW_BENCH_INTAKE_ROUNDS`` (5),
``IDRFLOW_INTAKE_WORKERS`` (the server's workers, 1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.bootstrap import seed_tenant
from deploy.migrate import upgrade
from deploy.servers import EmbeddedPostgres, free_port, stop_processes
from shared.events import deterministic_event_id
from shared.settings import Settings
from shared.tenants import new_api_key

SINGLE = int(os.environ.get("IDRFLOW_BENCH_INTAKE_CLAIMS", "3000"))
BATCHES = int(os.environ.get("IDRFLOW_BENCH_INTAKE_BATCHES", "10"))
CLIENTS = int(os.environ.get("IDRFLOW_BENCH_INTAKE_CLIENTS", "16"))
BATCH_CLIENTS = int(os.environ.get("IDRFLOW_BENCH_INTAKE_BATCH_CLIENTS", "2"))
WORKERS = int(os.environ.get("IDRFLOW_INTAKE_WORKERS", "1"))
ROUNDS = int(os.environ.get("IDRFLOW_BENCH_INTAKE_ROUNDS", "5"))
BATCH = 1000
TENANT = "bench"
TOPIC = "idr.claims.v1"
CODES = ("99283", "99284", "99285", "99291", "70450", "71046", "93010", "J1885")
PAYERS = [f"Payer {i:02d} Health" for i in range(20)]


def with_check_digit(prefix9: str) -> str:
    digits = [int(c) for c in "80840" + prefix9]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix9 + str((10 - total % 10) % 10)


NPIS = [with_check_digit(f"1{i:08d}") for i in range(1, 60)]


def synthetic(prefix: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` valid canonical claims (one to three lines, patient data, payer e-mail), new ids."""
    rng = random.Random(seed)  # noqa: S311 (synthetic data)
    out = []
    for i in range(n):
        sent = date(2026, 3, 2) + timedelta(days=rng.randint(0, 200))
        received = sent + timedelta(days=rng.randint(5, 25))
        lines = []
        for _ in range(rng.choice((1, 2, 2, 3))):
            billed = Decimal(rng.randint(20_000, 900_000)) / 100
            paid = (billed * rng.randint(5, 40) / 100).quantize(Decimal("0.01"))
            lines.append(
                {
                    "service_code": rng.choice(CODES),
                    "code_system": "CPT" if rng.random() < 0.9 else "HCPCS",
                    "service_date": (sent - timedelta(days=rng.randint(1, 10))).isoformat(),
                    "billed": str(billed),
                    "paid": str(paid),
                    "qpa": str((paid * 2).quantize(Decimal("0.01"))),
                }
            )
        out.append(
            {
                "claim_id": f"{prefix}-{i:06d}",
                "source_system": "ehr-bench",
                "payer": {
                    "name": rng.choice(PAYERS),
                    "plan_type": "self_insured_erisa" if rng.random() < 0.6 else "fully_insured_group",
                    "contact_email": "idr@payer.example",
                },
                "provider": {
                    "npi": rng.choice(NPIS),
                    "tin": f"{rng.randint(100_000_000, 999_999_999)}",
                    "name": "Metro Emergency Physicians",
                },
                "patient": {
                    "name": "Jane Roe",
                    "member_id": f"MEM{rng.randint(0, 10**8):08d}",
                    "date_of_birth": "1980-02-03",
                },
                "service_category": "emergency",
                "state": rng.choice(("TX", "NY", "CA", "FL")),
                "bill_sent_on": sent.isoformat(),
                "initial_payment_received_on": received.isoformat(),
                "lines": lines,
            }
        )
    return out


# -- the baseline: bare asyncpg INSERTs of the rows intake writes --------------------------------
KEY_COLS = ("tenant_id", "key", "request_sha256", "status_code", "response")
EVENT_COLS = ("tenant_id", "claim_id", "event_sequence", "event_id", "idempotency_key")
CLAIM_COLS = (
    "tenant_id", "claim_id", "source_system", "latest_event_sequence", "payer_name", "plan_type",
    "payer_contact_email", "provider_npi", "provider_tin", "provider_name", "patient_name",
    "patient_member_id", "patient_date_of_birth", "service_category", "state", "bill_sent_on",
    "initial_payment_received_on",
)  # fmt: skip
LINE_COLS = (
    "tenant_id", "claim_id", "line_number", "service_code", "code_system", "service_date", "billed",
    "paid", "qpa", "cost_sharing",
)  # fmt: skip
OUTBOX_COLS = ("event_id", "topic", "message_key", "event_type", "tenant_id", "envelope")
TABLES = (
    ("idempotency_keys", KEY_COLS),
    ("claim_events", EVENT_COLS),
    ("claims", CLAIM_COLS),
    ("claim_lines", LINE_COLS),
    ("outbox", OUTBOX_COLS),
)


@dataclass
class Rows:
    """One claim's rows, ready to bind (computed before timing: the baseline does only the I/O)."""

    key: tuple[Any, ...]
    event: tuple[Any, ...]
    claim: tuple[Any, ...]
    lines: list[tuple[Any, ...]]
    outbox: tuple[Any, ...]

    def of(self, table: str) -> list[tuple[Any, ...]]:
        return {
            "idempotency_keys": [self.key],
            "claim_events": [self.event],
            "claims": [self.claim],
            "claim_lines": self.lines,
            "outbox": [self.outbox],
        }[table]


def rows_of(claim: dict[str, Any]) -> Rows:
    d = date.fromisoformat
    cid, seq = claim["claim_id"], 1
    key = f"{claim['source_system']}:{cid}:{seq}"
    event_id = deterministic_event_id("intake", TENANT, cid, str(seq))
    digest = hashlib.sha256(json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    response = {
        "status": "accepted",
        "tenant_id": TENANT,
        "claim_id": cid,
        "event_sequence": seq,
        "event_id": str(event_id),
        "workflow_id": f"claim:{TENANT}:{cid}",
    }
    payer, provider, patient = claim["payer"], claim["provider"], claim["patient"]
    lines = [
        {
            "line_number": n,
            "service_code": line["service_code"],
            "code_system": line["code_system"],
            "service_date": line["service_date"],
            "billed": line["billed"],
            "paid": line["paid"],
            "qpa": line["qpa"],
            "cost_sharing": None,
        }
        for n, line in enumerate(claim["lines"], start=1)
    ]
    envelope = {
        "event_id": str(event_id),
        "event_type": "ClaimAdjudicated",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "tenant_id": TENANT,
        "claim_id": cid,
        "payload": {
            "claim_id": cid,
            "event_sequence": seq,
            "source_system": claim["source_system"],
            "payer_name": payer["name"],
            "plan_type": payer["plan_type"],
            "payer_contact_email": payer["contact_email"],
            "provider_npi": provider["npi"],
            "provider_tin": provider["tin"],
            "provider_name": provider["name"],
            "service_category": claim["service_category"],
            "state": claim["state"],
            "bill_sent_on": claim["bill_sent_on"],
            "initial_payment_received_on": claim["initial_payment_received_on"],
            "open_negotiation_started_on": None,
            "lines": lines,
        },
    }
    return Rows(
        key=(TENANT, key, digest, 202, json.dumps(response)),
        event=(TENANT, cid, seq, event_id, key),
        claim=(
            TENANT,
            cid,
            claim["source_system"],
            seq,
            payer["name"],
            payer["plan_type"],
            payer["contact_email"],
            provider["npi"],
            provider["tin"],
            provider["name"],
            patient["name"],
            patient["member_id"],
            d(patient["date_of_birth"]),
            claim["service_category"],
            claim["state"],
            d(claim["bill_sent_on"]),
            d(claim["initial_payment_received_on"]),
        ),
        lines=[
            (
                TENANT,
                cid,
                ln["line_number"],
                ln["service_code"],
                ln["code_system"],
                d(ln["service_date"]),
                Decimal(ln["billed"]),
                Decimal(ln["paid"]),
                Decimal(ln["qpa"]),
                None,
            )
            for ln in lines
        ],
        outbox=(event_id, TOPIC, f"{TENANT}:{cid}", "ClaimAdjudicated", TENANT, json.dumps(envelope)),
    )


_SQL: dict[tuple[str, int], str] = {}


def multi_row_insert(table: str, columns: Sequence[str], n: int) -> str:
    """``INSERT INTO intake.<table> (...) VALUES ($1, ...), (...)`` for ``n`` rows (made once)."""
    sql = _SQL.get((table, n))
    if sql is None:
        width = len(columns)
        values = ", ".join(
            "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(n)
        )
        sql = f"INSERT INTO intake.{table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
        _SQL[(table, n)] = sql
    return sql


async def bare_insert(engine: AsyncEngine, batch: Sequence[Rows]) -> None:
    """The rows of ``batch`` in one transaction: one multi-row INSERT per table."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.transaction():
            for table, columns in TABLES:
                rows = [row for r in batch for row in r.of(table)]
                await raw.execute(
                    multi_row_insert(table, columns, len(rows)), *[v for row in rows for v in row]
                )


# -- driving either side with the same concurrency -------------------------------------------
async def drive(concurrency: int, jobs: Sequence[Any], job: Callable[[Any], Awaitable[None]]) -> float:
    """Run ``job`` over ``jobs`` with ``concurrency`` workers; the elapsed seconds."""
    todo: Iterator[Any] = iter(jobs)

    async def worker() -> None:
        for item in todo:
            await job(item)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def post_single(client: aiohttp.ClientSession, claims: Sequence[dict[str, Any]]) -> float:
    async def one(claim: dict[str, Any]) -> None:
        async with client.post("/v1/claims", data=json.dumps(claim), headers=JSON) as r:
            text = await r.text()
            if r.status != 202:
                raise RuntimeError(f"POST /v1/claims answered {r.status}: {text[:300]}")

    return await drive(CLIENTS, claims, one)


async def post_batches(client: aiohttp.ClientSession, batches: Sequence[list[dict[str, Any]]]) -> float:
    async def one(batch: list[dict[str, Any]]) -> None:
        async with client.post("/v1/claims:batch", data=json.dumps({"claims": batch}), headers=JSON) as r:
            text = await r.text()
        summary = json.loads(text).get("summary") if r.status == 202 else None
        if summary != {"accepted": len(batch)}:
            raise RuntimeError(f"POST /v1/claims:batch answered {r.status}: {text[:300]}")

    return await drive(BATCH_CLIENTS, batches, one)


JSON = {"content-type": "application/json"}


async def counts(engine: AsyncEngine, prefix: str) -> dict[str, int]:
    """Rows of each table written for the claims whose id starts with ``prefix``."""
    out = {}
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for table, where in (
            ("idempotency_keys", "key LIKE 'ehr-bench:' || $1 || '%'"),
            ("claim_events", "claim_id LIKE $1 || '%'"),
            ("claims", "claim_id LIKE $1 || '%'"),
            ("claim_lines", "claim_id LIKE $1 || '%'"),
            ("outbox", "message_key LIKE $2 || ':' || $1 || '%'"),
        ):
            args = (prefix, TENANT) if table == "outbox" else (prefix,)
            sql = f"SELECT count(*) FROM intake.{table} WHERE {where}"  # noqa: S608
            out[table] = int(await raw.fetchval(sql, *args))
    return out


# -- the server under test ---------------------------------------------------------------------
def start_intake(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDRFLOW_")}
    env.update(
        {
            "DATABASE_URL": url,
            "IDRFLOW_TRACES_EXPORTER": "none",
            "IDRFLOW_INTAKE_WORKERS": str(WORKERS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "intake", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"intake exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"intake did not become healthy; see {log}")


@dataclass
class Figure:
    name: str
    unit: str
    subject: list[float]
    baseline: list[float]
    ratio_target: float
    absolute_target: float | None = None

    @property
    def ours(self) -> float:
        return statistics.median(self.subject)

    @property
    def bare(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratios(self) -> list[float]:
        """Each interleaved pair's subject/baseline."""
        return [s / b for s, b in zip(self.subject, self.baseline, strict=True)]


async def measure(url: str, port: int, api_key: str, console: Console) -> list[Figure]:
    # made like intake's engine (shared.db.get_engine): the same pool size and overflow, pre-ping
    settings = Settings()
    engine = create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        hide_parameters=True,
    )
    # aiohttp, not httpx, as the load generator: it shares the cores with the server, and per request
    # it costs about a third of httpx's CPU, which would otherwise be charged to intake
    client = aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {api_key}"},
        # idle connections dropped before uvicorn's keep-alive timeout (5 s) closes them under a request
        connector=aiohttp.TCPConnector(limit=max(CLIENTS, BATCH_CLIENTS), keepalive_timeout=2),
        timeout=aiohttp.ClientTimeout(total=120),
    )
    single = Figure("POST /v1/claims (one claim a request)", "claims/s", [], [], 0.3)
    batch = Figure(f"POST /v1/claims:batch ({BATCH:,} a request)", "claims/s", [], [], 0.5, 2000.0)
    run = uuid.uuid4().hex[:6]
    try:
        # warm both sides (connections, prepared statements, the server's first requests)
        warm = synthetic(f"W{run}", 100 + BATCH, 0)
        await post_single(client, warm[:100])
        await post_batches(client, [warm[100:]])
        bare = synthetic(f"V{run}", 100 + BATCH, 0)
        await drive(CLIENTS, [[rows_of(c)] for c in bare[:100]], lambda b: bare_insert(engine, b))
        await bare_insert(engine, [rows_of(c) for c in bare[100:]])
        # statistics for the tables the warm-up filled, as autovacuum soon gathers in production:
        # without them the first round's foreign-key checks plan for empty tables, on both sides
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("ANALYZE")
        for r in range(ROUNDS):
            for kind in ("bare", "http"):
                prefix = f"{kind[0].upper()}{run}{r}S"
                claims = synthetic(prefix, SINGLE, seed=r)
                if kind == "bare":
                    jobs = [[rows_of(c)] for c in claims]
                    t = await drive(CLIENTS, jobs, lambda b: bare_insert(engine, b))
                    single.baseline.append(SINGLE / t)
                    want = await counts(engine, prefix)
                else:
                    t = await post_single(client, claims)
                    single.subject.append(SINGLE / t)
                    got = await counts(engine, prefix)
                    assert got == want, f"intake wrote {got}, the baseline {want}"
            for kind in ("bare", "http"):
                prefix = f"{kind[0].upper()}{run}{r}B"
                claims = synthetic(prefix, BATCH * BATCHES, seed=100 + r)
                chunks = [claims[i : i + BATCH] for i in range(0, len(claims), BATCH)]
                if kind == "bare":
                    rows = [[rows_of(c) for c in chunk] for chunk in chunks]
                    t = await drive(BATCH_CLIENTS, rows, lambda b: bare_insert(engine, b))
                    batch.baseline.append(len(claims) / t)
                    want = await counts(engine, prefix)
                else:
                    t = await post_batches(client, chunks)
                    batch.subject.append(len(claims) / t)
                    got = await counts(engine, prefix)
                    assert got == want, f"intake wrote {got}, the baseline {want}"
            console.print(
                f"round {r + 1}/{ROUNDS}: single {single.subject[-1]:,.0f} vs {single.baseline[-1]:,.0f}, "
                f"batch {batch.subject[-1]:,.0f} vs {batch.baseline[-1]:,.0f} claims/s"
            )
    finally:
        await client.close()
        await engine.dispose()
    # issue 11's reading of the batch target: the same batch posts against the bare single-claim
    # transactions of the same round (the multi-row baseline above is the stricter one)
    per_claim = Figure(
        "POST /v1/claims:batch vs one bare transaction a claim", "claims/s", batch.subject,
        single.baseline, 0.5, 2000.0,
    )  # fmt: skip
    return [single, batch, per_claim]


def report(figures: list[Figure], console: Console) -> None:
    table = Table(
        title=f"intake writes, {os.cpu_count()} cores shared by client, server ({WORKERS} worker"
        f"{'s' if WORKERS > 1 else ''}) and PostgreSQL; medians of {ROUNDS} interleaved pairs"
    )
    for column in ("what", "idrflow", "bare INSERTs", "ratio", "target", "met"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for f in figures:
        ratio = statistics.median(f.ratios)
        target = f">={f.ratio_target:.1f}x"
        met = ratio >= f.ratio_target
        if f.absolute_target is not None:
            target += f", >={f.absolute_target:,.0f}/s"
            met = met and f.ours >= f.absolute_target
        table.add_row(
            f.name,
            f"{f.ours:,.0f} {f.unit}",
            f"{f.bare:,.0f}",
            f"{ratio:.2f}x ({min(f.ratios):.2f}-{max(f.ratios):.2f})",
            target,
            "yes" if met else "NO",
        )
    console.print(table)
    console.print(
        f"single: {CLIENTS} concurrent clients, {SINGLE:,} claims a run, baseline one transaction a claim; "
        f"batch: {BATCH_CLIENTS} at a time, {BATCHES} x {BATCH:,} claims a run, baseline one multi-row "
        "INSERT per table a batch (third row: the batch posts against the single-claim baseline)"
    )


def main() -> None:
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="idrflow-intake-bench-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    server: subprocess.Popen[bytes] | None = None
    try:
        url = pg.start()
        upgrade(url)
        api_key = new_api_key(TENANT)
        asyncio.run(seed_tenant(url, TENANT, "Bench", api_key, None, None))
        port = free_port()
        server = start_intake(url, port, root / "intake.log")
        figures = asyncio.run(measure(url, port, api_key, console))
        report(figures, console)
    finally:
        if server is not None:
            stop_processes([(server, signal.SIGTERM)], timeout=10)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
