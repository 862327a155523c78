"""``idrflow ingest`` and ``idrflow remittances`` against the intake service running as its own process
on the test stack: a folder of an 837, the 835 that pays it, a canonical JSON list and a broken file;
the ledger skips what was posted; without it the server answers duplicates; --watch picks up a drop."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from deploy.devstack import Stack
from deploy.servers import free_port
from services.cli import app
from services.ingest_cli import CLAIM_KEYS, FILE_KEYS
from services.intake.models import claims
from shared.db import get_engine
from tests.integration.conftest import claim
from tests.integration.x12_kit import x835, x837

PROFILE = ["--plan-type", "self_insured_erisa", "--state", "TX"]
BROKEN = (
    "ISA*00*          *00*          *ZZ*X              *ZZ*Y              *261105*1200*^*00501*"
    "000000101*0*P*:~ST*999*0001~SE*1*0001~"
)


@pytest.fixture(scope="module")
def intake_url(stack: Stack) -> Iterator[str]:
    stack.start_service("intake")
    stack.wait_healthy(("intake",))
    yield f"http://127.0.0.1:{stack.ports.intake}"
    stack.stop_service("intake")


@pytest.fixture
def key(stack: Stack) -> str:
    return str(stack.api_key)  # type: ignore[attr-defined]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def idrflow(*args: str, key: str) -> Result:
    env = {"IDRFLOW_API_KEY": key, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def summary(result: Result) -> dict[str, dict[str, int]]:
    assert result.stdout.strip(), result.output
    report: dict[str, dict[str, int]] = json.loads(result.stdout)
    return report


def expect(files: dict[str, int], claims: dict[str, int]) -> dict[str, dict[str, int]]:
    """The summary's counts: the ones given, every other one zero."""
    return {
        "files": {k: files.get(k, 0) for k in FILE_KEYS},
        "claims": {k: claims.get(k, 0) for k in CLAIM_KEYS},
    }


async def stored(claim_id: str) -> Any:
    async with get_engine().connect() as conn:
        return (await conn.execute(select(claims).where(claims.c.claim_id == claim_id))).first()


def today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date().isoformat()


