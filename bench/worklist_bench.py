"""make bench: the worklist and the CSV export over 100,000 claims in embedded PostgreSQL.

Loads synthetic claims (several tenants, a realistic spread of stages, payers, providers, deadlines
and service codes; one to three lines each) with COPY, runs ANALYZE, then times each worklist query
through ``records.worklist`` (SQLAlchemy, pydantic rows, keyset cursor) next to a bare indexed SELECT
of the same rows written as plain SQL and run through asyncpg, in the same run, and prints the
ratio. Checks that both return the same claims before timing. Also a full CSV export of one tenant
through ``records.export_csv`` next to a bare SELECT of the same join.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.migrate import upgrade
from deploy.servers import EmbeddedPostgres, free_port
from services.dispute.filters import ClaimFilters, encode_cursor
from services.dispute.records import SUMMARY, export_csv, worklist

N = int(os.environ.get("IDRFLOW_BENCH_WORKLIST_CLAIMS", "100000"))
REPEAT = int(os.environ.get("IDRFLOW_BENCH_REPEAT", "200"))
PAGE = 50
TENANTS = {"metro-em": 0.40, "lakeside": 0.25, "northpeak": 0.15, "harbor": 0.12, "summit": 0.08}
STAGES = {  # stage: (weight, final)
    "awaiting_initial_payment": (4, False), "open_negotiation_window": (22, False),
    "idr_initiation_window": (10, False), "idr_initiated": (6, False), "entity_selected": (8, False),
    "eligibility_review": (2, False), "determined": (3, False), "payment_due": (10, False),
    "forfeited": (5, False), "paid": (10, True), "settled": (8, True), "closed": (10, True),
    "administratively_closed": (2, True),
}  # fmt: skip
PAYERS = [f"Payer {i:02d} Health" for i in range(40)]
CODES = ["99281", "99282", "99283", "99284", "99285", "99291", "93010", "71045", "A0427", "A0429"]
CODES += [f"{70000 + i}" for i in range(30)]
TODAY = date(2026, 12, 1)
DEADLINES = ("open_negotiation_period_end", "idr_initiation_deadline", "offer_deadline", "payment_due")
COLUMNS = [col.name for col in SUMMARY]


CLAIM_COLUMNS = [
    "tenant_id", "claim_id", "record_seq", "stage", "final", "payer_name", "provider_npi", "provider_tin",
    "state", "service_codes", "next_deadline_name", "next_deadline_on", "next_deadline_at", "amount_billed",
    "amount_initially_paid", "amount_owed", "amount_received", "amount_at_stake", "dates", "workflow_id",
    "closed_at",
]  # fmt: skip
LINE_COLUMNS = ["tenant_id", "claim_id", "line_number", "service_code", "code_system", "service_date"]
LINE_COLUMNS += ["billed", "paid", "qpa"]
CENT = Decimal("0.01")


def synthetic(n: int, seed: int = 11) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = random.Random(seed)  # noqa: S311 (synthetic data)
    stages, weights = list(STAGES), [w for w, _ in STAGES.values()]
    payer_weights = [1 / (i + 1) for i in range(len(PAYERS))]  # a few big payers, a long tail
    claims, lines = [], []
    for i in range(n):
        tenant = rng.choices(list(TENANTS), list(TENANTS.values()))[0]
        claim_id = f"CLM-{i:07d}"
        stage = rng.choices(stages, weights)[0]
        final = STAGES[stage][1]
        due = None if final or rng.random() < 0.12 else TODAY + timedelta(days=rng.randint(-10, 120))
        codes = rng.sample(CODES[:10] if rng.random() < 0.8 else CODES, rng.randint(1, 3))
        billed = [Decimal(rng.randint(20_000, 900_000)) / 100 for _ in codes]
        paid = [(b * rng.randint(5, 40) / 100).quantize(CENT) for b in billed]
        owed = (sum(billed) * Decimal("0.6")).quantize(CENT) if stage in ("payment_due", "paid") else None
        received = owed if owed is not None and stage == "paid" else Decimal("0.00")
        row = {
            "tenant_id": tenant,
            "claim_id": claim_id,
            "record_seq": 1,
            "stage": stage,
            "final": final,
            "payer_name": rng.choices(PAYERS, payer_weights)[0],
            "provider_npi": str(1_000_000_000 + rng.randint(0, 199) * 7919),
            "provider_tin": str(100_000_000 + rng.randint(0, 49) * 104729),
            "state": rng.choice(["TX", "NY", "CA", "FL", "IL"]),
            "service_codes": codes,
            "next_deadline_name": rng.choice(DEADLINES) if due else None,
            "next_deadline_on": due,
            "next_deadline_at": datetime(due.year, due.month, due.day, 22, tzinfo=UTC) if due else None,
            "amount_billed": sum(billed),
            "amount_initially_paid": sum(paid),
            "amount_owed": owed,
            "amount_received": received,
            "amount_at_stake": owed - received if owed is not None else sum(billed) - sum(paid),
            "dates": json.dumps(
                {"initial_payment_received_on": str(TODAY - timedelta(days=rng.randint(20, 200)))}
            ),
            "workflow_id": f"claim:{tenant}:{claim_id}",
            "closed_at": datetime(2026, 11, 30, tzinfo=UTC) if final else None,
        }
        claims.append(tuple(row[c] for c in CLAIM_COLUMNS))
        for number, (code, b, p) in enumerate(zip(codes, billed, paid, strict=True), start=1):
            lines.append((tenant, claim_id, number, code, "CPT", TODAY - timedelta(days=60), b, p, p * 2))
    return claims, lines


async def load(dsn: str) -> None:
    claims, lines = synthetic(N)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "claims", schema_name="dispute", columns=CLAIM_COLUMNS, records=claims
        )
        await conn.copy_records_to_table(
            "claim_lines", schema_name="dispute", columns=LINE_COLUMNS, records=lines
        )
        await conn.execute("ANALYZE dispute.claims; ANALYZE dispute.claim_lines")
    finally:
        await conn.close()


@dataclass
class Case:
    name: str
    filters: ClaimFilters
    where: str  # the same filters as plain SQL, after tenant_id = $1 (parameters from $2)
    args: tuple[Any, ...] = ()
    deep: int = 0  # start after this many rows (a keyset cursor)


def cases(tenant: str) -> list[Case]:
    big_payer, code, due = PAYERS[0], "99291", TODAY + timedelta(days=14)
    return [
        Case("first page", ClaimFilters(), ""),
        Case("deep page (row 20,000)", ClaimFilters(), "", deep=20_000),
        Case("deep page, undated part", ClaimFilters(), "", deep=-3 * PAGE),
        Case("payer", ClaimFilters(payer=big_payer), "AND payer_name = $2", (big_payer,)),
        Case("payer, deep page", ClaimFilters(payer=big_payer), "AND payer_name = $2", (big_payer,), 4_000),
        Case(
            "stage + due_before",
            ClaimFilters(stages=("payment_due",), due_before=due),
            "AND stage = $2 AND next_deadline_on <= $3",
            ("payment_due", due),
        ),
        Case("service code (GIN)", ClaimFilters(service_code=code), "AND service_codes @> $2", ([code],)),
        Case(
            "min amount at stake",
            ClaimFilters(min_amount_at_stake=Decimal(15_000)),
            "AND amount_at_stake >= $2",
            (Decimal(15_000),),
        ),
    ]


def baseline_sql(case: Case, key: tuple[datetime | None, str] | None) -> tuple[str, tuple[Any, ...]]:
    """The hand-written keyset query for the same page: dated rows after a dated key, or undated
    rows after an undated key (every case below stays on one side of that boundary)."""
    n = 2 + len(case.args)
    where = f"tenant_id = $1 AND NOT final {case.where}"
    head = f"SELECT {', '.join(COLUMNS)} FROM dispute.claims WHERE {where}"  # noqa: S608
    if key is None:
        sql = f"{head} ORDER BY next_deadline_at, claim_id LIMIT {PAGE + 1}"
        return sql, case.args
    if key[0] is None:
        sql = f"{head} AND next_deadline_at IS NULL AND claim_id > ${n} ORDER BY claim_id LIMIT {PAGE + 1}"
        return sql, (*case.args, key[1])
    sql = f"{head} AND (next_deadline_at, claim_id) > (${n}, ${n + 1}) ORDER BY next_deadline_at, claim_id"
    return f"{sql} LIMIT {PAGE + 1}", (*case.args, *key)


async def key_at(conn: asyncpg.Connection, tenant: str, case: Case) -> tuple[datetime | None, str] | None:
    if not case.deep:
        return None
    where = f"tenant_id = $1 AND NOT final {case.where}"
    sql = f"SELECT next_deadline_at, claim_id FROM dispute.claims WHERE {where}"  # noqa: S608
    if case.deep < 0:  # counted from the end: inside the undated claims
        sql += f" ORDER BY next_deadline_at DESC NULLS FIRST, claim_id DESC OFFSET {-case.deep} LIMIT 1"
    else:
        sql += f" ORDER BY next_deadline_at, claim_id OFFSET {case.deep - 1} LIMIT 1"
    row = await conn.fetchrow(sql, tenant, *case.args)
    return (row[0], row[1]) if row else None


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    for _ in range(max(3, repeat // 20)):
        await fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


async def measure(engine: AsyncEngine, dsn: str, console: Console) -> None:
    tenant = next(iter(TENANTS))
    conn = await asyncpg.connect(dsn)
    table = Table(title=f"worklist of {tenant} ({N:,} claims in all), {PAGE} rows a page, ms")
    for column in ("query", "records median", "p95", "bare SQL median", "p95", "ratio"):
        table.add_column(column, justify="right" if column != "query" else "left")
    try:
        for case in cases(tenant):
            key = await key_at(conn, tenant, case)
            cursor = encode_cursor(*key) if key else None
            sql, args = baseline_sql(case, key)

            async def ours(case: Case = case, cursor: str | None = cursor) -> list[str]:
                page = await worklist(engine, tenant, case.filters, PAGE, cursor)
                return [i.claim_id for i in page.items]

            async def bare(sql: str = sql, args: tuple[Any, ...] = args) -> list[str]:
                return [r["claim_id"] for r in (await conn.fetch(sql, tenant, *args))[:PAGE]]

            got, want = await ours(), await bare()
            assert got == want and got, f"{case.name}: records and the bare SELECT disagree"
            (om, op), (bm, bp) = await timed(ours, REPEAT), await timed(bare, REPEAT)
            table.add_row(case.name, *(f"{v * 1000:.2f}" for v in (om, op, bm, bp)), f"{om / bm:.2f}x")
        console.print(table)
        await export(engine, conn, console)
    finally:
        await conn.close()


async def export(engine: AsyncEngine, conn: asyncpg.Connection, console: Console) -> None:
    tenant = list(TENANTS)[1]
    sql = (
        "SELECT c.claim_id, c.dispute_number, c.stage, c.payer_name, c.provider_npi, c.provider_tin,"
        " c.state, c.idr_entity, c.dates, c.amount_owed, c.amount_received, c.next_deadline_name,"
        " c.next_deadline_on, l.line_number, l.service_code, l.service_date, l.billed, l.paid, l.qpa,"
        " l.provider_offer, l.payer_offer, l.determined_amount, l.prevailing_party"
        " FROM dispute.claims c LEFT JOIN dispute.claim_lines l"
        " ON l.tenant_id = c.tenant_id AND l.claim_id = c.claim_id"
        " WHERE c.tenant_id = $1 AND NOT c.final ORDER BY c.claim_id, l.line_number"
    )
    rows = 0

    async def ours() -> None:
        nonlocal rows
        text = "".join([chunk async for chunk in export_csv(engine, tenant)])
        rows = text.count("\n") - 1

    async def bare() -> None:
        async with conn.transaction():
            async for _ in conn.cursor(sql, tenant, prefetch=2000):
                pass

    (om, op), (bm, bp) = await timed(ours, 5), await timed(bare, 5)
    table = Table(title=f"CSV export of {tenant}: {rows:,} rows (claim x line)")
    for column in ("what", "median s", "p95 s"):
        table.add_column(column)
    table.add_row("records.export_csv (CSV text)", f"{om:.3f}", f"{op:.3f}")
    table.add_row("bare SELECT, server-side cursor", f"{bm:.3f}", f"{bp:.3f}")
    table.add_row("ratio", f"{om / bm:.2f}x", "")
    console.print(table)


def main() -> None:
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="idrflow-worklist-bench-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    try:
        url = pg.start()
        upgrade(url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        started = time.perf_counter()
        asyncio.run(load(dsn))
        console.print(f"loaded {N:,} claims with COPY and analyzed in {time.perf_counter() - started:.1f}s")

        async def run() -> None:
            engine = create_async_engine(url, pool_size=2)
            try:
                await measure(engine, dsn, console)
            finally:
                await engine.dispose()

        asyncio.run(run())
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
