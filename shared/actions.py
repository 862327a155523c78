"""One way to expose a workflow update over HTTP: the body is the action, the actor comes from the
body, the ``X-Actor`` header or the API key, and a refusal is a problem detail (see ``execute_update``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from shared.lifecycle import Action, actor_of
from shared.temporal import execute_update
from shared.tenants import CurrentTenant

Actor = Annotated[str | None, Header(max_length=200, description="who acts (a person's name or email)")]


def add_update_route(
    router: APIRouter,
    path: str,
    *,
    update: str,
    body: type[Action],
    result: type[BaseModel],
    workflow_id: Callable[[str, str], str],
    key: str = "claim_id",
    summary: str,
) -> None:
    """``POST {path}`` runs ``update`` on the workflow ``workflow_id(tenant, <key path parameter>)``."""

    async def endpoint(**params: Any) -> Any:
        tenant = params["tenant"]
        action: Action = params["body"]
        return await execute_update(
            params["request"].app.state.temporal,
            workflow_id(tenant.tenant_id, params[key]),
            update,
            actor_of(action, tenant.tenant_id, params.get("x_actor")),
            result,
        )

    kw = inspect.Parameter.KEYWORD_ONLY
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(key, kw, annotation=str),
            inspect.Parameter("body", kw, annotation=body),
            inspect.Parameter("tenant", kw, annotation=CurrentTenant),
            inspect.Parameter("request", kw, annotation=Request),
            inspect.Parameter("x_actor", kw, annotation=Actor, default=None),
        ],
        return_annotation=result,
    )
    endpoint.__name__ = update
    endpoint.__doc__ = summary
    router.add_api_route(path, endpoint, methods=["POST"], response_model=result, summary=summary)
