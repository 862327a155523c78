"""The local stack: ``make run`` (``idrflow dev``) and the e2e test fixtures both use :class:`Stack`.

It starts embedded PostgreSQL, the Temporal dev server with its UI and search attributes, the tansu
broker, a local SMTP server and Slack webhook receiver, migrates, creates the topics, seeds the demo
tenant, then starts the four services and the outbox relay as separate processes with prefixed logs.
``DATABASE_URL``, ``TEMPORAL_ADDRESS`` and ``KAFKA_BOOTSTRAP_SERVERS`` switch a piece to an external
server, which is then neither started nor stopped.

Every child is recorded in ``<root>/pids.json`` with its start time, and dies with the runner where
the OS allows (Linux: a parent-death signal). A runner that was killed anyway (SIGKILL, a crash)
leaves that file behind, and the next start stops the processes it lists (only those whose start
time still matches, so a reused PID is never signalled) before taking the ports again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
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
    process_start,
    spawn,
    stop_pids,
    stop_processes,
    temporal_argv,
    wait_for_port,
)
from deploy.sinks import MailSink, SlackSink

SERVICES = ("intake", "negotiation", "dispute", "notifier")
# Ctrl-C / SIGTERM: the services get this long to finish, then the servers get the rest of STOP_SECONDS
SERVICE_STOP_SECONDS = 5.0
STOP_SECONDS = 9.0


class StackBusy(RuntimeError):
    """Another live runner owns this stack directory."""


LOCAL_KAFKA_SESSION_TIMEOUT_MS = 4000


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
    codec: int = 8005  # the Temporal UI's remote codec endpoint (idrflow codec serve)

    @classmethod
    def free(cls) -> Ports:
        """Every port a free one, no Temporal UI: a stack beside `make run` (tests, fuzzing)."""
        from deploy.servers import free_port

        ports = cls(**{name: free_port() for name in cls.__dataclass_fields__})
        ports.temporal_ui = None
        return ports

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
        self.pids_file = self.root / "pids.json"

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
                "IDRFLOW_PAYLOAD_KEYS": self.payload_keys(),
            }
        )
        if "KAFKA_BOOTSTRAP_SERVERS" not in self.external:
            # the local broker keeps a stopped consumer in its group until its session expires (a
            # restarted dispute service waited about 19 s for its partitions with 10 s, 3 s with 4 s);
            # a real Kafka cluster refuses less than 6 s (group.min.session.timeout.ms)
            env["IDRFLOW_KAFKA_SESSION_TIMEOUT_MS"] = str(LOCAL_KAFKA_SESSION_TIMEOUT_MS)
        if self.ports.temporal_ui:  # the UI's pages call the codec server from the browser
            ui = self.ports.temporal_ui
            env["IDRFLOW_CODEC_CORS_ORIGINS"] = json.dumps(
                [f"http://127.0.0.1:{ui}", f"http://localhost:{ui}"]
            )
        env.update({k: v for k, v in os.environ.items() if k.startswith("IDRFLOW_")})
        env.update(self.extra_env)
        return env

    def payload_keys(self) -> str:
        """The payload encryption keys: ``IDRFLOW_PAYLOAD_KEYS`` when set, else a random key made
        once for this stack directory (kept beside its database, so a restart still decrypts)."""
        given = self.extra_env.get("IDRFLOW_PAYLOAD_KEYS") or os.environ.get("IDRFLOW_PAYLOAD_KEYS")
        if given:
            return given
        from shared.codec import new_key_entry

        path = self.root / "payload-keys"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(new_key_entry("local-1") + "\n")
        return path.read_text().strip()

    # -- servers -----------------------------------------------------------------------------
    # -- the PID file: what a killed runner left running --------------------------------------
    def _children(self) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
        found: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        if self.pg is not None and self.pg.proc is not None:
            found["postgres"] = (self.pg.proc, EmbeddedPostgres.STOP_SIGNAL)
        for name, proc in (*self.servers.items(), *self.processes.items()):
            found[name] = (proc, signal.SIGTERM)
        return found

    def record_pids(self) -> None:
        """Write every running child (PID, start time, stop signal) to ``pids.json``."""
        children = {
            name: {"pid": proc.pid, "start": start, "signal": int(sig)}
            for name, (proc, sig) in self._children().items()
            if (start := process_start(proc.pid)) is not None
        }
        if not children and not self.pids_file.exists():
            return
        owner = {"pid": os.getpid(), "start": process_start(os.getpid())}
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"owner": owner, "processes": children}, indent=2))
        tmp.replace(self.pids_file)

    def stop_leftovers(self) -> list[str]:
        """Stop what a killed runner left running from this directory; return their names.

        Refuses (:class:`StackBusy`) when the runner that wrote the file is still alive.
        """
        try:
            recorded = json.loads(self.pids_file.read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            self.pids_file.unlink(missing_ok=True)
            return []
        owner = recorded.get("owner") or {}
        owner_pid = int(owner.get("pid", 0))
        if owner_pid and owner_pid != os.getpid() and process_start(owner_pid) == owner.get("start"):
            raise StackBusy(
                f"another idrflow stack (PID {owner_pid}) is running from {self.root}; stop it first"
            )
        entries = {
            name: (int(e["pid"]), str(e["start"]), int(e.get("signal", signal.SIGTERM)))
            for name, e in (recorded.get("processes") or {}).items()
        }
        mine = {proc.pid for proc, _ in self._children().values()}
        entries = {name: e for name, e in entries.items() if e[0] not in mine}
        stopped = stop_pids(list(entries.values()), timeout=STOP_SECONDS)
        names = [name for name, e in entries.items() if e[0] in stopped]
        if names:
            print(f"stopped what a previous run left running: {', '.join(names)}", file=self._log)
        self.pids_file.unlink(missing_ok=True)
        return names

    def start_servers(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.stop_leftovers()
        try:
            self._start_servers()
        finally:
            self.record_pids()

    def _start_servers(self) -> None:
        if not self.database_url:
            self.pg = EmbeddedPostgres(self.root / "pg", self.ports.postgres)
            self.database_url = self.pg.start()
            self.record_pids()
        if not self.temporal_address:
            self._spawn_server("temporal")
            self.temporal_address = f"127.0.0.1:{self.ports.temporal}"
        if not self.kafka:
            self._spawn_server("broker")
            self.kafka = f"127.0.0.1:{self.ports.kafka}"
        self.record_pids()
        if "temporal" in self.servers:
            wait_for_port(self.ports.temporal, 90, self.servers["temporal"], "Temporal")
        if "broker" in self.servers:
            wait_for_port(self.ports.kafka, 30, self.servers["broker"], "broker")
        self.mail = MailSink(self.ports.smtp, self.root / "mail")
        self.mail.start()
        self.slack = SlackSink(self.ports.slack, self.root / "slack")
        self.slack.start()

    def _spawn_server(self, name: str) -> None:
        if name == "temporal":
            argv = temporal_argv(
                self.root / "temporal.db",
                self.ports.temporal,
                self.ports.temporal_ui,
                self.temporal_namespace,
                codec_endpoint=f"http://127.0.0.1:{self.ports.codec}",
            )
        else:
            argv = broker_argv(self.ports.kafka)
        self.servers[name] = spawn(name, argv, log=self._log)

    def kill(self, name: str) -> None:
        """SIGKILL one of the stack's servers or services, as a crash would (chaos tests)."""
        proc = self.servers.pop(name, None) or self.processes.pop(name, None)
        if proc is not None:
            proc.kill()
            proc.wait()
            self.record_pids()

    def restart_server(self, name: str) -> None:
        """Start a killed ``temporal`` or ``broker`` again on its port. Temporal keeps its state in
        its database file; the local broker keeps nothing, so its topics are made again, the
        outboxes re-published and the consumers started again (their inboxes make what they already
        applied a no-op)."""
        # the local broker: the consumers' positions point into the lost log, and if they met the
        # new broker first they would commit those positions there. Stopped now and started after
        # the re-publishing, they find no committed offsets and read the new log from its beginning.
        # The relay too: publishing into the fresh broker before its topics are made and the
        # outboxes marked again, it could have an event acknowledged and then lost from the log
        # (seen once in a chaos run: a consumer's committed offset past the partition's end).
        consumers = [s for s in ("dispute", "negotiation", "notifier") if s in self.processes]
        relay = [s for s in ("relay",) if s in self.processes]
        if name == "broker":
            for service in (*relay, *consumers):
                self.stop_service(service)
        self._spawn_server(name)
        self.record_pids()
        port = self.ports.temporal if name == "temporal" else self.ports.kafka
        wait_for_port(port, 90, self.servers[name], name)
        if name == "broker":
            asyncio.run(ensure_topics_with(self.kafka))
            asyncio.run(republish_all(self.database_url))
            for service in (*consumers, *relay):
                self.start_service(service)
            self.wait_healthy(tuple(consumers))

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
        elif name == "codec":
            argv = [sys.executable, "-m", "services.cli", "codec", "serve", "--port", str(self.ports.codec)]
        else:
            argv = [sys.executable, "-m", "services.cli", "serve", name, "--port", str(self.ports.of(name))]
        proc = spawn(name, argv, env=self.env(), log=self._log)
        self.processes[name] = proc
        self.record_pids()
        return proc

    def wait_healthy(self, names: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        pending = list(names)
        restarts: dict[str, int] = {}
        while pending:
            name = pending[0]
            proc = self.processes[name]
            if proc.poll() is not None:
                tries = restarts.get(name, 0)
                if tries >= 3:
                    raise RuntimeError(f"{name} exited with code {proc.returncode}")
                # a service can lose a race at start (a port still closing, a server not ready yet)
                print(
                    f"{name} exited with code {proc.returncode} while starting; starting it again",
                    file=self._log,
                )
                restarts[name] = tries + 1
                time.sleep(2 * (tries + 1))
                self.start_service(name)
                continue
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
        for name in (*SERVICES, "relay", "codec"):
            self.start_service(name)
        self.wait_healthy((*SERVICES, "codec"))
        return key

    def stop_service(self, name: str, kill: bool = False) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_processes([(proc, signal.SIGKILL if kill else signal.SIGTERM)], timeout=SERVICE_STOP_SECONDS)
            self.record_pids()

    def stop(self) -> None:
        """Stop everything within :data:`STOP_SECONDS`: the services (and relay) together first, so
        they can finish against live servers, then the servers together; SIGKILL what lingers."""
        began = time.monotonic()
        names = {proc.pid: name for name, (proc, _) in self._children().items()}
        services = [(proc, signal.SIGTERM) for proc in self.processes.values()]
        killed = stop_processes(services, timeout=SERVICE_STOP_SECONDS, kill_wait=1)
        self.processes.clear()
        servers = [(proc, signal.SIGTERM) for proc in self.servers.values()]
        if self.pg is not None and self.pg.proc is not None:
            servers.append((self.pg.proc, EmbeddedPostgres.STOP_SIGNAL))
        left = max(1.0, STOP_SECONDS - (time.monotonic() - began) - 1)
        killed += stop_processes(servers, timeout=left, kill_wait=1)
        self.servers.clear()
        if killed:
            print(f"killed (did not stop in time): {', '.join(names[p.pid] for p in killed)}", file=self._log)
        if self.pg:
            self.pg.stop()  # already stopped: closes its log
        if self.slack:
            self.slack.stop()
        if self.mail:
            self.mail.stop()
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(self.pids_file.read_text()).get("owner", {}).get("pid") == os.getpid():
                self.pids_file.unlink()


class _Stop(Exception):
    """Raised in the main thread by Ctrl-C or SIGTERM, also while the stack is still starting."""


def _env_port(name: str, default: int) -> int:
    """The local servers' ports: ``IDRFLOW_DEVSTACK_POSTGRES_PORT``, ``..._TEMPORAL_PORT``,
    ``..._KAFKA_PORT`` (so a second stack, e.g. a test's, can run beside the default one)."""
    raw = os.environ.get(f"IDRFLOW_DEVSTACK_{name.upper()}_PORT", "").strip()
    return int(raw) if raw else default


def dev_ports() -> Ports:
    from shared.settings import get_settings

    settings = get_settings()
    defaults = Ports()
    return Ports(
        postgres=_env_port("postgres", defaults.postgres),
        temporal=_env_port("temporal", defaults.temporal),
        kafka=_env_port("kafka", defaults.kafka),
        intake=settings.intake_port,
        negotiation=settings.negotiation_port,
        dispute=settings.dispute_port,
        notifier=settings.notifier_port,
        temporal_ui=settings.temporal_ui_port or None,
        smtp=settings.smtp_port,
        slack=settings.slack_sink_port,
        codec=settings.codec_port,
    )


def run_dev() -> None:
    """``make run``: start everything, print where things are, stop all on Ctrl-C or SIGTERM
    (within :data:`STOP_SECONDS`, also when the signal arrives while the stack is starting)."""
    from rich.console import Console
    from rich.panel import Panel

    from shared.settings import get_settings

    settings = get_settings()
    external = {
        k: os.environ[k]
        for k in ("DATABASE_URL", "TEMPORAL_ADDRESS", "KAFKA_BOOTSTRAP_SERVERS")
        if os.environ.get(k)
    }
    ports = dev_ports()
    # observability: every process's spans as OTLP-JSON lines in .devstack/traces.jsonl; the relay's
    # /healthz and /metrics (the services answer /metrics on their own ports)
    observe = {
        "IDRFLOW_TRACES_EXPORTER": os.environ.get("IDRFLOW_TRACES_EXPORTER", "jsonl"),
        "IDRFLOW_TRACES_FILE": os.environ.get(
            "IDRFLOW_TRACES_FILE", str(Path(settings.devstack_dir).resolve() / "traces.jsonl")
        ),
        "IDRFLOW_RELAY_PORT": os.environ.get("IDRFLOW_RELAY_PORT", "8006"),
        # intake is CPU-bound (parsing, validation): two worker processes when the cores allow
        "IDRFLOW_INTAKE_WORKERS": os.environ.get(
            "IDRFLOW_INTAKE_WORKERS", "2" if (os.cpu_count() or 1) >= 4 else "1"
        ),
    }
    stack = Stack(settings.devstack_dir, ports=ports, external=external, extra_env=observe)
    console = Console()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:  # a second Ctrl-C while stopping does not abort the stop
            stopping = True
            raise _Stop(signal.Signals(signum).name)

    try:
        stack.stop_leftovers()
    except StackBusy as exc:
        console.print(f"[red]{exc}[/red]")
        raise SystemExit(1) from None
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        api_key = stack.start_all()
        ui = f"http://127.0.0.1:{ports.temporal_ui}" if "temporal" in stack.servers else "(external Temporal)"
        if not ports.temporal_ui:
            ui = "(headless)"
        console.print(
            Panel.fit(
                "\n".join(
                    [
                        f"intake       http://127.0.0.1:{ports.intake}/docs",
                        f"negotiation  http://127.0.0.1:{ports.negotiation}/docs",
                        f"dispute      http://127.0.0.1:{ports.dispute}/docs",
                        f"notifier     http://127.0.0.1:{ports.notifier}/docs",
                        f"Temporal UI  {ui}   (payloads decrypted by codec http://127.0.0.1:{ports.codec})",
                        f"PostgreSQL   {stack.database_url}",
                        f"Kafka        {stack.kafka}",
                        f"metrics      127.0.0.1:<port>/metrics, relay :{observe['IDRFLOW_RELAY_PORT']}",
                        f"traces    -> {observe['IDRFLOW_TRACES_FILE']}",
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
        while True:
            for name, proc in list(stack.processes.items()):
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with code {proc.returncode}; restarting[/red]")
                    stack.start_service(name)
            time.sleep(1)
    except _Stop:
        pass
    finally:
        stopping = True
        console.print("stopping idrflow ...")
        began = time.monotonic()
        stack.stop()
        console.print(f"stopped in {time.monotonic() - began:.1f}s")
