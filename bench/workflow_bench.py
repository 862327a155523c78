"""``python -m bench.workflow_bench [--claims 1000] [--plan-claims 10000] [--reps 3] [--no-alerts]``

The claim workflow on a local Temporal dev server (``deploy.servers.temporal_argv``, SQLite), with the
real dispute activities against embedded PostgreSQL (migrated): the plan reads the tenant's overrides,
the record is written with its outbox rows. Each figure is printed next to its baseline, in the same run:

- **claim -> planned**: a burst of N claims started as the dispute consumer starts them
  (signal-with-start), until every one is visible in its planned stage (``IdrStage``, upserted with the
  record in the same workflow task as its first timer). Three subjects, interleaved, median of
  ``--reps``: a trivial workflow (one activity, one timer, the same search attribute upsert), the claim
  workflow on the previous release's path (the worker's patch switch off: planning and the record as
  activities) and on the current one (patched: local activities, planned once).
- **first pass**: history events, workflow tasks and activities of one claim up to its first timer,
  on both paths (read from the server).
- **plan M claims** (``--plan-claims``, default 1000): the same burst of M, current path vs trivial.
- **RSS** of this process (worker, client) and of the Temporal server with N claims open, vs idle.
- **alert latency** (workflow half): 300 claims whose on-the-day reminder is due at the same second
  (reminder spread 0: the worst case), from the due time to the alert staged in the outbox by
  ``emit_alert``; baseline: 300 trivial workflows whose timer ends at the same second, to their
  activity. The notifier and channels (email, Slack) are not included: ``make chaos``/the e2e tests
  run them; this bench stays on one Temporal server and one PostgreSQL.

Benchmarks on a shared machine are noisy: the subjects are interleaved and the median is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time as clock
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.worker import PatchActivationInput, Worker

from bench.trivial_workflow import TrivialWorkflow
from deploy.migrate import upgrade
from deploy.servers import EmbeddedPostgres, free_port, spawn, stop_process, temporal_argv, wait_for_port
from services.dispute.activities import DisputeActivities
from services.dispute.consumer import ClaimEventHandler
from services.dispute.schemas import AlertRequest, ClaimEventSignal, ClaimLifecycleInput
from services.dispute.worker import WORKFLOWS
from shared.events import ClaimAdjudicated, ClaimLine
from shared.rules.calendar import federal_calendar
from shared.settings import Settings
from shared.temporal import IDR_CLAIM_ID, IDR_PAYER, IDR_STAGE, IDR_TENANT, converter_for, workflow_runner

QUEUE = "dispute-bench"
NY = ZoneInfo("America/New_York")
CAL = federal_calendar()
PLANNED = "open_negotiation_window"


# -- helpers ------------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (the temporal CLI runs the server in-process; in case not)."""
    total = rss_mb(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            total += tree_rss_mb(int(c))
    return total


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user + system) of a process and, with ``children``, of its children: live ones
    (PostgreSQL's backends) and those it has reaped (a backend that closed)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / TICK
    if not children:
        return total
    total += (int(fields[13]) + int(fields[14])) / TICK
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            total += tree_cpu_s(int(c))
    return total


def claim_facts(claim_id: str, received: date) -> ClaimAdjudicated:
    return ClaimAdjudicated(
        claim_id=claim_id,
        event_sequence=1,
        source_system="bench",
        payer_name="Acme Health Plan",
        plan_type="self_insured_erisa",
        provider_npi="1234567893",
        provider_tin="123456789",
        provider_name="Metro Emergency Physicians",
        service_category="emergency",
        state="TX",
        initial_payment_received_on=received,
        lines=[
            ClaimLine(
                line_number=1,
                service_code="99285",
                code_system="CPT",
                service_date=received - timedelta(days=30),
                billed=Decimal("2400.00"),
                paid=Decimal("350.00"),
            )
        ],
    )


async def start_claim(
    client: Client,
    tenant: str,
    claim_id: str,
    received: date,
    consumer: ClaimEventHandler | None = None,
) -> None:
    """As the dispute ``consumer`` does (services/dispute/consumer.py): the first plan (when the
    consumer has a planner: it reads the tenant's overrides), then signal-with-start."""
    facts = claim_facts(claim_id, received)
    # the consumer reads the overrides in the transaction it holds for its inbox anyway: one SELECT
    # more; here, without that transaction, the read takes a pooled connection in autocommit
    first = await consumer.first_plan(None, tenant, claim_id, facts) if consumer else None
    await client.start_workflow(
        "ClaimLifecycleWorkflow",
        ClaimLifecycleInput(tenant_id=tenant, claim_id=claim_id, first_plan=first),
        id=f"claim:{tenant}:{claim_id}",
        task_queue=QUEUE,
        start_signal="claim_event",
        start_signal_args=[
            ClaimEventSignal(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), facts=facts)
        ],
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(IDR_TENANT, tenant),
                SearchAttributePair(IDR_CLAIM_ID, claim_id),
                SearchAttributePair(IDR_PAYER, facts.payer_name),
                SearchAttributePair(IDR_STAGE, "received"),
            ]
        ),
    )


