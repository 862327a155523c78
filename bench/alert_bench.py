"""``python -m bench.alert_bench [--claims 300] [--spread-minutes 0]``: deadline alerts end to end.

The whole local stack of its own (``deploy.devstack.Stack`` on free ports: PostgreSQL, Kafka-protocol
broker, Temporal, the four services and the relay, the SMTP and Slack stand-ins). ``--claims`` claims
are posted through intake whose open negotiation deadline is 5 business days away, so each has its
first reminder due today at the reminder time, which the bench sets (``IDRFLOW_REMINDER_TIME``) far
enough ahead for the stack to plan them all first. With ``--spread-minutes 0`` (the default, the
worst case) every reminder is due at the same second; with a spread each claim's reminder is due at
its own instant (``services.dispute.clock.reminder_offset``), the wave the spread makes of a burst.

Figures, each next to its baseline from the same run:

- **catch-up**: from the first post to every claim planned (its record in ``dispute.claims`` at the
  planned stage), against the time intake took to accept them;
- **alert latency** p50/p99/max: from each claim's due instant to its Slack post arriving at the
  stand-in and its email at the SMTP stand-in; baseline: the same number of posts of the same size
  sent straight to the Slack stand-in at one instant (the channel's own latency on this machine).

Target (issue 12): p99 under 2 s once planning has caught up. Tests never assert timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.workflow_bench import pct
from deploy.devstack import SERVICES, Ports, Stack
from services.dispute.clock import reminder_offset
from shared.rules.calendar import federal_calendar

NY = ZoneInfo("America/New_York")
CAL = federal_calendar()
TENANT = "demo"  # the stack's seeded tenant: alerts by email and Slack


def received_for_first_reminder_today(today: date) -> date | None:
    """A payment date whose 30-business-day open negotiation window ends 5 business days after
    today: its first reminder (5 business days before) is due today, and no earlier one was, so a
    new claim sends no catch-up alert on arrival. None if today is not a business day."""
    if not CAL.is_business_day(today):
        return None
    # day 1 of the 30 business days that end on the deadline
    return CAL.business_days_after(CAL.business_days_after(today, 5), -29)


def claim_body(claim_id: str, received: date) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "source_system": "alert-bench",
        "payer": {"name": "Acme Health Plan", "plan_type": "self_insured_erisa"},
        "provider": {"npi": "1234567893", "tin": "123456789", "name": "Metro Emergency Physicians"},
        "service_category": "emergency",
        "state": "TX",
        "initial_payment_received_on": received.isoformat(),
        "lines": [
            {
                "service_code": "99285",
                "code_system": "CPT",
                "service_date": received.isoformat(),
                "billed": "2400.00",
                "paid": "350.00",
                "qpa": "700.00",
            }
        ],
    }


class Arrivals:
    """When each claim's alert reached each stand-in (claim id -> seconds since the epoch)."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        self.slack: dict[str, float] = {}
        self.mail: dict[str, float] = {}
        self.prefix = prefix
        assert stack.slack is not None and stack.mail is not None
        slack_add, mail_add = stack.slack.add, stack.mail.add

        def on_slack(post: dict[str, Any]) -> None:
            slack_add(post)
            claim = self._claim_in(post.get("text", ""))
            if claim:
                self.slack.setdefault(claim, time.time())

        def on_mail(message: Any, raw: bytes) -> None:
            mail_add(message, raw)
            claim = self._claim_in(str(message["Subject"]))
            if claim:
                self.mail.setdefault(claim, time.time())

        stack.slack.add = on_slack  # type: ignore[method-assign]
        stack.mail.add = on_mail  # type: ignore[method-assign]

    def _claim_in(self, s: str) -> str | None:
        at = s.find(self.prefix)
        if at < 0:
            return None
        end = at
        while end < len(s) and (s[end].isalnum() or s[end] == "-"):
            end += 1
        return s[at:end]


