"""``idrflow remittances``: the review list of remittance claims that matched no tracked claim, or
several, or need a person; apply one to a claim, or dismiss it with a reason."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.ingest_cli import DEFAULT_URL, ApiKey, AsJson, Unavailable, Url, intake_client, problem_of, send

PAGE = "/v1/remittances/unmatched?limit=500"

remittances_app = typer.Typer(help="Remittance claims that matched no tracked claim.", no_args_is_help=True)


@remittances_app.command("unmatched")
def remittances_unmatched(url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """The review list: remittance claims that matched no tracked claim, or several, or need a person."""
    rows: list[dict[str, Any]] = []
    with intake_client(url, api_key, timeout=30) as client:
        while page := _call(client, "GET", PAGE, params={"after": rows[-1]["id"] if rows else 0}).json():
            rows += page
            if len(page) < 500:
                break
    if as_json:
        return typer.echo(json.dumps(rows))
    table = Table(title=f"Remittance claims to review ({len(rows)})")
    for column in ("id", "claim_ref", "payer", "paid", "received_on", "state", "reason", "candidates"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("payer", "reason", "candidates"))
    for x in rows:
        top = ", ".join(str(c.get("claim_id")) for c in (x.get("candidates") or [])[:3])
        cells = (x["id"], x["claim_ref"], x.get("payer_name"), x.get("paid_amount"), x["received_on"],
                 x["state"], x.get("reason"), top)  # fmt: skip
        table.add_row(*("" if c is None else str(c) for c in cells))
    Console(highlight=False).print(table)


@remittances_app.command("apply")
def remittances_apply(
    remittance_id: Annotated[int, typer.Argument(min=1, help="the id in the review list")],
    claim_id: Annotated[str, typer.Argument(help="the tracked claim it pays")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Apply a remittance claim from the review list to a tracked claim (its initial payment or a
    payment). Refused (not found, applied elsewhere, cannot apply): the reason and exit code 1."""
    with intake_client(url, api_key, timeout=30) as client:
        x = _call(
            client, "POST", f"/v1/remittances/{remittance_id}/apply", json={"claim_id": claim_id}
        ).json()
    said = f"remittance {x['id']} applied to claim {x['claim_id']} as {x['applied_as']}: {x['reason']}"
    typer.echo(json.dumps(x) if as_json else said)


@remittances_app.command("dismiss")
def remittances_dismiss(
    remittance_id: Annotated[int, typer.Argument(min=1, help="the id in the review list")],
    reason: Annotated[str, typer.Option("--reason", help="why it leaves the list (kept with it)")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Take a remittance claim off the review list without applying it (dealt with another way), with
    the reason. Refused (not found, already applied): the reason and exit code 1."""
    with intake_client(url, api_key, timeout=30) as client:
        x = _call(client, "POST", f"/v1/remittances/{remittance_id}/dismiss", json={"reason": reason}).json()
    typer.echo(json.dumps(x) if as_json else f"remittance {x['id']}: {x['reason']}")


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    try:
        r = send(client, 2, method, path, **kw)
    except Unavailable as exc:
        typer.echo(f"idrflow: {client.base_url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if not r.is_success:
        typer.echo(f"idrflow: {problem_of(r)}", err=True)
        raise typer.Exit(2 if r.status_code == 422 else 1)
    return r
