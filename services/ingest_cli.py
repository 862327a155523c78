"""``idrflow ingest``: post 835/837/FHIR EOB/claim JSON files to intake, resumably (a ledger of the
hashes that got a 2xx), once or watching a drop folder (``idrflow remittances``, the review list, is
in ``remittances_cli.py``).

Formats are read here with intake's parser: an unreadable file is reported (segment or field named)
and not posted, as the server would refuse it the same way, and stays out of the ledger. Network
failures, 408/425/429 and 5xx are retried with backoff (the endpoints are idempotent); when retries
run out the run stops, that file and the rest left for the next run. Output: files, formats, counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from services.intake.formats import ParseError, parse
from services.intake.formats.canonical import looks_canonical
from shared.rules.eligibility import PlanType, ServiceCategory

BATCH = 1000
PARTIAL = (".part", ".partial", ".filepart", ".tmp", ".swp", ".crdownload")  # uploads in progress
RETRY = frozenset({408, 425, 429, 500, 502, 503, 504})
CLAIM_KEYS = ("accepted", "duplicate", "matched", "unmatched", "not_candidate", "rejected")
REVIEW = ("unmatched", "ambiguous", "review")
FILE_KEYS = ("posted", "duplicate", "skipped", "unreadable", "failed", "not_attempted")

Url = Annotated[str, typer.Option(envvar="IDRFLOW_INTAKE_URL", help="intake's base URL")]
ApiKey = Annotated[str | None, typer.Option(envvar="IDRFLOW_API_KEY", help="the tenant's API key")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
DEFAULT_URL = "http://127.0.0.1:8001"
LEDGER = Path(".idrflow-ingest.json")


def _fail(message: str) -> NoReturn:
    typer.echo(f"idrflow: {message}", err=True)
    raise typer.Exit(2)


class Unavailable(Exception):
    """No answer (or a 5xx) through every retry, or a refused key: stop, the file not marked done."""


@dataclass
class Upload:
    format: str
    endpoint: str
    content_type: str
    bodies: list[bytes]
    params: dict[str, str] = field(default_factory=dict)


def plan(data: bytes, name: str, profile: dict[str, str]) -> Upload:
    """Where a file goes, read here. Raises ``ParseError`` (naming the segment or field)."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None  # parse() below names the place
        if doc is not None and looks_canonical(doc):
            return _batches(doc if isinstance(doc, list) else [doc])
    result = parse(data, filename=name)
    if result.format == "x12-835":
        return Upload("x12-835", "/v1/remittances", "application/edi-x12", [data])
    if result.format == "x12-837":
        return Upload("x12-837", "/v1/claims/x12", "application/edi-x12", [data], profile)
    if result.format == "fhir-eob":
        return Upload("fhir-eob", "/v1/fhir/ExplanationOfBenefit", "application/fhir+json", [data])
    return _batches([c.model_dump(mode="json", exclude_none=True) for c in result.canonical])


def _batches(items: list[Any]) -> Upload:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError("not a claim object", f"$[{i}]")
    chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    bodies = [json.dumps({"claims": chunk}).encode() for chunk in chunks]
    return Upload("json", "/v1/claims:batch", "application/json", bodies)


