"""One way to expose a workflow update over HTTP: the body is the action, the actor comes from the
body, the ``X-Actor`` header or the API key, a refusal is a problem detail (see ``execute_update``),
and an ``Idempotency-Key`` makes a retry return the first answer (see ``shared.idempotency``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel
from sqlalchemy import Table

from shared.idempotency import REPLAYED_RESPONSE_HEADERS, IdempotencyKey, run_idempotent
from shared.ids import BatchIdPath, ClaimIdPath
from shared.lifecycle import Action, actor_of
from shared.logs import log_claim
from shared.openapi import v1_problems
from shared.temporal import execute_update
from shared.tenants import CurrentTenant
from shared.text import ONE_LINE

Actor = Annotated[
    str | None,
    Header(max_length=200, pattern=ONE_LINE, description="who acts (a person's name or email)"),
]


# an action: malformed JSON, no such claim or batch, refused now (or a reused key), no worker
ACTION_PROBLEMS = v1_problems(
    400,
    404,
    409,
    503,
    _404="No such claim or batch for this tenant",
    _409="The action is not possible now (the reason says why), or the Idempotency-Key was first "
    "used with another request",
)


def add_update_route(
    router: APIRouter,
    path: str,
    *,
    update: str,
    body: type[Action],
    result: type[BaseModel],
    workflow_id: Callable[[str, str], str],
    requests_table: Table,
    key: str = "claim_id",
    summary: str,
) -> None:
    """``POST {path}`` runs ``update`` on the workflow ``workflow_id(tenant, <key path parameter>)``;
    ``requests_table`` (the service's ``action_requests``) keeps the answers to idempotency keys."""

    async def endpoint(**params: Any) -> Any:
        tenant = params["tenant"]
        request: Request = params["request"]
        log_claim.set(params[key])
        action = actor_of(params["body"], tenant.tenant_id, params.get("x_actor"))
        target = workflow_id(tenant.tenant_id, params[key])

        async def run(update_id: str | None) -> Any:
            return await execute_update(
                request.app.state.temporal, target, update, action, result, update_id=update_id
            )

        return await run_idempotent(
            request, requests_table, tenant.tenant_id, params.get("idempotency_key"), action, run
        )

    kw = inspect.Parameter.KEYWORD_ONLY
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(key, kw, annotation=BatchIdPath if key == "batch_id" else ClaimIdPath),
            inspect.Parameter("body", kw, annotation=body),
            inspect.Parameter("tenant", kw, annotation=CurrentTenant),
            inspect.Parameter("request", kw, annotation=Request),
            inspect.Parameter("x_actor", kw, annotation=Actor, default=None),
            inspect.Parameter("idempotency_key", kw, annotation=IdempotencyKey, default=None),
        ],
        return_annotation=result,
    )
    endpoint.__name__ = update
    endpoint.__doc__ = summary
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        response_model=result,
        summary=summary,
        responses={
            200: {"description": "The action's result", "headers": REPLAYED_RESPONSE_HEADERS},
            **ACTION_PROBLEMS,
        },
    )