async def post_claims(port: int, api_key: str, bodies: list[dict[str, Any]]) -> float:
    """Post every claim (16 at a time); the seconds it took."""
    todo = iter(bodies)
    headers = {"Authorization": f"Bearer {api_key}", "content-type": "application/json"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as client:

        async def worker() -> None:
            for body in todo:
                async with client.post("/v1/claims", data=json.dumps(body)) as r:
                    if r.status not in (200, 202):
                        raise RuntimeError(f"intake answered {r.status}: {(await r.text())[:300]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        return time.perf_counter() - began


async def until_planned(url: str, prefix: str, n: int, within: float) -> None:
    engine = create_async_engine(url)
    end = time.monotonic() + within
    try:
        while True:
            async with engine.connect() as conn:
                planned = (
                    await conn.execute(
                        text(
                            "select count(*) from dispute.claims where tenant_id = :t "
                            "and claim_id like :p and stage = 'open_negotiation_window'"
                        ),
                        {"t": TENANT, "p": f"{prefix}%"},
                    )
                ).scalar_one()
            if planned >= n:
                return
            if time.monotonic() > end:
                raise TimeoutError(f"{planned} of {n} claims planned after {within:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def direct_posts(url: str, n: int, at: float) -> list[float]:
    """``n`` Slack-sized posts straight to the stand-in, all sent at ``at`` over 8 connections (the
    stand-in, like a webhook endpoint, refuses a flood of new connections): each one's latency."""
    body = json.dumps({"text": "x" * 600})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as client:

        async def one() -> float:
            async with client.post(url, data=body, headers={"content-type": "application/json"}) as r:
                await r.read()
            return time.time() - at

        await asyncio.sleep(max(0.0, at - time.time()))
        return list(await asyncio.gather(*(one() for _ in range(n))))


async def measure(stack: Stack, args: argparse.Namespace, due: datetime, console: Console) -> Table:
    received = received_for_first_reminder_today(due.date())
    assert received is not None
    prefix = f"AB{int(time.time()) % 100000:05d}-"
    ids = [f"{prefix}{i:05d}" for i in range(args.claims)]
    arrivals = Arrivals(stack, prefix)
    assert stack.slack is not None
    api_key: str = stack.api_key  # type: ignore[attr-defined]

    began = time.perf_counter()
    posted = await post_claims(stack.ports.intake, api_key, [claim_body(c, received) for c in ids])
    window = timedelta(minutes=args.spread_minutes)
    first_due = due - window  # the earliest a spread reminder can be due
    lead = (first_due - datetime.now(NY)).total_seconds()
    await until_planned(stack.database_url, prefix, len(ids), max(lead, 1.0))
    caught_up = time.perf_counter() - began
    console.print(f"posted {len(ids)} in {posted:.1f} s; all planned after {caught_up:.1f} s")
    if datetime.now(NY) >= first_due:
        raise SystemExit(f"planning took past {first_due:%H:%M:%S}; run with a longer --lead")

    end = due.timestamp() + 120
    # the stand-ins call back on their own threads: polled
    while time.time() < end and (len(arrivals.slack) < len(ids) or len(arrivals.mail) < len(ids)):  # noqa: ASYNC110
        await asyncio.sleep(0.25)
    # the channel's own latency: as many posts of a Slack alert's size, all sent at one instant
    baseline = await direct_posts(stack.slack.url, len(ids), time.time() + 1)

    # each claim's due instant: the reminder time less its spread (by the deadline the alert names)
    rows, at = await alert_steps(stack.database_url, prefix), due.time()
    fire = {
        r.claim_id: (due - reminder_offset(TENANT, r.claim_id, r.deadline_name, window, at)).timestamp()
        for r in rows
    }
    stages = stage_latencies(rows, fire)
    slack = [arrivals.slack[c] - fire[c] for c in fire if c in arrivals.slack]
    mail = [arrivals.mail[c] - fire[c] for c in fire if c in arrivals.mail]
    table = Table(
        title=f"deadline alerts end to end: {len(ids)} reminders due "
        + ("at the same second" if not args.spread_minutes else f"within {args.spread_minutes:g} minutes")
    )
    for col in ("figure", "idrflow", "baseline", "target"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    table.add_row(
        "catch-up: posted -> all planned (s)", f"{caught_up:.1f}", f"{posted:.1f} (intake accepted all)", ""
    )
    for name, values in (("Slack", slack), ("email", mail)):
        for q, label in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
            if not values:
                table.add_row(f"{name} alert latency {label} (s)", "none arrived", "", "")
                continue
            base = pct(baseline, q)
            target = ("< 2 s: " + ("met" if pct(values, q) < 2 else "NOT met")) if label == "p99" else ""
            table.add_row(
                f"{name} alert latency {label}, {len(values)} of {len(ids)} arrived (s)",
                f"{pct(values, q):.2f}",
                f"{base:.3f} (direct Slack posts)",
                target,
            )
    if slack:
        table.add_row("Slack alert latency mean (s)", f"{statistics.mean(slack):.2f}", "", "")
    for stage, values in stages.items():
        if values:
            table.add_row(
                f"  where: {stage} p50 / p99 (s)", f"{pct(values, 0.5):.2f} / {pct(values, 0.99):.2f}", "", ""
            )
    return table


STAGES = """
select a.claim_id, a.deadline_name,
       extract(epoch from a.at) as woke,
       extract(epoch from o.created_at) as recorded,
       extract(epoch from o.published_at) as published,
       (select extract(epoch from min(d.sent_at)) from notifier.deliveries d
         where d.event_id = a.event_id) as sent
from dispute.claim_alerts a join dispute.outbox o on o.event_id = a.event_id
where a.tenant_id = :t and a.claim_id like :p and a.kind = 'reminder-5'
"""


async def alert_steps(url: str, prefix: str) -> list[Any]:
    """Each first reminder's steps as recorded: when the workflow woke (``claim_alerts.at``, the
    workflow's clock), when the alert was recorded with its outbox row, when the relay published it,
    when the notifier sent it on its first channel (seconds since the epoch)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(STAGES), {"t": TENANT, "p": f"{prefix}%"})).all())
    finally:
        await engine.dispose()


def stage_latencies(rows: list[Any], fire: dict[str, float]) -> dict[str, list[float]]:
    """Each step's time from the alert's due instant."""
    out: dict[str, list[float]] = {"workflow woke": [], "recorded": [], "published": [], "sent": []}
    for row in rows:
        at = fire[row.claim_id]
        for name, value in zip(out, (row.woke, row.recorded, row.published, row.sent), strict=True):
            if value is not None:
                out[name].append(float(value) - at)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--spread-minutes", type=float, default=0.0, help="IDRFLOW_REMINDER_SPREAD_MINUTES")
    parser.add_argument("--lead", type=float, default=0.0, help="seconds from services up to due time")
    args = parser.parse_args()
    console = Console(width=150)
    now = datetime.now(NY)
    if received_for_first_reminder_today(now.date()) is None:
        console.print(f"alert bench skipped: {now.date()} is not a business day in New York")
        return
    lead = args.lead or 30 + args.claims / 10
    root = Path(tempfile.mkdtemp(prefix="idrflow-alert-bench-"))
    stack = Stack(root, ports=Ports.free(), quiet=True)
    try:
        stack.start_servers()
        stack.api_key = stack.prepare()  # type: ignore[attr-defined]
        # the reminder time: once the services are up, ``lead`` seconds for posting and planning
        started = time.monotonic()
        for name in (*SERVICES, "relay"):
            stack.start_service(name)
        stack.wait_healthy()
        startup = time.monotonic() - started
        ahead = startup + 15 + lead + 60 * args.spread_minutes
        due = (datetime.now(NY) + timedelta(seconds=ahead)).replace(microsecond=0)
        if due.date() != now.date() or due.time() >= dtime(23, 0):
            console.print("alert bench skipped: too close to midnight in New York")
            return
        # the dispute worker plans with the reminder time: restart it (and only it) with the due time
        stack.extra_env.update(
            {
                "IDRFLOW_REMINDER_TIME": due.time().isoformat(),
                "IDRFLOW_REMINDER_SPREAD_MINUTES": str(args.spread_minutes),
            }
        )
        stack.stop_service("dispute")
        stack.start_service("dispute")
        stack.wait_healthy(("dispute",))
        console.print(f"stack up in {startup:.0f} s; reminders due at {due:%H:%M:%S} New York")
        console.print(asyncio.run(measure(stack, args, due, console)))
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
