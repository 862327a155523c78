"""The read side of the claim record against real PostgreSQL: rows written straight into the dispute
tables for two tenants, read back through records.py, the HTTP API and the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.migrate import upgrade
from deploy.servers import EmbeddedPostgres, free_port
from services.dispute.filters import BadCursor, ClaimFilters, decode_cursor, encode_cursor
from services.dispute.models import (
    claim_actions,
    claim_alerts,
    claim_deadlines,
    claim_lines,
    claim_transitions,
    claims,
)
from services.dispute.records import EXPORT_COLUMNS, audit_timeline, claim_record, export_rows, worklist
from tests.integration.records_kit import (
    AT,
    FINAL_A,
    KEY_A,
    KEY_B,
    NPIS,
    OPEN_A,
    PAYERS,
    ROWS_B,
    STAGES,
    TINS,
    A,
    B,
    c001,
    in_urgency_order,
    open_a,
)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """PostgreSQL only (embedded, migrated); this process's settings point at it for the module.
    Its own directory: pytest's numbered temp dirs are shared with other sessions, which prune them."""
    from shared.db import get_engine
    from shared.settings import get_settings

    root = Path(tempfile.mkdtemp(prefix="idrflow-records-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    saved = os.environ.get("DATABASE_URL")
    try:
        url = pg.start()
        upgrade(url)
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        get_engine.cache_clear()
        yield url
    finally:
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        get_settings.cache_clear()
        get_engine.cache_clear()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    from shared.db import get_engine
    from shared.tenants import upsert_tenant

    eng = create_async_engine(database_url)
    tables = {t.name: t for t in (claims, claim_lines, claim_transitions, claim_actions, claim_deadlines)}
    tables["claim_alerts"] = claim_alerts
    async with eng.begin() as conn:
        await conn.execute(insert(claims), [*OPEN_A, *FINAL_A, *ROWS_B])
        for tenant, payer in ((A, "Acme Health Plan"), (B, "Bravo Only Plan")):
            for name, rows in c001(tenant, payer).items():
                await conn.execute(insert(tables[name]), rows)
    await upsert_tenant(A, "Acme Billing", KEY_A, eng)
    await upsert_tenant(B, "Bravo Billing", KEY_B, eng)
    yield eng
    await eng.dispose()
    await get_engine().dispose()


async def _all_pages(engine: AsyncEngine, tenant: str, filters: ClaimFilters, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await worklist(engine, tenant, filters, limit, cursor)
        assert len(page.items) <= limit
        ids += [i.claim_id for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
        assert len(page.items) == limit  # a cursor only when a full page was returned
    raise AssertionError("the pages never ended")


# -- the worklist ------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 7, 25, 30, 45, 89, 90, 91, 119, 120, 500])
async def test_pages_cover_every_open_claim_once_in_urgency_order(engine: AsyncEngine, limit: int) -> None:
    expected = in_urgency_order(open_a())
    dated = sum(1 for r in open_a() if r["next_deadline_at"] is not None)
    assert len(expected) == 120 and 0 < dated < 120
    ids = await _all_pages(engine, A, ClaimFilters(), limit)
    assert ids == expected  # no duplicates, no gaps, undated claims last


async def test_a_page_boundary_inside_and_at_the_end_of_the_dated_claims(engine: AsyncEngine) -> None:
    expected = in_urgency_order(open_a())
    dated = sum(1 for r in open_a() if r["next_deadline_at"] is not None)
    first = await worklist(engine, A, ClaimFilters(), dated - 3)
    assert first.next_cursor and decode_cursor(first.next_cursor)[0] is not None
    across = await worklist(engine, A, ClaimFilters(), 10, first.next_cursor)  # 3 dated, 7 undated
    assert [i.claim_id for i in across.items] == expected[dated - 3 : dated + 7]
    assert [i.next_deadline_at is None for i in across.items] == [False] * 3 + [True] * 7
    assert across.next_cursor and decode_cursor(across.next_cursor)[0] is None
    at_end = await worklist(engine, A, ClaimFilters(), dated)
    assert at_end.items[-1].next_deadline_at is not None and at_end.next_cursor
    rest = await worklist(engine, A, ClaimFilters(), 500, at_end.next_cursor)
    assert [i.claim_id for i in rest.items] == expected[dated:] and rest.next_cursor is None


def _has(r: dict[str, Any], **want: Any) -> bool:
    return all(r[k] == v for k, v in want.items())


FILTERS: list[tuple[str, ClaimFilters, Any]] = [
    ("stage", ClaimFilters(stages=("payment_due",)), lambda r: r["stage"] == "payment_due"),
    ("stages", ClaimFilters(stages=STAGES[:2]), lambda r: r["stage"] in STAGES[:2]),
    ("payer", ClaimFilters(payer="Beacon Mutual"), lambda r: r["payer_name"] == "Beacon Mutual"),
    ("npi", ClaimFilters(provider_npi=NPIS[1]), lambda r: r["provider_npi"] == NPIS[1]),
    ("tin", ClaimFilters(provider_tin=TINS[1]), lambda r: r["provider_tin"] == TINS[1]),
    ("code", ClaimFilters(service_code="A0429"), lambda r: "A0429" in r["service_codes"]),
    (
        "due_before",
        ClaimFilters(due_before=date(2026, 12, 10)),
        lambda r: r["next_deadline_on"] is not None and r["next_deadline_on"] <= date(2026, 12, 10),
    ),
    (
        "due_after",
        ClaimFilters(due_after=date(2026, 12, 20)),
        lambda r: r["next_deadline_on"] is not None and r["next_deadline_on"] >= date(2026, 12, 20),
    ),
    (
        "stage+due_before",
        ClaimFilters(stages=("entity_selected",), due_before=date(2026, 12, 20)),
        lambda r: (
            _has(r, stage="entity_selected")
            and r["next_deadline_on"] is not None
            and r["next_deadline_on"] <= date(2026, 12, 20)
        ),
    ),
    (
        "min_amount",
        ClaimFilters(min_amount_at_stake=Decimal("2000.50")),
        lambda r: r["amount_at_stake"] >= Decimal("2000.50"),
    ),
]


@pytest.mark.parametrize(("name", "filters", "keep"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_each_filter(engine: AsyncEngine, name: str, filters: ClaimFilters, keep: Any) -> None:
    expected = in_urgency_order(open_a(), keep)
    assert 0 < len(expected) < 120, name  # the filter does filter
    assert await _all_pages(engine, A, filters, 13) == expected


async def test_final_claims_only_when_asked(engine: AsyncEngine) -> None:
    every = await _all_pages(engine, A, ClaimFilters(include_final=True), 50)
    assert every == in_urgency_order([*open_a(), *FINAL_A])
    closed = await _all_pages(engine, A, ClaimFilters(stages=("closed",)), 50)
    assert closed == []
    closed = await _all_pages(engine, A, ClaimFilters(stages=("closed",), include_final=True), 50)
    assert closed == in_urgency_order(FINAL_A)


async def test_a_summary_row_carries_money_as_decimal(engine: AsyncEngine) -> None:
    page = await worklist(engine, A, ClaimFilters(payer="Acme Health Plan", min_amount_at_stake=Decimal(460)))
    c001 = next(i for i in page.items if i.claim_id == "C001")
    assert c001.amount_at_stake == Decimal("460.10") and isinstance(c001.amount_owed, Decimal)
    assert c001.service_codes == ["99285", "93010"] and c001.next_deadline_on == date(2026, 12, 31)


@pytest.mark.parametrize(
    "cursor",
    ["", "not a cursor!", "e30", encode_cursor(None, "x") + "A", "eyJhdCI6MSwiaWQiOiJ4In0", "W10"],
)
async def test_a_bad_cursor_is_refused(engine: AsyncEngine, cursor: str) -> None:
    with pytest.raises(BadCursor):
        await worklist(engine, A, ClaimFilters(), 10, cursor)


# -- one claim, its audit, its export ----------------------------------------------------------
async def test_the_claim_record(engine: AsyncEngine) -> None:
    status = await claim_record(engine, A, "C001")
    assert status is not None
    assert (status.stage, status.payer_name, status.event_sequence) == ("payment_due", "Acme Health Plan", 2)
    assert set(status.deadlines) == {"payment_due", "idr_initiation_deadline"}  # in force only
    assert status.next_deadline is not None and status.next_deadline.due_on == date(2026, 12, 31)
    assert [t.stage for t in status.transitions] == ["open_negotiation_window", "determined", "payment_due"]
    assert status.transitions[1].by == "ops@acme"
    assert [(a.action, a.outcome) for a in status.actions] == [
        ("payment_received", "rejected"),
        ("determination", "applied"),
        ("payment_received", "applied"),
    ]
    assert status.actions[0].idempotency_key == "k-1" and status.actions[2].details == {"amount": "1000.00"}
    assert [(r.deadline, r.business_days_before) for r in status.reminders_sent] == [("payment_due", 5)]
    assert status.dates["idr_initiated_on"] == date(2026, 12, 18)
    assert status.facts is not None and status.facts.lines[1].billed == Decimal("180.10")
    assert (status.amount_owed, status.amount_received, status.amount_at_stake) == (
        Decimal("1460.10"),
        Decimal("1000.00"),
        Decimal("460.10"),
    )
    assert status.workflow_id == f"claim:{A}:C001" and status.final is False
    assert await claim_record(engine, A, "NOPE") is None


async def test_audit_merges_everything_in_time_order(engine: AsyncEngine) -> None:
    entries = await audit_timeline(engine, A, "C001")
    assert entries is not None
    got = [(e.at, e.kind) for e in entries]
    assert got == [
        (AT[0], "transition"),
        (AT[0], "deadline_planned"),  # idr_initiation_deadline
        (AT[1], "deadline_planned"),  # payment_due 12-30
        (AT[2], "action_rejected"),
        (AT[3], "action"),  # the determination, then the transitions it caused
        (AT[3], "transition"),
        (AT[3], "transition"),
        (AT[3], "deadline_superseded"),
        (AT[3], "deadline_planned"),
        (AT[4], "reminder-5"),  # an alert: its own kind
        (AT[5], "action"),
        (AT[6], "overdue-1"),
    ]
    assert entries[5].summary == "open_negotiation_window -> determined: determination recorded"
    assert entries[6].details["changes"] == {"qpa": ["400.00", "410.00"]}
    assert entries[3].actor == "ops@acme" and entries[3].details["body"] == {"amount": "5.00"}
    assert "2026-12-30" in entries[7].summary and entries[11].summary == "payment overdue"
    assert await audit_timeline(engine, B, "P002") is None


async def test_export_one_row_per_claim_and_line(engine: AsyncEngine) -> None:
    rows = [dict(zip(EXPORT_COLUMNS, r, strict=True)) async for r in export_rows(engine, A, ClaimFilters())]
    assert len(rows) == 121  # 119 claims without lines, C001 with two
    mine = [r for r in rows if r["claim_id"] == "C001"]
    assert [r["line_number"] for r in mine] == ["1", "2"]
    first = mine[0]
    assert first["billed"] == "2400.00" and first["dispute_number"] == "DISP-2026-000123"
    assert (first["initially_paid"], first["qpa"], first["determined_amount"]) == (
        "350.00",
        "410.00",
        "1800.00",
    )
    assert (first["provider_offer"], first["payer_offer"], first["prevailing_party"]) == (
        "1800.00",
        "450.00",
        "provider",
    )
    assert (first["amount_owed"], first["amount_received"]) == ("1460.10", "1000.00")
    assert (first["idr_initiated_on"], first["idre_selected_on"], first["determination_on"]) == (
        "2026-12-18",
        "2026-12-22",
        "2026-12-01",
    )
    assert first["idr_entity"] == "'=Federal IDR Entity LLC"  # a spreadsheet formula is defused
    assert (first["next_deadline_name"], first["next_deadline_on"]) == ("payment_due", "2026-12-31")
    assert mine[1]["billed"] == "180.10" and mine[1]["qpa"] == "" and mine[1]["service_code"] == "93010"
    no_lines = next(r for r in rows if r["claim_id"] == "P001")
    assert no_lines["line_number"] == "" and no_lines["payer_name"] == PAYERS[1]
    only_b = [r async for r in export_rows(engine, B, ClaimFilters(include_final=True))]
    assert {r[0] for r in only_b} == {"C001", "P001", "Q001"}


# -- over HTTP: tenancy and problems -----------------------------------------------------------
@pytest.fixture
async def http(engine: AsyncEngine) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    from services.dispute.app import create_app

    transport = httpx.ASGITransport(app=create_app())  # no lifespan: the read routes need PostgreSQL only

    def client(key: str) -> httpx.AsyncClient:
        auth = {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(transport=transport, base_url="http://dispute", headers=auth)

    async with client(KEY_A) as a, client(KEY_B) as b:
        yield {A: a, B: b}


async def test_http_reads_and_pages(http: dict[str, httpx.AsyncClient]) -> None:
    r = await http[A].get("/v1/claims", params={"limit": 50, "stage": "payment_due,entity_selected"})
    assert r.status_code == 200, r.text
    ids = [i["claim_id"] for i in r.json()["items"]]
    r2 = await http[A].get(
        "/v1/claims",
        params={"limit": 50, "cursor": r.json()["next_cursor"], "stage": ["payment_due", "entity_selected"]},
    )
    assert r2.status_code == 200 and r2.json()["next_cursor"] is None
    ids += [i["claim_id"] for i in r2.json()["items"]]
    assert ids == in_urgency_order(open_a(), lambda x: x["stage"] in ("payment_due", "entity_selected"))
    one = await http[A].get("/v1/claims/C001")
    assert one.status_code == 200 and one.json()["amount_at_stake"] == "460.10"
    audit = await http[A].get("/v1/claims/C001/audit")
    assert audit.status_code == 200 and len(audit.json()) == 12
    assert audit.json() == sorted(audit.json(), key=lambda e: e["at"])
    assert audit.json()[9]["details"]["event_type"] == "DeadlineApproaching"
    listed = (await http[A].get("/v1/claims", params={"min_amount_at_stake": "2900"})).json()["items"]
    assert [i["claim_id"] for i in listed] == in_urgency_order(
        open_a(), lambda x: x["amount_at_stake"] >= 2900
    )


async def test_tenant_b_never_sees_tenant_a(http: dict[str, httpx.AsyncClient]) -> None:
    listed = (await http[B].get("/v1/claims", params={"include_final": "true", "limit": 500})).json()
    assert sorted(i["claim_id"] for i in listed["items"]) == ["C001", "P001", "Q001"]
    assert {i["payer_name"] for i in listed["items"]} == {"Bravo Only Plan"}
    shared = (await http[B].get("/v1/claims/C001")).json()  # the same claim id, B's own claim
    assert shared["tenant_id"] == B and shared["payer_name"] == "Bravo Only Plan"
    for path in ("/v1/claims/P002", "/v1/claims/P002/audit", "/v1/claims/F001"):
        r = await http[B].get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].startswith("No claim 'P002'" if "P002" in path else "No claim 'F001'")
        assert r.json()["errors"] == [{"field": "claim_id", "reason": r.json()["detail"]}]
    assert (await http[A].get("/v1/claims/P002")).status_code == 200
    csv_b = await http[B].get("/v1/claims.csv", params={"include_final": "true"})
    assert csv_b.status_code == 200 and csv_b.headers["content-type"].startswith("text/csv")
    parsed = list(csv.reader(io.StringIO(csv_b.text)))
    assert tuple(parsed[0]) == EXPORT_COLUMNS
    assert sorted(r[0] for r in parsed[1:]) == ["C001", "C001", "P001", "Q001"]
    assert all(r[3] == "Bravo Only Plan" for r in parsed[1:])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "eyJhdCI6bnVsbH0"}, "cursor"),
        ({"due_before": "2026-13-45"}, "due_before"),
        ({"due_after": "tomorrow"}, "due_after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"min_amount_at_stake": "lots"}, "min_amount_at_stake"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_parameter(
    http: dict[str, httpx.AsyncClient], params: dict[str, str], field: str
) -> None:
    for path in ("/v1/claims", "/v1/claims.csv") if field not in ("cursor", "limit") else ("/v1/claims",):
        r = await http[A].get(path, params=params)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_the_read_routes_need_a_key(http: dict[str, httpx.AsyncClient]) -> None:
    for path in ("/v1/claims", "/v1/claims.csv", "/v1/claims/C001", "/v1/claims/C001/audit"):
        r = await http[A].get(path, headers={"Authorization": ""})
        assert r.status_code == 401, path


def test_the_routes_are_in_openapi() -> None:
    from services.dispute.app import create_app

    paths = create_app().openapi()["paths"]
    assert {"/v1/claims", "/v1/claims.csv", "/v1/claims/{claim_id}", "/v1/claims/{claim_id}/audit"} <= set(
        paths
    )
    assert "422" in paths["/v1/claims"]["get"]["responses"]
    assert "text/csv" in paths["/v1/claims.csv"]["get"]["responses"]["200"]["content"]
    assert "404" in paths["/v1/claims/{claim_id}/audit"]["get"]["responses"]


# -- the CLI, as a process ---------------------------------------------------------------------
def _idrflow(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "claims", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_cli_list_show_and_export(engine: AsyncEngine, database_url: str, tmp_path: Path) -> None:
    listed = _idrflow(
        database_url,
        "list",
        "--tenant",
        A,
        "--stage",
        "payment_due",
        "--due-before",
        "2026-12-31",
        "--limit",
        "1000",
        "--json",
    )
    assert listed.returncode == 0, listed.stderr
    keep = lambda r: r["stage"] == "payment_due" and r["next_deadline_on"] is not None  # noqa: E731
    want = in_urgency_order(open_a(), lambda r: keep(r) and r["next_deadline_on"] <= date(2026, 12, 31))
    assert [json.loads(line)["claim_id"] for line in listed.stdout.splitlines()] == want
    shown = _idrflow(database_url, "show", "C001", "--tenant", B)
    assert shown.returncode == 0 and json.loads(shown.stdout)["payer_name"] == "Bravo Only Plan"
    missing = _idrflow(database_url, "show", "P002", "--tenant", B)
    assert missing.returncode == 2 and "P002" in missing.stderr
    out = tmp_path / "b.csv"
    exported = _idrflow(database_url, "export", "--tenant", B, "--include-final", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    parsed = list(csv.reader(out.open(newline="")))
    assert tuple(parsed[0]) == EXPORT_COLUMNS and len(parsed) == 5
    bad = _idrflow(database_url, "list", "--tenant", A, "--due-before", "2026-13-01")
    assert bad.returncode == 2 and "due-before" in bad.stderr
