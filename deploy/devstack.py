"""The local stack: ``make run`` (``idrflow dev``) and the e2e test fixtures both use :class:`Stack`.

It starts embedded PostgreSQL, the Temporal dev server with its UI and search attributes, the tansu
broker, a local SMTP server and Slack webhook receiver, migrates, creates the topics, seeds the demo
tenant, then starts the four services and the outbox relay as separate processes with prefixed logs.
``DATABASE_URL``, ``TEMPORAL_ADDRESS`` and ``KAFKA_BOOTSTRAP_SERVERS`` switch a piece to an external
server, which is then neither started nor stopped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.bootstrap import ensure_topics_with, republish_all, seed_tenant
from deploy.migrate import upgrade
from deploy.servers import (
    EmbeddedPostgres,
    broker_argv,
    spawn,
    stop_process,
    temporal_argv,
    wait_for_port,
)
from deploy.sinks import MailSink, SlackSink

SERVICES = ("intake", "negotiation", "dispute", "notifier")


@dataclass
class Ports:
    postgres: int = 55432
    temporal: int = 7233
    temporal_ui: int | None = 8233
    kafka: int = 9092
    smtp: int = 1025
    slack: int = 8025
    intake: int = 8001
    negotiation: int = 8002
    dispute: int = 8003
    notifier: int = 8004

    def of(self, service: str) -> int:
        port: int = getattr(self, service)
        return port


@dataclass
class Stack:
    root: Path
    ports: Ports = field(default_factory=Ports)
    external: dict[str, str] = field(default_factory=dict)  # DATABASE_URL, TEMPORAL_ADDRESS, KAFKA_...
    extra_env: dict[str, str] = field(default_factory=dict)
    demo_email: str = "revcycle@demo.example"
    temporal_namespace: str = "default"  # the namespace the dev server creates (and gets our retention)
    quiet: bool = False

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.pg: EmbeddedPostgres | None = None
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.mail: MailSink | None = None
        self.slack: SlackSink | None = None
        self.database_url = self.external.get("DATABASE_URL", "")
        self.temporal_address = self.external.get("TEMPORAL_ADDRESS", "")
        self.kafka = self.external.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self._log = open(os.devnull, "w") if self.quiet else sys.stdout

    # -- environment shared by every child ---------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDRFLOW_")}
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "TEMPORAL_ADDRESS": self.temporal_address,
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "IDRFLOW_SMTP_HOST": "127.0.0.1",
                "IDRFLOW_SMTP_PORT": str(self.ports.smtp),
                "IDRFLOW_DASHBOARD_BASE_URL": f"http://127.0.0.1:{self.ports.dispute}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({k: v for k, v in os.environ.items() if k.startswith("IDRFLOW_")})
        env.update(self.extra_env)
        return env

    # -- servers -----------------------------------------------------------------------------
    def start_servers(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.pg = EmbeddedPostgres(self.root / "pg", self.ports.postgres)
            self.database_url = self.pg.start()
        if not self.temporal_address:
            argv = temporal_argv(
                self.root / "temporal.db",
                self.ports.temporal,
                self.ports.temporal_ui,
                self.temporal_namespace,
            )
            self.servers["temporal"] = spawn("temporal", argv, log=self._log)
            self.temporal_address = f"127.0.0.1:{self.ports.temporal}"
        if not self.kafka:
            self.servers["broker"] = spawn("broker", broker_argv(self.ports.kafka), log=self._log)
            self.kafka = f"127.0.0.1:{self.ports.kafka}"
        if "temporal" in self.servers:
            wait_for_port(self.ports.temporal, 90, self.servers["temporal"], "Temporal")
        if "broker" in self.servers:
            wait_for_port(self.ports.kafka, 30, self.servers["broker"], "broker")
        self.mail = MailSink(self.ports.smtp, self.root / "mail")
        self.mail.start()
        self.slack = SlackSink(self.ports.slack, self.root / "slack")
        self.slack.start()

    def prepare(self) -> str:
        """Migrate, create topics, seed the demo tenant; return its API key."""
        upgrade(self.database_url)
        asyncio.run(ensure_topics_with(self.kafka))
        if "temporal" in self.servers:
            # start-dev has no retention flag and creates its namespace with one day: set ours
            asyncio.run(self.set_temporal_retention())
        if "broker" in self.servers:
            # our broker keeps nothing across restarts: publish the outboxes again; the consumers'
            # inboxes make every event already applied a no-op
            republished = asyncio.run(republish_all(self.database_url))
            if republished:
                print(f"re-publishing {republished} event(s) to the fresh broker", file=self._log)
        key_file = self.root / "demo-api-key"
        if not key_file.exists():
            key_file.write_text(f"idr_demo_{secrets.token_urlsafe(24)}\n")
        api_key = key_file.read_text().strip()
        assert self.slack is not None
        asyncio.run(
            seed_tenant(
                self.database_url, "demo", "Demo Billing Co", api_key, self.demo_email, self.slack.url
            )
        )
        return api_key

    async def set_temporal_retention(self) -> None:
        """Give the dev server's namespace the configured workflow retention."""
        from temporalio.client import Client

        from shared.settings import get_settings
        from shared.temporal import set_retention

        client = await Client.connect(self.temporal_address, namespace=self.temporal_namespace)
        await set_retention(client, self.temporal_namespace, get_settings().temporal_retention_days)

    # -- services ----------------------------------------------------------------------------
    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        if name == "relay":
            argv = [sys.executable, "-m", "services.cli", "relay"]
        else:
            argv = [sys.executable, "-m", "services.cli", "serve", name, "--port", str(self.ports.of(name))]
        proc = spawn(name, argv, env=self.env(), log=self._log)
        self.processes[name] = proc
        return proc

    def wait_healthy(self, names: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            name = pending[0]
            proc = self.processes[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.ports.of(name)}/healthz", timeout=5).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} was not healthy within {timeout:.0f}s")
            time.sleep(0.3)

    def start_all(self) -> str:
        self.start_servers()
        key = self.prepare()
        for name in (*SERVICES, "relay"):
            self.start_service(name)
        self.wait_healthy()
        return key

    def stop_service(self, name: str, kill: bool = False) -> None:
        import signal

        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_process(proc, sig=signal.SIGKILL if kill else signal.SIGTERM)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_service(name)
        for proc in reversed(list(self.servers.values())):
            stop_process(proc)
        self.servers.clear()
        if self.slack:
            self.slack.stop()
        if self.mail:
            self.mail.stop()
        if self.pg:
            self.pg.stop()


