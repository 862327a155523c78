"""``idrflow claims``: the worklist, one claim's record, its audit timeline and the CSV export, read
from the claim record in PostgreSQL with the same functions as the dispute HTTP API."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dispute.filters import BadCursor, ClaimFilters, stages_of
from services.dispute.records import audit_timeline, claim_record, export_csv, worklist
from services.dispute.schemas import ClaimSummary
from shared.db import get_engine

claims_app = typer.Typer(help="Claims, read from the claim record (PostgreSQL).", no_args_is_help=True)

T = TypeVar("T")
PAGE = 500
COLUMNS = ("claim_id", "stage", "payer_name", "next_deadline_name", "next_deadline_on", "amount_at_stake")

Tenant = Annotated[str, typer.Option(help="the tenant whose claims to read")]
Stage = Annotated[list[str] | None, typer.Option(help="one or several stages (repeat or comma-separate)")]
Payer = Annotated[str | None, typer.Option(help="the payer's name, exactly")]
Npi = Annotated[str | None, typer.Option(help="the provider's NPI")]
Tin = Annotated[str | None, typer.Option(help="the provider's TIN")]
Code = Annotated[str | None, typer.Option(help="claims with a line of this service code")]
Day = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])]
Amount = Annotated[str | None, typer.Option(help="at least this much still recoverable, e.g. 500.00")]
Final = Annotated[bool, typer.Option(help="also claims whose lifecycle has ended")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"idrflow: {message}", err=True)
    raise typer.Exit(2)


def _run(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = get_engine()
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _filters(
    stage: list[str] | None,
    payer: str | None,
    provider_npi: str | None,
    provider_tin: str | None,
    service_code: str | None,
    due_before: datetime | None,
    due_after: datetime | None,
    min_amount_at_stake: str | None,
    include_final: bool,
) -> ClaimFilters:
    minimum: Decimal | None = None
    if min_amount_at_stake is not None:
        try:
            minimum = Decimal(min_amount_at_stake)
        except InvalidOperation:
            _fail(f"--min-amount-at-stake: {min_amount_at_stake!r} is not a decimal amount")
        if not minimum.is_finite() or minimum < 0:
            _fail(f"--min-amount-at-stake: {min_amount_at_stake!r} is not an amount of zero or more")

    def day(value: datetime | None) -> date | None:
        return value.date() if value else None

    return ClaimFilters(
        stages=stages_of(stage),
        payer=payer,
        provider_npi=provider_npi,
        provider_tin=provider_tin,
        service_code=service_code,
        due_before=day(due_before),
        due_after=day(due_after),
        min_amount_at_stake=minimum,
        include_final=include_final,
    )


@claims_app.command("list")
def claims_list(
    tenant: Tenant,
    stage: Stage = None,
    payer: Payer = None,
    provider_npi: Npi = None,
    provider_tin: Tin = None,
    service_code: Code = None,
    due_before: Day = None,
    due_after: Day = None,
    min_amount_at_stake: Amount = None,
    include_final: Final = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="at most this many claims")] = 100,
    cursor: Annotated[str | None, typer.Option(help="continue after this cursor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
) -> None:
    """The worklist: open claims by urgency (next deadline first, none last), filtered."""
    filters = _filters(
        stage,
        payer,
        provider_npi,
        provider_tin,
        service_code,
        due_before,
        due_after,
        min_amount_at_stake,
        include_final,
    )

    async def fetch(engine: AsyncEngine) -> tuple[list[ClaimSummary], str | None]:
        rows: list[ClaimSummary] = []
        after = cursor
        while len(rows) < limit:
            page = await worklist(engine, tenant, filters, min(PAGE, limit - len(rows)), after)
            rows += page.items
            after = page.next_cursor
            if after is None:
                break
        return rows, after

    try:
        rows, after = _run(fetch)
    except BadCursor as exc:
        _fail(f"--cursor: {exc}")
    if as_json:
        for row in rows:
            typer.echo(row.model_dump_json())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} claim(s) of {tenant}, most urgent first")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        values = row.model_dump(mode="json")
        table.add_row(*(str(values[c]) if values[c] is not None else "" for c in COLUMNS))
    Console().print(table)
    if after:
        typer.echo(f"more: --cursor {after}")


@claims_app.command("show")
def claims_show(
    claim_id: Annotated[str, typer.Argument(help="the claim id")],
    tenant: Tenant,
    audit: Annotated[bool, typer.Option(help="print the audit timeline instead")] = False,
) -> None:
    """A claim's record (stage, deadlines, actions, transitions, facts) as JSON; with --audit,
    everything that happened to it in time order."""
    if audit:
        timeline = _run(lambda engine: audit_timeline(engine, tenant, claim_id))
        entries = [e.model_dump(mode="json") for e in timeline] if timeline is not None else None
        found = json.dumps(entries, indent=2) if entries is not None else None
    else:
        status = _run(lambda engine: claim_record(engine, tenant, claim_id))
        found = status.model_dump_json(indent=2) if status else None
    if found is None:
        _fail(f"no claim {claim_id!r} for tenant {tenant!r}")
    typer.echo(found)


@claims_app.command("export")
def claims_export(
    tenant: Tenant,
    stage: Stage = None,
    payer: Payer = None,
    provider_npi: Npi = None,
    provider_tin: Tin = None,
    service_code: Code = None,
    due_before: Day = None,
    due_after: Day = None,
    min_amount_at_stake: Amount = None,
    include_final: Final = False,
    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """The claims as CSV, one row per claim and line (CMS-style dispute columns)."""
    filters = _filters(
        stage,
        payer,
        provider_npi,
        provider_tin,
        service_code,
        due_before,
        due_after,
        min_amount_at_stake,
        include_final,
    )

    with output.open("w", newline="", encoding="utf-8") if output else nullcontext(sys.stdout) as out:

        async def write(engine: AsyncEngine) -> None:
            async for chunk in export_csv(engine, tenant, filters):
                out.write(chunk)

        _run(write)
        out.flush()
