"""``make fuzz``: Schemathesis with every check against the four services' OpenAPI documents.

Starts its own stack (PostgreSQL, Temporal, the broker, the four services on free ports, as the
test suite's ``stack`` fixture does), takes the demo tenant's API key, runs ``schemathesis run`` on
each service's ``/openapi.json`` with ``Authorization: Bearer <key>``, prints a summary, stops
everything and exits non-zero when any service had a failure or an error.

Every check runs (Schemathesis' default is all of them); ``tests/fuzz/schemathesis.toml`` lists the
few operations where ``positive_data_acceptance`` is off because JSON Schema cannot state the rule
(and says why). ``--checks all`` is not passed on purpose: on the command line it would override
those per-operation exceptions.

    make fuzz                                   # 25 examples per operation and phase, a few minutes
    FUZZ_ARGS="--max-examples 1000" make fuzz   # a long run (hours; --seed N to repeat one)
    .venv/bin/python -m tests.fuzz.run --service intake --seed 1 --max-examples 200
    .venv/bin/python -m tests.fuzz.run --running  # against `make run` (ports 8001-8004, .devstack)

Each service's full report is written to ``<report-dir>/<service>.txt`` (``st replay`` works
from the ``.schemathesis`` cache as usual).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
SERVICES = ("intake", "negotiation", "dispute", "notifier")
_FAILURE = re.compile(r"^\s+❌ (?P<code>ST\d+) (?P<what>.+): (?P<n>\d+)$")
_ERROR = re.compile(r"^\s+🚫 (?P<what>.+): (?P<n>\d+)$")
_CASES = re.compile(r"^\s+(?P<generated>\d+) generated")
_OPERATION = re.compile(r"^_{3,} (?P<op>[A-Z]+ \S+) _{3,}$")


@dataclass
class Outcome:
    service: str
    returncode: int
    generated: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def parse(service: str, returncode: int, output: str, seconds: float) -> Outcome:
    outcome = Outcome(service, returncode, seconds=seconds)
    in_summary = False
    for line in output.splitlines():
        if "SUMMARY" in line:
            in_summary = True
        if (m := _OPERATION.match(line)) and not in_summary and m["op"] not in outcome.operations:
            outcome.operations.append(m["op"])
        if not in_summary:
            continue
        if m := _FAILURE.match(line):
            outcome.failures[f"{m['code']} {m['what']}"] = int(m["n"])
        elif m := _ERROR.match(line):
            outcome.errors[m["what"]] = int(m["n"])
        elif m := _CASES.match(line):
            outcome.generated = int(m["generated"])
    return outcome


def run_schemathesis(
    service: str, base_url: str, api_key: str, args: argparse.Namespace, report_dir: Path
) -> Outcome:
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(args.max_examples),
        "--workers",
        str(args.workers),
        "--continue-on-failure",
        "--header",
        f"Authorization: Bearer {api_key}",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--request-timeout",
        "30",
    ]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    if args.max_time:
        argv += ["--max-time", str(args.max_time)]
    began = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    output = done.stdout + done.stderr
    (report_dir / f"{service}.txt").write_text(output)
    return parse(service, done.returncode, output, time.monotonic() - began)


def summary(outcomes: list[Outcome], report_dir: Path) -> str:
    lines = ["", "schemathesis (all checks) per service:"]
    for o in outcomes:
        verdict = "ok" if o.ok else f"FAILED (exit {o.returncode})"
        lines.append(f"  {o.service:<12} {o.generated:>6} cases  {o.seconds:6.0f}s  {verdict}")
        for what, n in sorted(o.failures.items()):
            lines.append(f"      {n:>4}  {what}")
        for what, n in sorted(o.errors.items()):
            lines.append(f"      {n:>4}  error: {what}")
        if not o.ok and o.operations:
            lines.append("      in: " + ", ".join(o.operations))
    total = sum(o.generated for o in outcomes)
    failed = sum(sum(o.failures.values()) + sum(o.errors.values()) for o in outcomes)
    lines.append(f"total: {total} cases, {failed} failures and errors; reports in {report_dir}")
    return "\n".join(lines)


def _running_stack() -> tuple[dict[str, str], str]:
    from shared.settings import get_settings

    settings = get_settings()
    key = (ROOT / ".devstack" / "demo-api-key").read_text().strip()
    urls = {s: f"http://127.0.0.1:{getattr(settings, f'{s}_port')}" for s in SERVICES}
    return urls, key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=25, help="per operation and phase (default 25)")
    # one worker: with several threads Hypothesis sometimes fails describing a lambda ("AST
    # constructor recursion depth mismatch"), an error of the tool, not of the API
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-time", type=int, default=0, help="seconds per service (0: no limit)")
    parser.add_argument("--service", action="append", choices=SERVICES, help="repeat; default all four")
    parser.add_argument("--running", action="store_true", help="use the stack of `make run` instead")
    parser.add_argument("--report-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    services = tuple(args.service or SERVICES)
    report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="idrflow-fuzz-"))
    report_dir.mkdir(parents=True, exist_ok=True)

    if args.running:
        urls, key = _running_stack()
        outcomes = [run_schemathesis(s, urls[s], key, args, report_dir) for s in services]
        print(summary(outcomes, report_dir))
        return 0 if all(o.ok for o in outcomes) else 1

    from deploy.devstack import Ports, Stack

    ports = Ports.free()
    stack = Stack(report_dir / "stack", ports=ports, quiet=True)
    print(f"starting a stack under {stack.root} ...", flush=True)
    try:
        stack.start_servers()
        key = stack.prepare()
        # the services read their servers from the environment the stack hands them
        for name in (*services, "relay"):
            stack.start_service(name)
        stack.wait_healthy(services)
        outcomes = []
        for name in services:
            print(f"fuzzing {name} ...", flush=True)
            url = f"http://127.0.0.1:{ports.of(name)}"
            outcomes.append(run_schemathesis(name, url, key, args, report_dir))
    finally:
        stack.stop()
    print(summary(outcomes, report_dir))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
