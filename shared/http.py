"""RFC 9457 problem details and the pieces every service's FastAPI app shares."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping, Sequence
from contextlib import suppress
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

_NAMED_REASON = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$", re.S)
PROBLEM_BASE = "https://idrflow.dev/problems/"
log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error that becomes an ``application/problem+json`` response."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.errors = errors or ([{"field": field, "reason": detail}] if field else [])
        self.headers = headers

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        ctx = e.get("ctx") or {}
        detail = f"The body is not valid JSON: {ctx.get('error', e.get('msg'))} at position {e['loc'][-1]}."
        return problem_response(
            Problem(400, "malformed-json", "Malformed JSON", detail, field="body"), request
        )
    items = []
    for e in errors:
        field = _field_path(e.get("loc", ()))
        reason = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden":
            reason = "unknown field"
        elif e.get("type") == "value_error":
            reason = reason.removeprefix("Value error, ")
            named = _NAMED_REASON.match(reason)
            if named:  # a cross-field rule names the field it blames: "lines[0].service_date: ..."
                sub = named.group(1)
                field = sub if field == "body" else f"{field}.{sub}"
                reason = named.group(2)
        items.append({"field": field, "reason": reason})
    detail = "; ".join(f"{i['field']}: {i['reason']}" for i in items)
    problem = Problem(422, "validation-error", "The request is not valid", detail, errors=items)
    return problem_response(problem, request)


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def _leaf_routes(routes: Sequence[Any]) -> list[Any]:
    """The routes with methods, through included routers (``original_router``) and mounts."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += _leaf_routes(inner.routes)
        elif getattr(route, "methods", None):
            out.append(route)
    return out


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:  # every method of every route on this path, not just the first one's
        methods: set[str] = set()
        for route in _leaf_routes(request.app.router.routes):
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    problem = Problem(
        exc.status_code,
        {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
        titles.get(exc.status_code, "HTTP error"),
        str(exc.detail),
        headers=headers or None,
    )
    return problem_response(problem, request)


# a Temporal server that cannot be reached (restarting, an outage): the request may be retried
UNREACHABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


def temporal_unavailable() -> Problem:
    """The 503 problem for a request whose Temporal server cannot be reached."""
    return Problem(
        503,
        "temporal-unavailable",
        "The workflow service is not reachable",
        "Temporal cannot be reached right now; nothing was applied. Retry the request (with the same "
        "Idempotency-Key).",
        headers={"Retry-After": "5"},
    )


async def _rpc_handler(request: Request, exc: Exception) -> JSONResponse:
    """A Temporal call outside :func:`shared.temporal._in_time` that found the server unreachable:
    503 (retry), never a 500; any other RPC failure is logged and answered as a problem too."""
    if isinstance(exc, RPCError) and exc.status in UNREACHABLE:
        return await _problem_handler(request, temporal_unavailable())
    log.error("Temporal call failed: %s", type(exc).__name__)
    return await _problem_handler(
        request,
        Problem(502, "temporal-error", "The workflow service failed", "Temporal answered with an error."),
    )


def install_problem_handlers(app: FastAPI) -> None:
    from shared.guard import RequestGuard
    from shared.settings import get_settings

    settings = get_settings()
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, max_file_bytes=settings.max_file_bytes
    )
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(RPCError, _rpc_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)


# 19 digits in a row may be an integer beyond 64 bits, which orjson reads as a float and json exactly
_LONG_NUMBER = re.compile(rb"\d{19}")


class _FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if _LONG_NUMBER.search(body) is None:
                with suppress(orjson.JSONDecodeError):
                    self._json = orjson.loads(body)
        # what orjson refuses or would read otherwise (NaN, huge integers) gets json's answer, a
        # body that is not JSON its 400
        return self._json if hasattr(self, "_json") else await super().json()


class FastJSONRoute(APIRoute):
    """A route whose JSON body is parsed by orjson (a 1,000-claim batch in a third of the time),
    with the standard library's answer wherever orjson refuses a body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fast(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return fast


_UNTRACED = ("/metrics", "/healthz")


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The route's path template (``/v1/claims/{claim_id}``), never the raw path: a bounded label.
    ``unmatched`` for a path no route knows (a 404, or a request refused before routing)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    for candidate in _leaf_routes(getattr(app, "routes", None) or ()):
        match, _ = candidate.matches(scope)
        if match != Match.NONE:
            return str(candidate.path)
    return "unmatched"


class ObserveRequests:
    """ASGI middleware: a server span per request (continuing the caller's ``traceparent``) and the
    request counter and latency histogram by method, route template and status."""

    def __init__(self, app: Callable[..., Awaitable[None]], service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, trace

        from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
        from shared.tracing import context_from, tracer

        began = time.perf_counter()
        method = str(scope.get("method", "GET"))
        status = 500
        span = None
        token = None
        if scope.get("path") not in _UNTRACED:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            parent = context_from({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
            span = tracer().start_span(f"{method}", context=parent, kind=trace.SpanKind.SERVER)
            token = context.attach(trace.set_span_in_context(span))

        async def observed_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = route_template(scope)
            labels = (self.service, method, route, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - began)
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "http.route": route,
                        "http.response.status_code": status,
                        "idrflow.service": self.service,
                    }
                )
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                span.end()
            if token is not None:
                context.detach(token)


HealthCheck = Callable[[], Awaitable[bool]]


async def task_running(app: FastAPI, name: str) -> bool:
    """A background loop of the app (its Temporal worker, say) is alive: /healthz turns 503 when it
    died, instead of staying green while nothing is processed."""
    task = getattr(app.state, name, None)
    return task is not None and not task.done()


def install_healthz(app: FastAPI, checks: dict[str, HealthCheck]) -> None:
    """``GET /healthz``: 200 when every dependency answers, 503 with the failing ones otherwise."""

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ok = all(results.values())
        body = {
            "status": "ok" if ok else "unavailable",
            "checks": {k: "ok" if v else "down" for k, v in results.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)


ACTION_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"content": {PROBLEM_JSON: {}}, "description": "Missing or unknown API key"},
    404: {"content": {PROBLEM_JSON: {}}, "description": "No such claim for this tenant"},
    409: {
        "content": {PROBLEM_JSON: {}},
        "description": "The action is not possible now (the reason says why), or the "
        "Idempotency-Key was first used with another request",
    },
    422: {
        "content": {PROBLEM_JSON: {}},
        "description": "Validation error naming each field (or the Idempotency-Key header) and reason",
    },
}
