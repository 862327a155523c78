"""No patient data in any service log, also when the input is malformed (issue 10 items 5 and 7).

The intake, dispute and notifier services and the relay run as processes on the test stack with
their logs written to a file (the stack's own service logs go to /dev/null in tests). Claims carrying
a distinctive patient (name, member id, date of birth) are posted broken in every way a client can
break them, and once valid; every answer to a broken one must be an RFC 9457 problem naming the
field and the reason, never a 500; then no log line may contain any of the patient's values.
"""

from __future__ import annotations

import copy
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.devstack import Stack
from deploy.servers import free_port, spawn, stop_processes, wait_for_port
from tests.integration.conftest import claim

PATIENT = {"name": "Zebulon Quixwright", "member_id": "MBRQX7731904", "date_of_birth": "1961-07-23"}
PHI = ("Zebulon", "Quixwright", "MBRQX7731904", "1961-07-23", "07/23/1961", "19610723")
SERVICES = ("intake", "dispute", "notifier")


@pytest.fixture(scope="module")
def logged(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, int], Path]]:
    """The services on ports of their own, every line they print kept in ``services.log``."""
    log_path = tmp_path_factory.mktemp("phi") / "services.log"
    sink = open(log_path, "w", buffering=1)  # closed after the processes stop
    ports = {name: free_port() for name in SERVICES}
    env = {**stack.env(), "IDRFLOW_LOG_FORMAT": "json"}
    procs = []
    try:
        for name in (*SERVICES, "relay"):
            argv = [sys.executable, "-m", "services.cli"]
            argv += ["relay"] if name == "relay" else ["serve", name, "--port", str(ports[name])]
            procs.append(spawn(name, argv, env=env, log=sink))
        for name, proc in zip(SERVICES, procs, strict=False):
            wait_for_port(ports[name], 90, proc, name)
        yield ports, log_path
    finally:
        stop_processes([(p, signal.SIGTERM) for p in procs], timeout=10)
        sink.close()


def with_patient(**changes: Any) -> dict[str, Any]:
    return claim(**{"patient": copy.deepcopy(PATIENT), **changes})


def line(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(claim()["lines"][0])
    out.update(changes)
    return out


def malformed(claim_id: str) -> list[tuple[str, str, bytes]]:
    """(what, the field the problem must name, body) for every way of breaking the request."""
    patient_nul = {**PATIENT, "name": "Zebulon\u0000 Quixwright"}
    patient_ctrl = {**PATIENT, "name": "Zebulon Quixwright\u0007"}
    patient_newline = {**PATIENT, "member_id": "MBRQX7731904\nX-Injected: 1"}
    c = claim_id
    payer = claim()["payer"]
    cases: list[tuple[str, str, dict[str, Any] | bytes]] = [
        ("NUL in the patient name", "body", with_patient(claim_id=c, patient=patient_nul)),
        ("NUL in the payer name", "body", with_patient(claim_id=c, payer={**payer, "name": "Acme\u0000"})),
        (
            "control character in a name",
            "patient.name",
            with_patient(claim_id=c, patient=patient_ctrl),
        ),
        (
            "newline in the member id",
            "patient.member_id",
            with_patient(claim_id=c, patient=patient_newline),
        ),
        (
            "date before the calendar",
            "bill_sent_on",
            with_patient(claim_id=c, bill_sent_on="2000-01-01"),
        ),
        (
            "date after the calendar",
            "initial_payment_received_on",
            with_patient(claim_id=c, initial_payment_received_on="2099-01-01"),
        ),
        (
            "date of birth that is no date",
            "patient.date_of_birth",
            with_patient(claim_id=c, patient={**PATIENT, "date_of_birth": "1961-02-30"}),
        ),
        (
            "date of birth as a number",
            "patient.date_of_birth",
            with_patient(claim_id=c, patient={**PATIENT, "date_of_birth": 19610723}),
        ),
        (
            "NPI check digit",
            "provider.npi",
            with_patient(claim_id=c, provider={"npi": "1234567890", "tin": "123456789", "name": "M"}),
        ),
        (
            "NPI too short",
            "provider.npi",
            with_patient(claim_id=c, provider={"npi": "12345", "tin": "123456789", "name": "M"}),
        ),
        ("event sequence as a string", "event_sequence", with_patient(claim_id=c, event_sequence="2")),
        ("lines not a list", "lines", with_patient(claim_id=c, lines="99285")),
        ("money as a float", "lines[0].billed", with_patient(claim_id=c, lines=[line(billed=2400.5)])),
        ("money empty", "lines[0].paid", with_patient(claim_id=c, lines=[line(paid="")])),
        (
            "patient not an object",
            "patient",
            claim(claim_id=c, patient="Zebulon Quixwright 1961-07-23"),
        ),
        ("unknown field", "patient.ssn", with_patient(claim_id=c, patient={**PATIENT, "ssn": "1"})),
        ("broken JSON", "body", json.dumps(with_patient(claim_id=c)).encode()[:-7]),
        ("not JSON at all", "body", b"Zebulon Quixwright, MBRQX7731904, 1961-07-23"),
    ]
    out = []
    for what, field, body in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        out.append((what, field, raw))
    # over IDRFLOW_MAX_BODY_BYTES (1 MiB): refused before it is parsed
    big = with_patient(claim_id=claim_id)
    big["payer"]["name"] = "Zebulon Quixwright " * 60_000
    out.append(("oversized body", "body", json.dumps(big).encode()))
    return out


def test_malformed_claims_get_problems_and_no_patient_value_reaches_a_log(
    stack: Stack, logged: tuple[dict[str, int], Path]
) -> None:
    ports, log_path = logged
    auth = {"Authorization": f"Bearer {stack.api_key}"}  # type: ignore[attr-defined]
    json_headers = {**auth, "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{ports['intake']}"
    with httpx.Client(base_url=base, timeout=30) as http:
        for what, field, body in malformed("PHI-BAD-1"):
            r = http.post("/v1/claims", content=body, headers=json_headers)
            assert r.status_code in (400, 413, 422), (what, r.status_code, r.text[:500])
            assert r.headers["content-type"].startswith("application/problem+json"), what
            problem = r.json()
            assert {"type", "title", "status", "detail", "instance"} <= set(problem), (what, problem)
            assert problem["status"] == r.status_code
            fields = [e["field"] for e in problem.get("errors", [])]
            assert field in fields, (what, fields, problem["detail"])
            assert all(e["reason"] for e in problem["errors"]), (what, problem)
        # also the happy path and an unauthenticated one carry the patient through the services
        good = with_patient(claim_id="PHI-GOOD-1")
        assert http.post("/v1/claims", json=good, headers=auth).status_code == 202
        assert http.post("/v1/claims", json=good).status_code == 401
        # the dispute service took the claim event in (and logged whatever it logs about it)
        dispute = f"http://127.0.0.1:{ports['dispute']}/v1/claims/PHI-GOOD-1"
        deadline = time.monotonic() + 90
        while http.get(dispute, headers=auth).status_code != 200:
            if time.monotonic() > deadline:
                pytest.fail("the dispute service never recorded the claim")
            time.sleep(0.5)

    logs = log_path.read_text()
    assert "intake" in logs and "dispute" in logs  # the file is the services' output
    found = {value for value in PHI if value.lower() in logs.lower()}
    assert not found, f"patient values in the service logs: {sorted(found)}"