def problem_of(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:  # not JSON: a proxy's page
        body = None
    said = (body.get("detail") or body.get("title")) if isinstance(body, dict) else r.reason_phrase
    return f"HTTP {r.status_code}: {said}"


def send(client: httpx.Client, retries: int, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request, retried with backoff (1, 2, 4 ... 30 s, or the server's Retry-After) on a network
    failure, 408/425/429 or 5xx; ``Unavailable`` when the retries run out."""
    for attempt in range(retries + 1):
        wait = min(30.0, 2.0**attempt)
        try:
            r = client.request(method, url, **kw)
        except httpx.TransportError as exc:
            why = f"server unavailable: {type(exc).__name__} {exc}".strip()
        else:
            if r.status_code not in RETRY:
                return r
            why = f"server unavailable: {problem_of(r)}"
            if (after := r.headers.get("retry-after", "")).isdigit():
                wait = min(30.0, float(after))
        if attempt < retries:
            time.sleep(wait)
    raise Unavailable(why)


class Ledger:
    """sha256 → the answer's summary, for each file that got a 2xx; written after each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_text())
                self.files = dict(doc["files"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _fail(f"--ledger {path}: not an ingest ledger ({type(exc).__name__}); move it away")

    def record(self, sha: str, entry: dict[str, Any]) -> None:
        self.files[sha] = entry
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"version": 1, "files": self.files}, indent=1))
        os.replace(tmp, self.path)


@dataclass
class Run:
    client: httpx.Client
    ledger: Ledger
    profile: dict[str, str]
    retries: int
    out: Console
    files: Counter[str] = field(default_factory=Counter)
    claims: Counter[str] = field(default_factory=Counter)

    def one(self, path: Path) -> str:
        """Post one file; its outcome (a key of FILE_KEYS). ``Unavailable`` passes through."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return self._count("failed", path, f"cannot read: {exc.strerror or exc}")
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.ledger.files:
            return self._count("skipped")
        try:
            upload = plan(data, path.name, self.profile)
        except ParseError as exc:
            return self._count("unreadable", path, f"unreadable: {exc}")
        summary: Counter[str] = Counter()
        duplicate, ids, rejected = False, [], []
        for body in upload.bodies:
            headers = {"content-type": upload.content_type, "x-filename": path.name}
            r = send(self.client, self.retries, "POST", upload.endpoint, content=body,
                     headers=headers, params=upload.params)  # fmt: skip
            if r.status_code == 401:
                raise Unavailable("the API key was refused (401)")
            if not r.is_success:  # 413, 415, 422: this file failed, the run goes on
                return self._count("failed", path, f"{upload.format} refused: {problem_of(r)}")
            answer = r.json()
            summary.update({k: v for k, v in answer["summary"].items() if k != "claims"})
            duplicate = bool(answer.get("duplicate_file"))
            ids.append(answer.get("file_id"))
            rejected += [x for x in answer["results"] if x["result"] == "rejected"]
        self.claims.update(summary)
        counts = " ".join(f"{k}={v}" for k, v in sorted(summary.items())) or "no claims"
        outcome = "duplicate" if duplicate else "posted"
        self._count(outcome, path, f"{upload.format} {outcome}: {counts}", good=True)
        for x in rejected[:3]:
            why = x.get("reason") or x.get("problem")
            self.out.print(escape(f"    claim {x['claim_id']} rejected: {why}"))
        at = datetime.now(UTC).isoformat(timespec="seconds")
        entry = {"path": str(path), "format": upload.format, "summary": dict(summary), "at": at}
        self.ledger.record(sha, {**entry, "file_ids": [i for i in ids if i is not None]})
        return outcome

    def _count(self, outcome: str, path: Path | None = None, line: str = "", good: bool = False) -> str:
        self.files[outcome] += 1
        if path is not None:
            mark = "[green]ok[/]" if good else "[red]!![/]"
            self.out.print(f"{mark} {escape(f'{path}: {line}')}", highlight=False, soft_wrap=True)
        return outcome

    def report(self) -> dict[str, dict[str, int]]:
        claims = {k: self.claims[k] for k in CLAIM_KEYS}
        claims["unmatched"] = sum(self.claims[k] for k in REVIEW)
        return {"files": {k: self.files[k] for k in FILE_KEYS}, "claims": claims}


def walk(path: Path) -> Iterator[Path]:
    """Files under a folder, recursively, in name order; hidden files and folders, uploads still in
    progress (``.part``, ``.tmp``, ...) and folder symlinks left out. A file named directly is kept."""
    if not path.is_dir():
        yield path
        return
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name.startswith(".") or e.name.endswith(PARTIAL):
            continue
        if e.is_dir(follow_symlinks=False):
            yield from walk(Path(e.path))
        elif e.is_file():
            yield Path(e.path)


def watch(run: Run, folder: Path, interval: float) -> None:
    """Poll ``folder``; post a file once its size and mtime are the same on two polls in a row (an
    SFTP drop is still being written until then). Until Ctrl-C."""
    last: dict[Path, tuple[int, int]] = {}
    handled: dict[Path, tuple[int, int]] = {}
    while True:
        now = {p: sig for p in walk(folder) if (sig := _signature(p))}
        for p, sig in now.items():
            if sig[0] == 0 or handled.get(p) == sig or last.get(p) != sig:  # empty, done or growing
                continue
            try:
                run.one(p)
                handled[p] = sig
            except Unavailable as exc:
                run.out.print(f"[red]!![/] {escape(f'{p}: {exc}')}; trying again next poll")
                break
        last = now
        time.sleep(interval)


def _signature(p: Path) -> tuple[int, int] | None:
    with suppress(OSError):  # gone between the listing and now
        st = p.stat()
        return st.st_size, st.st_mtime_ns
    return None


LABELS = {"files duplicate": "files duplicate (posted before)", "files skipped": "files skipped (ledger)",
          "files not_attempted": "files not attempted (stopped)",
          "claims unmatched": "claims unmatched (incl. ambiguous/review)"}  # fmt: skip


def print_report(report: dict[str, dict[str, int]], console: Console) -> None:
    table = Table("", Column("count", justify="right"), title="idrflow ingest")
    for kind in ("files", "claims"):
        for k, v in report[kind].items():
            table.add_row(LABELS.get(f"{kind} {k}", f"{kind} {k}"), str(v))
        table.add_section()
    console.print(table)


def intake_client(url: str, api_key: str | None, timeout: float = 120) -> httpx.Client:
    if not api_key:
        _fail("no API key: pass --api-key or set IDRFLOW_API_KEY")
    if not url.startswith(("http://", "https://")):
        _fail(f"--url {url!r}: expected http://host:port or https://...")
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "idrflow-ingest"}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)


def ingest_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders", exists=True)] = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    plan_type: Annotated[str | None, typer.Option(help="837: the plan type the file does not say")] = None,
    service_category: Annotated[str | None, typer.Option(help="837: e.g. emergency")] = None,
    state: Annotated[str | None, typer.Option(help="837: USPS state code, e.g. TX")] = None,
    source_system: Annotated[str | None, typer.Option(help="837: the sending system's id")] = None,
    watch_dir: Annotated[
        Path | None, typer.Option("--watch", help="then poll this folder for new files until Ctrl-C")
    ] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="--watch: seconds between polls")] = 2.0,
    ledger: Annotated[Path, typer.Option(help="hashes of files already posted")] = LEDGER,
    retries: Annotated[int, typer.Option(min=0, max=20, help="retries of a failed request")] = 4,
    as_json: AsJson = False,
) -> None:
    """Post files (X12 835/837, FHIR EOB, claim JSON) to intake; skip those the ledger has. Exit code
    0 when every file got a 2xx, 1 when some did not, 2 for usage errors."""
    paths = paths or []
    if not paths and watch_dir is None:
        _fail("give files or folders to post, or --watch DIR")
    if watch_dir is not None and not watch_dir.is_dir():
        _fail(f"--watch {watch_dir}: not a folder")
    profile = _profile(plan_type=plan_type, service_category=service_category, state=state,
                       source_system=source_system)  # fmt: skip
    out = Console(stderr=True, highlight=False)
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop: the summary, like Ctrl-C
    with intake_client(url, api_key) as client:
        run = Run(client, Ledger(ledger), profile, retries, out)
        todo = [p for root in paths for p in walk(root)]
        try:
            _post_all(run, todo, show_bar=not as_json and watch_dir is None)
            if watch_dir is not None:
                out.print(f"watching {watch_dir} every {interval:g}s; Ctrl-C to stop")
                watch(run, watch_dir, interval)
        except KeyboardInterrupt:
            out.print("stopped")
    report = run.report()
    if as_json:
        typer.echo(json.dumps(report))
    else:
        print_report(report, Console(highlight=False))
    bad = sum(report["files"][k] for k in ("unreadable", "failed", "not_attempted"))
    raise typer.Exit(1 if bad else 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _profile(**given: str | None) -> dict[str, str]:
    """The 837 query parameters, checked here: a typo is a usage error, not a 422 for every file."""
    allowed = {"plan_type": get_args(PlanType), "service_category": get_args(ServiceCategory)}
    for name, value in given.items():
        if value and name in allowed and value not in allowed[name]:
            _fail(f"--{name.replace('_', '-')} {value!r}: one of {', '.join(allowed[name])}")
    if given["state"] and not re.fullmatch(r"[A-Z]{2}", given["state"]):
        _fail(f"--state {given['state']!r}: a USPS code such as TX")
    return {k: v for k, v in given.items() if v}


def _post_all(run: Run, todo: list[Path], show_bar: bool) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=run.out, disable=not show_bar or not run.out.is_terminal) as bar:
        task = bar.add_task("posting", total=len(todo))
        for n, p in enumerate(todo):
            bar.update(task, description=p.name[:40])
            try:
                run.one(p)
            except (Unavailable, KeyboardInterrupt) as exc:
                run.files["not_attempted"] += len(todo) - n
                if isinstance(exc, KeyboardInterrupt):
                    raise
                run.out.print(f"[red]!![/] {escape(f'{p}: {exc}')}; stopped, the rest not posted")
                return
            bar.advance(task)