def drop(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def test_a_folder_posts_once_then_the_ledger_skips_it_and_the_server_knows_duplicates(
    intake_url: str, key: str, tmp_path: Path
) -> None:
    cid, a, b = uid("CLI837"), uid("CLIJ"), uid("CLIJ")
    folder = tmp_path / "drop"
    drop(folder, "1-claims/claims.837", x837(cid))
    drop(folder, "2-remits/remit.835", x835([{"claim_id": cid, "billed": "2400", "paid": "350"}]))
    drop(folder, "3-batch.json", json.dumps([claim(claim_id=a), claim(claim_id=b)]))
    drop(folder, "4-broken.835", BROKEN)
    drop(folder, ".hidden.835", BROKEN)  # hidden: never read
    drop(folder, "5-upload.835.part", BROKEN)  # an upload in progress: never read
    ledger = tmp_path / "ledger.json"
    args = ("ingest", str(folder), "--url", intake_url, "--ledger", str(ledger), *PROFILE)

    first = idrflow(*args, "--json", key=key)
    assert first.exit_code == 1, first.output  # the broken file got no 2xx
    assert summary(first) == expect(
        files={"posted": 3, "unreadable": 1}, claims={"accepted": 3, "matched": 1}
    )
    assert "4-broken.835: unreadable: ST01: X12 transaction set '999'" in first.stderr
    assert ".hidden" not in first.stderr and "upload" not in first.stderr
    row = await stored(cid)
    assert row.initial_payment_received_on.isoformat() == today()  # the 835 started the clock
    assert await stored(a) is not None and await stored(b) is not None
    recorded = json.loads(ledger.read_text())["files"]
    assert len(recorded) == 3 and {e["format"] for e in recorded.values()} == {"x12-837", "x12-835", "json"}
    assert hashlib.sha256(BROKEN.encode()).hexdigest() not in recorded

    again = idrflow(*args, key=key)  # the table this time
    assert again.exit_code == 1, again.output
    rows = {" ".join(x.replace("│", " ").split()) for x in again.stdout.splitlines()}
    assert {"files skipped (ledger) 3", "files posted 0", "files unreadable 1"} <= rows, again.stdout
    assert "claims unmatched (incl. ambiguous/review)" in again.stdout

    ledger.unlink()
    third = idrflow(*args, "--json", key=key)
    assert third.exit_code == 1, third.output
    assert summary(third) == expect(
        files={"posted": 1, "duplicate": 2, "unreadable": 1}, claims={"duplicate": 4}
    )
    assert "x12-835 duplicate: duplicate=1" in third.stderr
    assert len(json.loads(ledger.read_text())["files"]) == 3


async def test_the_review_list_shows_an_unmatched_remittance_and_apply_pays_the_claim(
    intake_url: str, key: str, tmp_path: Path
) -> None:
    cid, stranger = uid("CLIREV"), uid("ZZ")
    drop(tmp_path, "a.837", x837(cid, billed="1800"))
    drop(tmp_path, "b.835", x835([{"claim_id": stranger, "billed": "1799", "paid": "200"}]))
    ledger = str(tmp_path / ".ledger.json")
    posted = idrflow(
        "ingest", str(tmp_path), "--url", intake_url, "--ledger", ledger, *PROFILE, "--json", key=key
    )
    assert posted.exit_code == 0, posted.output
    assert summary(posted)["claims"]["unmatched"] == 1

    listed = idrflow("remittances", "unmatched", "--url", intake_url, "--json", key=key)
    assert listed.exit_code == 0, listed.output
    [mine] = [x for x in json.loads(listed.stdout) if x["claim_ref"] == stranger]
    assert mine["state"] == "unmatched" and mine["paid_amount"] == "200.00"
    assert cid in {c["claim_id"] for c in mine["candidates"]}
    table = idrflow("remittances", "unmatched", "--url", intake_url, key=key)
    assert table.exit_code == 0 and stranger in table.stdout and cid in table.stdout, table.stdout
    assert "Remittance claims to review" in table.stdout

    applied = idrflow("remittances", "apply", str(mine["id"]), cid, "--url", intake_url, key=key)
    assert applied.exit_code == 0, applied.output
    assert f"applied to claim {cid} as initial_payment" in applied.stdout
    assert (await stored(cid)).initial_payment_received_on is not None
    elsewhere = idrflow("remittances", "apply", str(mine["id"]), "OTHER-1", "--url", intake_url, key=key)
    assert elsewhere.exit_code == 1 and "HTTP 409" in elsewhere.stderr, elsewhere.output
    # an applied one cannot be dismissed; another unmatched one leaves the list with its reason
    refused = idrflow(
        "remittances", "dismiss", str(mine["id"]), "--reason", "dup", "--url", intake_url, key=key
    )
    assert refused.exit_code == 1 and "HTTP 409" in refused.stderr, refused.output
    other = uid("ZY")
    drop(tmp_path, "c.835", x835([{"claim_id": other, "billed": "999", "paid": "10"}]))
    assert (
        idrflow("ingest", str(tmp_path), "--url", intake_url, "--ledger", ledger, *PROFILE, key=key).exit_code
        == 0
    )
    review = json.loads(idrflow("remittances", "unmatched", "--url", intake_url, "--json", key=key).stdout)
    [theirs] = [x for x in review if x["claim_ref"] == other]
    why = "take-back recorded by hand"
    dismissed = idrflow(
        "remittances", "dismiss", str(theirs["id"]), "--reason", why, "--url", intake_url, key=key
    )
    assert dismissed.exit_code == 0 and f"dismissed: {why}" in dismissed.stdout, dismissed.output
    left = json.loads(idrflow("remittances", "unmatched", "--url", intake_url, "--json", key=key).stdout)
    assert other not in {x["claim_ref"] for x in left}


def test_watch_posts_a_dropped_file_once_it_is_complete_until_ctrl_c(
    intake_url: str, key: str, tmp_path: Path
) -> None:
    inbox, cid = tmp_path / "inbox", uid("CLIW")
    inbox.mkdir()
    ledger = tmp_path / "watch-ledger.json"
    argv = [sys.executable, "-m", "services.cli", "ingest", "--watch", str(inbox), "--interval", "0.2",
            "--url", intake_url, "--ledger", str(ledger), "--json", *PROFILE]  # fmt: skip
    env = {**os.environ, "IDRFLOW_API_KEY": key}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = x837(cid)
        drop(inbox, "late.837.part", body)  # the upload is still going: not posted under this name
        time.sleep(2)
        assert not ledger.exists()
        (inbox / "late.837.part").rename(inbox / "late.837")
        sha = hashlib.sha256(body.encode()).hexdigest()
        deadline = time.monotonic() + 60
        while not (ledger.exists() and sha in json.loads(ledger.read_text())["files"]):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the dropped file was not posted"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["files"]["posted"] == 1 and report["files"]["skipped"] == 0, report
    assert report["claims"]["accepted"] == 1
    assert "watching" in err and "late.837: x12-837 posted: accepted=1" in err


def test_an_unreachable_server_stops_the_run_without_marking_files_done(key: str, tmp_path: Path) -> None:
    drop(tmp_path, "a.837", x837(uid("CLIDOWN")))
    ledger = tmp_path / "l.json"
    url = f"http://127.0.0.1:{free_port()}"
    down = idrflow("ingest", str(tmp_path / "a.837"), "--url", url, "--ledger", str(ledger), "--retries", "1",
                   "--json", *PROFILE, key=key)  # fmt: skip
    assert down.exit_code == 1, down.output
    assert summary(down)["files"]["not_attempted"] == 1
    assert "server unavailable" in down.stderr and not ledger.exists()

    assert idrflow("ingest", key=key).exit_code == 2  # nothing to post
    assert idrflow("ingest", str(tmp_path), "--plan-type", "cash", key=key).exit_code == 2
    assert idrflow("ingest", str(tmp_path), "--url", url, key="").exit_code == 2  # no API key
    assert idrflow("ingest", str(tmp_path / "missing"), key=key).exit_code == 2