async def start_trivial(client: Client, tenant: str, n: int, wake_at: str = "") -> None:
    await client.start_workflow(
        TrivialWorkflow.run,
        wake_at,
        id=f"trivial:{tenant}:{n}",
        task_queue=QUEUE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(IDR_TENANT, tenant)]),
    )


async def bounded(calls: Sequence[Callable[[], Awaitable[None]]], width: int = 64) -> None:
    gate = asyncio.Semaphore(width)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def until_count(client: Client, query: str, n: int, within: float) -> None:
    """Poll the server's visibility until ``query`` counts ``n`` workflows."""
    end = clock.perf_counter() + within
    while (await client.count_workflows(query)).count < n:
        if clock.perf_counter() > end:
            raise TimeoutError(f"{query}: fewer than {n} after {within:.0f}s")
        await asyncio.sleep(0.1)


class Bench:
    def __init__(
        self, client: Client, engine: AsyncEngine, settings: Settings, server_pid: int, pg_pid: int
    ) -> None:
        self.client, self.engine, self.settings, self.server_pid = client, engine, settings, server_pid
        # CPU seconds per claim of each burst, by kind: this process (worker, client), server, PostgreSQL
        self.pids = {"worker": os.getpid(), "Temporal": server_pid, "PostgreSQL": pg_pid}
        self.cpu: dict[str, list[dict[str, float]]] = {}
        self.runs = 0
        self.alerts: dict[str, float] = {}  # claim id -> when its on-the-day alert was staged
        self.woke: list[float] = []
        self.expect, self.complete = 0, asyncio.Event()  # set once both reach ``expect``

    def cpu_s(self, name: str) -> float:
        """CPU seconds of one of ``pids`` (this process without the servers it started)."""
        return tree_cpu_s(self.pids[name], children=name != "worker")

    def arrived(self) -> None:
        if len(self.alerts) >= self.expect and len(self.woke) >= self.expect:
            self.complete.set()

    def worker(self, *, patches: bool, settings: Settings | None = None) -> Worker:
        """The dispute worker (services/dispute/worker.py) on the bench queue, plus the baseline;
        ``patches=False``: new claims take the previous release's path (the patch switch)."""
        acts = DisputeActivities(self.engine, settings or self.settings, CAL, self.client)
        bench = self

        @activity.defn(name="emit_alert")
        async def emit_alert(req: AlertRequest) -> int:
            left = await acts.emit_alert(req)
            if req.kind == "reminder-0":
                bench.alerts[req.claim_id] = clock.time()
                bench.arrived()
            return left

        @activity.defn(name="bench_noop")
        async def noop(arg: str) -> str:
            if arg == "alert":
                bench.woke.append(clock.time())
                bench.arrived()
            return arg

        def no_new_patches(_: PatchActivationInput) -> bool:
            return False

        return Worker(
            self.client,
            task_queue=QUEUE,
            workflows=[*WORKFLOWS, TrivialWorkflow],
            workflow_runner=workflow_runner(*WORKFLOWS, TrivialWorkflow),
            activities=[acts.plan_deadlines, acts.record_claim, emit_alert, acts.fan_out_update, noop],
            max_cached_workflows=self.settings.worker_max_cached_workflows,
            patch_activation_callback=None if patches else no_new_patches,
        )

    def consumer(self, *, patches: bool) -> ClaimEventHandler:
        """The dispute consumer; ``patches=False``: the previous release's, which did not plan."""
        planner = DisputeActivities(self.engine, self.settings, CAL).plan if patches else None
        return ClaimEventHandler(self.client, self.settings, planner)

    def tenant(self, kind: str) -> str:
        self.runs += 1
        return f"bench{self.runs}{kind}"

    async def burst(self, kind: str, n: int) -> float:
        """Seconds from the first start of a burst of ``n`` to all of them planned."""
        tenant = self.tenant(kind)
        received = CAL.business_day_beginning(datetime.now(NY).date(), 1)
        calls: list[Callable[[], Awaitable[None]]]
        if kind == "trivial":
            calls = [partial(start_trivial, self.client, tenant, i) for i in range(n)]
            stage = "planned"
        else:
            consumer = self.consumer(patches=kind != "claim-before")
            calls = [
                partial(start_claim, self.client, tenant, f"C{i:05d}", received, consumer) for i in range(n)
            ]
            stage = PLANNED
        patches = kind != "claim-before"
        async with self.worker(patches=patches):
            cpu = {name: self.cpu_s(name) for name in self.pids}
            began = clock.perf_counter()
            await bounded(calls)
            await until_count(self.client, f"IdrTenant = '{tenant}' AND IdrStage = '{stage}'", n, 60 + n)
            took = clock.perf_counter() - began
            used = {name: (self.cpu_s(name) - cpu[name]) / n for name in self.pids}
            self.cpu.setdefault(kind, []).append(used)
            return took

    async def first_pass(self, patches: bool) -> tuple[int, int, int, int]:
        """History events, workflow tasks, activities and local activities of one claim's first pass."""
        tenant = self.tenant("first" if patches else "first-before")
        async with self.worker(patches=patches):
            received = CAL.business_day_beginning(datetime.now(NY).date(), 1)
            await start_claim(self.client, tenant, "C1", received, self.consumer(patches=patches))
            await until_count(self.client, f"IdrTenant = '{tenant}' AND IdrStage = '{PLANNED}'", 1, 60)
            history = await self.client.get_workflow_handle(f"claim:{tenant}:C1").fetch_history()
        events = []
        for e in history.events:
            events.append(e)
            if e.HasField("timer_started_event_attributes"):
                break
        tasks = sum(1 for e in events if e.HasField("workflow_task_completed_event_attributes"))
        acts = sum(1 for e in events if e.HasField("activity_task_scheduled_event_attributes"))
        local = sum(
            1
            for e in events
            if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        )
        return len(events), tasks, acts, local

    async def alert_latency(self, n: int) -> tuple[list[float], list[float]] | str:
        """Latencies (s) of ``n`` on-the-day reminders due at the same second, and of ``n`` trivial
        timers ending at the same second to their activity."""
        now = datetime.now(NY)
        today = now.date()
        if not CAL.is_business_day(today) or now.hour >= 23:
            return f"skipped: {today} {now:%H:%M} in New York is not a business day before 23:00"
        received = today
        while CAL.business_day_beginning(received, 30) > today:
            received -= timedelta(days=1)
        if CAL.business_day_beginning(received, 30) != today:
            return "skipped: no receipt date puts the deadline on today"
        tenant = self.tenant("alerts")
        self.alerts.clear()
        self.woke.clear()
        self.expect, self.complete = n, asyncio.Event()
        # queued before the worker runs; due once the worker has had time to plan them all
        await bounded([partial(start_claim, self.client, tenant, f"A{i:05d}", received) for i in range(n)])
        lead = 20 + n / 10
        due = (datetime.now(NY) + timedelta(seconds=lead)).replace(microsecond=0)
        wake_at = due.astimezone(UTC).isoformat()
        await bounded([partial(start_trivial, self.client, tenant, i, wake_at) for i in range(n)])
        settings = self.settings.model_copy(
            update={"reminder_time": due.time(), "reminder_spread_minutes": 0}
        )
        async with self.worker(patches=True, settings=settings):
            planned = f"IdrTenant = '{tenant}' AND IdrStage = '{PLANNED}'"
            await until_count(self.client, planned, n, lead + 60)
            if datetime.now(NY) >= due:
                return f"skipped: planning {n} claims took longer than {lead:.0f}s"
            try:
                await asyncio.wait_for(self.complete.wait(), lead + 120)
            except TimeoutError:
                pass  # what arrived is reported, with its count
        at = due.timestamp()
        return [t - at for t in self.alerts.values()], [t - at for t in self.woke]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(bench: Bench, args: argparse.Namespace, console: Console) -> None:
    table = Table(title=f"claim workflow on a local Temporal dev server ({os.cpu_count()} cores, shared)")
    for col in ("figure", "subject", "baseline", "ratio"):
        table.add_column(col, justify="left" if col == "figure" else "right")

    old, new = await bench.first_pass(False), await bench.first_pass(True)
    label = "{} events, {} workflow tasks, {} activities, {} local"
    table.add_row("first pass (to the first timer)", label.format(*new), label.format(*old) + " (before)", "")

    idle_worker, idle_server = rss_mb(os.getpid()), tree_rss_mb(bench.server_pid)
    await bench.burst("claim", args.claims)
    table.add_row(
        f"worker process RSS, {args.claims} claims open (MB)",
        f"{rss_mb(os.getpid()):.0f}",
        f"{idle_worker:.0f} (idle)",
        f"{rss_mb(os.getpid()) / idle_worker:.2f}x",
    )
    table.add_row(
        f"Temporal server RSS, {args.claims} claims open (MB)",
        f"{tree_rss_mb(bench.server_pid):.0f}",
        f"{idle_server:.0f} (idle)",
        f"{tree_rss_mb(bench.server_pid) / idle_server:.2f}x",
    )

    bench.cpu.clear()  # the interleaved reps only
    times: dict[str, list[float]] = {"trivial": [], "claim-before": [], "claim": []}
    for rep in range(args.reps):
        for kind in times:  # interleaved: trivial, before, after, trivial, ...
            times[kind].append(await bench.burst(kind, args.claims))
            cpu = " ".join(f"{name} {ms * 1000:4.1f}" for name, ms in bench.cpu[kind][-1].items())
            console.print(f"  rep {rep + 1} {kind:<13} {args.claims / times[kind][-1]:7.1f} claims/s;"
                          f" CPU ms per claim: {cpu}")  # fmt: skip
    rate = {k: args.claims / statistics.median(v) for k, v in times.items()}
    n = args.claims
    table.add_row(
        f"claim -> planned, burst of {n} (claims/s)",
        f"{rate['claim']:.1f}",
        f"{rate['trivial']:.1f} (trivial)",
        f"{rate['claim'] / rate['trivial']:.2f}x",
    )
    table.add_row(
        f"  previous release's path, burst of {n}",
        f"{rate['claim-before']:.1f}",
        f"{rate['trivial']:.1f} (trivial)",
        f"{rate['claim-before'] / rate['trivial']:.2f}x",
    )
    table.add_row("  current vs previous path", f"{rate['claim']:.1f}", f"{rate['claim-before']:.1f}",
                  f"{rate['claim'] / rate['claim-before']:.2f}x")  # fmt: skip
    for name in bench.pids:  # where a claim's time goes: the machine's cores are shared by all three
        used = {k: statistics.median(run[name] for run in bench.cpu[k]) * 1000 for k in times}
        table.add_row(f"  CPU per claim, {name} (ms)", f"{used['claim']:.1f}",
                      f"{used['trivial']:.1f} (trivial)",
                      f"{used['claim'] / used['trivial']:.2f}x" if used["trivial"] else "")  # fmt: skip

    if args.plan_claims:
        m = args.plan_claims
        subject = await bench.burst("claim", m)
        worker_mb, server_mb = rss_mb(os.getpid()), tree_rss_mb(bench.server_pid)
        baseline = await bench.burst("trivial", m)
        table.add_row(f"plan {m:,} claims (s)", f"{subject:.1f}", f"{baseline:.1f} (trivial)",
                      f"{baseline / subject:.2f}x")  # fmt: skip
        cache = bench.settings.worker_max_cached_workflows
        table.add_row(
            f"worker process RSS, {m:,} more claims open (MB; cache {cache:,})",
            f"{worker_mb:.0f}",
            f"{idle_worker:.0f} (idle)",
            f"{worker_mb / idle_worker:.2f}x",
        )
        table.add_row(
            f"Temporal server RSS, {m:,} more claims open (MB)",
            f"{server_mb:.0f}",
            f"{idle_server:.0f} (idle)",
            f"{server_mb / idle_server:.2f}x",
        )

    if args.alerts:
        result = await bench.alert_latency(300)
        if isinstance(result, str):
            table.add_row("alert latency, 300 due at once", result, "", "")
        else:
            alerts, woke = result
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                a, w = pct(alerts, q), pct(woke, q)
                ratio = f"{a / w:.2f}x" if w > 0 else ""
                label = f"alert latency {name}, {len(alerts)} due at once (s)"
                table.add_row(label, f"{a:.2f}", f"{w:.2f} (trivial timer, {len(woke)})", ratio)
    console.print(table)
    console.print(
        "ratio: subject/baseline for rates and RSS, baseline/subject for times (higher is better for "
        "the claim workflow except RSS); RSS of this process includes the client and the bench"
    )