def run_dev() -> None:
    """``make run``: start everything, print where things are, stop all on Ctrl-C or SIGTERM."""
    import signal
    import threading

    from rich.console import Console
    from rich.panel import Panel

    from shared.settings import get_settings

    settings = get_settings()
    external = {
        k: os.environ[k]
        for k in ("DATABASE_URL", "TEMPORAL_ADDRESS", "KAFKA_BOOTSTRAP_SERVERS")
        if os.environ.get(k)
    }
    ports = Ports(
        intake=settings.intake_port,
        negotiation=settings.negotiation_port,
        dispute=settings.dispute_port,
        notifier=settings.notifier_port,
        temporal_ui=settings.temporal_ui_port,
        smtp=settings.smtp_port,
        slack=settings.slack_sink_port,
    )
    stack = Stack(settings.devstack_dir, ports=ports, external=external)
    console = Console()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        api_key = stack.start_all()
        ui = f"http://127.0.0.1:{ports.temporal_ui}" if "temporal" in stack.servers else "(external Temporal)"
        console.print(
            Panel.fit(
                "\n".join(
                    [
                        f"intake       http://127.0.0.1:{ports.intake}/docs",
                        f"negotiation  http://127.0.0.1:{ports.negotiation}/docs",
                        f"dispute      http://127.0.0.1:{ports.dispute}/docs",
                        f"notifier     http://127.0.0.1:{ports.notifier}/docs",
                        f"Temporal UI  {ui}",
                        f"PostgreSQL   {stack.database_url}",
                        f"Kafka        {stack.kafka}",
                        f"mail  (SMTP 127.0.0.1:{ports.smtp})   -> {stack.root / 'mail'}/*.eml",
                        f"Slack (webhook {stack.slack.url if stack.slack else ''})",
                        f"             -> {stack.root / 'slack'}/*.json",
                        "",
                        f"demo tenant API key: {api_key}",
                        "Post the sample claim: see README.md, 'Try it'.   Ctrl-C stops everything.",
                    ]
                ),
                title="idrflow is up",
            )
        )
        while not stopping.is_set():
            for name, proc in list(stack.processes.items()):
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with code {proc.returncode}; restarting[/red]")
                    stack.start_service(name)
            stopping.wait(1)
    finally:
        console.print("stopping idrflow ...")
        stack.stop()
