"""The OpenAPI contract stays checked in ``make test``: a small Schemathesis pass (every check, a
handful of examples per operation, positive and negative) against the intake and dispute services
running as processes on the test stack. ``make fuzz`` is the same with many more examples, on all
four services; ``tests/fuzz/schemathesis.toml`` (shared by both) lists the operations where a rule
JSON Schema cannot state turns ``positive_data_acceptance`` off, and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from deploy.devstack import Stack

CONFIG = Path(__file__).resolve().parents[1] / "fuzz" / "schemathesis.toml"
SERVICES = ("intake", "dispute")


@pytest.fixture(scope="module")
def contract_stack(stack: Stack) -> Iterator[Stack]:
    for name in SERVICES:
        stack.start_service(name)
    stack.wait_healthy(SERVICES)
    yield stack
    for name in SERVICES:
        stack.stop_service(name)


def _schema(stack: Stack, service: str) -> BaseSchema:
    url = f"http://127.0.0.1:{stack.ports.of(service)}/openapi.json"
    return schemathesis.openapi.from_url(url, config=SchemathesisConfig.from_path(str(CONFIG)))


def contract_failures(
    schema: BaseSchema, headers: dict[str, str], only: set[str] | None = None, examples: int = 4
) -> list[str]:
    """Every operation, a few positive and a few negative cases each, every check the config leaves
    on for it (``call_and_validate`` reads it); the failures, one line each."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and operation.label not in only:
            continue
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers)

            try:
                check()
            except Unsatisfiable:  # nothing to break (no parameters, e.g. GET /healthz): no negative case
                continue
            except Exception as exc:  # a check failed: keep its first lines and go on
                first = " ".join(str(exc).split())[:400]
                failures.append(f"{operation.label} ({mode.value}): {first}")
    return failures


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_key}"}  # type: ignore[attr-defined]


def test_intake_answers_as_its_openapi_document_says(contract_stack: Stack) -> None:
    # the claim event endpoint; the X12, FHIR and remittance endpoints join when they are finished
    only = {"POST /v1/claims"}
    assert contract_failures(_schema(contract_stack, "intake"), _auth(contract_stack), only) == []


def test_dispute_answers_as_its_openapi_document_says(contract_stack: Stack) -> None:
    schema = _schema(contract_stack, "dispute")
    assert contract_failures(schema, _auth(contract_stack)) == []
