"""Temporal: client connection, workflow ids and the search attributes of the architecture page."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.converter import DataConverter
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from shared.codec import build_codec, data_converter
from shared.settings import Settings, get_settings

T = TypeVar("T")

IDR_TENANT = SearchAttributeKey.for_keyword("IdrTenant")
IDR_CLAIM_ID = SearchAttributeKey.for_keyword("IdrClaimId")
IDR_PAYER = SearchAttributeKey.for_keyword("IdrPayer")
IDR_STAGE = SearchAttributeKey.for_keyword("IdrStage")
IDR_NEXT_DEADLINE = SearchAttributeKey.for_datetime("IdrNextDeadline")
IDR_SERVICE_CODE = SearchAttributeKey.for_keyword_list("IdrServiceCode")

SEARCH_ATTRIBUTES: dict[str, str] = {
    "IdrTenant": "Keyword",
    "IdrClaimId": "Keyword",
    "IdrPayer": "Keyword",
    "IdrStage": "Keyword",
    "IdrNextDeadline": "Datetime",
    "IdrServiceCode": "KeywordList",
}


def claim_workflow_id(tenant_id: str, claim_id: str) -> str:
    return f"claim:{tenant_id}:{claim_id}"


def negotiation_workflow_id(tenant_id: str, claim_id: str) -> str:
    return f"negotiation:{tenant_id}:{claim_id}"


class PayloadsInClear(RuntimeError):
    """No payload keys for a Temporal server that is not on this machine."""


def converter_for(settings: Settings) -> DataConverter:
    """The data converter of every client and worker: pydantic, encrypted with the payload keys."""
    codec = build_codec(settings.payload_keys.get_secret_value(), settings.payload_key_id)
    if codec is None and settings.payload_encryption == "on" and not settings.temporal_is_local:
        raise PayloadsInClear(
            f"payload_keys: Temporal at {settings.temporal_address} would receive patient data in clear; "
            "set IDRFLOW_PAYLOAD_KEYS (idrflow codec new-key) or IDRFLOW_PAYLOAD_ENCRYPTION=off"
        )
    return data_converter(codec)


async def connect(settings: Settings | None = None) -> Client:
    s = settings or get_settings()
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return await Client.connect(
        s.temporal_address,
        namespace=s.temporal_namespace,
        data_converter=converter_for(s),
        # spans for client calls, and (workers inherit client interceptors) workflows and activities
        interceptors=[TracingInterceptor()],
    )


async def temporal_ready(client: Client | None, settings: Settings | None = None) -> bool:
    try:
        c = client or await connect(settings)
        return await c.service_client.check_health()
    except Exception:
        return False


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register idrflow's search attributes on a cluster that lacks them (the dev server gets them
    with ``--search-attribute`` at start; the test server and an external cluster need this)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace, search_attributes={k: kinds[v] for k, v in SEARCH_ATTRIBUTES.items()}
        )
    )


async def set_retention(client: Client, namespace: str, days: int) -> None:
    """Set how long the namespace keeps closed workflows (UpdateNamespace changes only the fields
    present in ``config``, so archival and the rest stay as they are)."""
    from temporalio.api.namespace.v1 import NamespaceConfig
    from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest

    if days < 1:
        raise ValueError("workflow retention must be at least one day")
    config = NamespaceConfig()
    config.workflow_execution_retention_ttl.FromTimedelta(timedelta(days=days))
    await client.workflow_service.update_namespace(UpdateNamespaceRequest(namespace=namespace, config=config))


async def get_retention(client: Client, namespace: str) -> timedelta:
    """The namespace's workflow execution retention, as DescribeNamespace reports it."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    retention: timedelta = described.config.workflow_execution_retention_ttl.ToTimedelta()
    return retention


async def _in_time(call: Awaitable[T]) -> T:
    """A Temporal call made for an HTTP request, bounded: no worker answering in time is a 503
    problem (retry it; with the same Idempotency-Key a retried action is applied once)."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
    from temporalio.service import RPCError

    from shared.http import UNREACHABLE, Problem, temporal_unavailable

    seconds = get_settings().temporal_request_timeout_seconds
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except RPCError as exc:
        if exc.status in UNREACHABLE:
            raise temporal_unavailable() from exc
        raise
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise Problem(
            503,
            "worker-unavailable",
            "The claim's worker is not answering",
            f"No answer from the lifecycle worker within {seconds:g} s; nothing may have been applied yet. "
            "Retry the request (with the same Idempotency-Key).",
            headers={"Retry-After": "5"},
        ) from exc


async def execute_update(
    client: Client,
    workflow_id: str,
    update: str,
    arg: Any,
    result_type: type[T],
    *,
    update_id: str | None = None,
) -> T:
    """Run a workflow update for an HTTP request: a rejected action is a 409 problem with the
    validator's reason (and the field it names), an unknown claim a 404. ``update_id`` (from an
    ``Idempotency-Key``) makes a retried update apply once: Temporal answers a repeated id with the
    first outcome."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from shared.http import Problem

    try:
        result: T = await _in_time(
            client.get_workflow_handle(workflow_id).execute_update(
                update, arg, id=update_id, result_type=result_type
            )
        )
        return result
    except WorkflowUpdateFailedError as exc:
        reason = str(getattr(exc.cause, "message", None) or exc.cause or exc)
        field, sep, rest = reason.partition(": ")
        named = bool(sep) and field.replace("_", "").isalnum()
        raise Problem(
            409,
            "action-rejected",
            "The action is not possible now",
            reason,
            field=field if named else "body",
            errors=[{"field": field, "reason": rest}] if named else None,
        ) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            closed = "completed" in exc.message or "closed" in exc.message
            raise Problem(
                409 if closed else 404,
                "claim-closed" if closed else "claim-not-found",
                "The claim is closed" if closed else "Claim not found",
                "The claim's lifecycle has ended; no more actions can be recorded."
                if closed
                else "No such claim (or open negotiation) for this tenant.",
                field="claim_id",
            ) from exc
        raise


async def query_workflow(client: Client, workflow_id: str, query: str, result_type: type[T], what: str) -> T:
    """Query a workflow for an HTTP request; an unknown one is a 404 problem naming ``what``."""
    from temporalio.service import RPCError, RPCStatusCode

    from shared.http import Problem

    try:
        result: T = await _in_time(
            client.get_workflow_handle(workflow_id).query(query, result_type=result_type)
        )
        return result
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise Problem(404, "not-found", "Not found", what, field="claim_id") from exc
        raise


def workflow_runner(*workflows: type) -> SandboxedWorkflowRunner:
    """The workflow sandbox, with the modules that define ``workflows`` passed through.

    By default the sandbox imports a workflow's module afresh for every workflow it starts or
    replays (so module state cannot leak between runs): that re-ran ``@workflow.defn`` over the
    claim workflow's class and its twenty updates (signature inspection) and, with
    ``PYTHONDONTWRITEBYTECODE`` set, compiled the source again, about a fifth of the dispute
    worker's CPU while a burst of claims started. Everything the workflows import was already passed
    through (``workflow.unsafe.imports_passed_through``); their own modules hold only constants, so
    they are imported once, like the rest. The price: code in a passed-through module sees the real
    standard library, so the sandbox no longer stops a ``datetime.now()`` or ``random`` written in
    the workflow modules themselves. The workflow tests (``tests/workflow``) and the replay tests
    run on the strict default sandbox, which does."""
    modules = {w.__module__ for w in workflows}
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*modules)
    return SandboxedWorkflowRunner(restrictions=restrictions)
