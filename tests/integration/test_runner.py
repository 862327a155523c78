"""The local runner (``idrflow dev``): its children die with it, a killed runner's leftovers are
stopped by the next start (never a process that merely reuses a recorded PID), and SIGTERM stops
the whole stack within 10 s."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.devstack import Stack, StackBusy
from deploy.servers import free_port, process_start

LINUX = sys.platform.startswith("linux")
PYTHON = sys.executable


def gone(pid: int, start: str | None = None) -> bool:
    """Not running (or a zombie), or running but started at another time (a reused PID)."""
    now = process_start(pid)
    return now is None or (start is not None and now != start)


def wait_gone(pids: dict[int, str | None], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid, start in pids.items() if not gone(pid, start)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid, start in pids.items() if not gone(pid, start)]


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


@pytest.mark.skipif(not LINUX, reason="the parent-death signal is Linux only")
def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from deploy.servers import spawn\n"
        "proc = spawn('sleep', ['sleep', '120'])\n"
        "print(proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        start = process_start(child)
        assert start is not None
        parent.kill()  # SIGKILL: no handler, no cleanup in the parent
        parent.wait(5)
        assert wait_gone({child: start}, 5) == [], "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


def write_pids(
    root: Path, owner: tuple[int, str | None], processes: dict[str, tuple[int, str | None]]
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pids.json").write_text(
        json.dumps(
            {
                "owner": {"pid": owner[0], "start": owner[1]},
                "processes": {
                    name: {"pid": pid, "start": start, "signal": int(signal.SIGTERM)}
                    for name, (pid, start) in processes.items()
                },
            }
        )
    )


def test_leftovers_are_stopped_but_a_reused_pid_is_not(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    left, reused = sleeper(), sleeper()
    sleepers += [left, reused]
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    write_pids(
        tmp_path,
        (dead_owner.pid, "1"),
        {
            "broker": (left.pid, process_start(left.pid)),
            # the PID file says this PID started at another time: it is someone else's process now
            "temporal": (reused.pid, "1"),
        },
    )
    began = time.monotonic()
    assert Stack(tmp_path, quiet=True).stop_leftovers() == ["broker"]
    assert time.monotonic() - began < 5
    assert left.wait(1) == -signal.SIGTERM
    assert reused.poll() is None
    assert not (tmp_path / "pids.json").exists()


def test_a_live_runner_is_not_stopped_by_a_second_one(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    owner, child = sleeper(), sleeper()
    sleepers += [owner, child]
    write_pids(
        tmp_path, (owner.pid, process_start(owner.pid)), {"broker": (child.pid, process_start(child.pid))}
    )
    with pytest.raises(StackBusy):
        Stack(tmp_path, quiet=True).stop_leftovers()
    assert child.poll() is None
    assert (tmp_path / "pids.json").exists()


# -- the real runner ----------------------------------------------------------------------------
PORT_VARS = (
    "IDRFLOW_DEVSTACK_POSTGRES_PORT",
    "IDRFLOW_DEVSTACK_TEMPORAL_PORT",
    "IDRFLOW_DEVSTACK_KAFKA_PORT",
    "IDRFLOW_INTAKE_PORT",
    "IDRFLOW_NEGOTIATION_PORT",
    "IDRFLOW_DISPUTE_PORT",
    "IDRFLOW_NOTIFIER_PORT",
    "IDRFLOW_TEMPORAL_UI_PORT",
    "IDRFLOW_SMTP_PORT",
    "IDRFLOW_SLACK_SINK_PORT",
)


def runner_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IDRFLOW_")
        and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update({name: str(free_port()) for name in PORT_VARS})
    env["IDRFLOW_DEVSTACK_DIR"] = str(root / "devstack")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_runner(env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [PYTHON, "-m", "services.cli", "dev"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_up(runner: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "idrflow is up" in log.read_text(errors="replace"):
            return
        if runner.poll() is not None:
            break
        time.sleep(0.3)
    lines = log.read_text(errors="replace").splitlines()
    # the services' own errors first (the runner's traceback fills the end of the log)
    errors = [x for x in lines if "Error" in x or "error" in x or "exited with" in x][-40:]
    tail = "\n".join([*errors, "...", *lines[-15:]])
    raise AssertionError(f"the runner did not come up (exit code {runner.poll()}):\n{tail}")


def recorded(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    data = json.loads((Path(env["IDRFLOW_DEVSTACK_DIR"]) / "pids.json").read_text())
    return {name: (int(e["pid"]), str(e["start"])) for name, e in data["processes"].items()}


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_killed_runner_is_replaced_and_sigterm_stops_everything(tmp_path: Path) -> None:
    env = runner_env(tmp_path)
    runners: list[subprocess.Popen[bytes]] = []
    try:
        first = start_runner(env, tmp_path / "first.log", tmp_path)
        runners.append(first)
        wait_up(first, tmp_path / "first.log")
        children = recorded(env)
        assert {"postgres", "temporal", "broker", "intake", "dispute", "relay"} <= set(children)

        first.send_signal(signal.SIGKILL)
        first.wait(5)

        # same directory, same ports: the leftovers must be gone for this one to come up
        second = start_runner(env, tmp_path / "second.log", tmp_path)
        runners.append(second)
        wait_up(second, tmp_path / "second.log")
        assert [name for name, (pid, start) in children.items() if not gone(pid, start)] == []

        children = recorded(env)
        began = time.monotonic()
        second.send_signal(signal.SIGTERM)
        second.wait(15)
        took = time.monotonic() - began
        print(f"SIGTERM stopped the stack in {took:.1f}s")
        assert took < 10, f"SIGTERM took {took:.1f}s"
        assert second.returncode == 0
        assert wait_gone({pid: start for pid, start in children.values()}, 1) == []
        ports = [int(env[name]) for name in PORT_VARS]
        assert [port for port in ports if listening(port)] == []
        assert not (Path(env["IDRFLOW_DEVSTACK_DIR"]) / "pids.json").exists()
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
                try:
                    runner.wait(15)
                except subprocess.TimeoutExpired:
                    runner.kill()