async def run(
    args: argparse.Namespace, temporal_port: int, server_pid: int, pg_pid: int, url: str, console: Console
) -> None:
    settings = Settings(
        database_url=url, temporal_address=f"127.0.0.1:{temporal_port}", payload_encryption="off"
    )
    client = await Client.connect(settings.temporal_address, data_converter=converter_for(settings))
    engine = create_async_engine(url, pool_size=10, max_overflow=10)
    try:
        await measure(Bench(client, engine, settings, server_pid, pg_pid), args, console)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    parser.add_argument("--claims", type=int, default=300, help="claims per burst (default 300)")
    parser.add_argument("--plan-claims", type=int, default=1000, help="the planning-time burst (0: skip)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-alerts", dest="alerts", action="store_false", help="skip the alert latency")
    args = parser.parse_args()
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="idrflow-workflow-bench-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    port = free_port()
    log = (root / "temporal.log").open("w")
    server = spawn("temporal", temporal_argv(root / "temporal.db", port, None, "default"), log=log)
    try:
        url = pg.start()
        upgrade(url)
        wait_for_port(port, 90, server, "Temporal")
        assert pg.proc is not None
        asyncio.run(run(args, port, server.pid, pg.proc.pid, url, console))
    finally:
        stop_process(server)
        pg.stop()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    os._exit(0)  # the Temporal client's threads can abort interpreter finalization (as in services/cli.py)


if __name__ == "__main__":
    main()
