"""Request hygiene every service's app shares, applied before a route runs (issue 10 item 5):

- a body larger than ``max_body_bytes`` is refused with 413 before it is parsed (by its
  Content-Length, or while it streams in);
- a request to ``/v1`` without an ``Authorization`` header is refused with 401 before its body is
  read (the key itself is checked by the route's tenant dependency);
- a NUL character (raw, percent-encoded or a JSON ``\\u0000`` escape) in the path, the query or the
  body is refused with 422: PostgreSQL cannot store it, and it is never meaningful in this API.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shared.http import PROBLEM_BASE, PROBLEM_JSON
from shared.logs import correlation_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_NUL_QUERY = re.compile(rb"%00|\x00", re.I)
_NUL_BODY = re.compile(rb"\x00|\\u0000", re.I)


async def _problem(
    send: Send, path: str, status: int, type_: str, title: str, detail: str, field: str
) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_BASE + type_,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
            "errors": [{"field": field, "reason": detail}],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _with_request_id(send: Send, request_id: str) -> Send:
    """Every answer carries ``X-Request-ID``: the caller's, or one made here (it is in the logs)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        await send(message)

    return wrapped


# integration files (835, 837, FHIR, batches) may be larger, and an X12 file in UTF-16 holds NUL
# bytes: these paths get ``max_file_bytes`` and leave the NUL check to the parser (which decodes)
FILE_PATHS = ("/v1/remittances", "/v1/claims/x12", "/v1/fhir/", "/v1/claims:batch")


def _method_allowed(scope: Scope) -> bool:
    """False when a route has this path but not this method: the router answers 405 (with Allow)
    before it would read the body, so the body's content cannot be what is wrong."""
    from starlette.routing import Match

    from shared.http import _leaf_routes

    app = scope.get("app")
    router = getattr(app, "router", None)
    if router is None:
        return True
    path_only = False
    for route in _leaf_routes(router.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return True
        path_only = path_only or match == Match.PARTIAL
    return not path_only


class RequestGuard:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int = 1_048_576, max_file_bytes: int = 52_428_800
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_file_bytes = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and len(given) <= 100 and given.isprintable() else uuid.uuid4().hex
        correlation_id.set(request_id)
        send = _with_request_id(send, request_id)
        path: str = scope.get("path", "")
        raw_path: bytes = scope.get("raw_path") or path.encode()
        if _NUL_QUERY.search(raw_path) or "\x00" in path:
            await _problem(
                send,
                path,
                422,
                "validation-error",
                "The request is not valid",
                "path: contains a NUL character",
                "path",
            )
            return
        if _NUL_QUERY.search(scope.get("query_string", b"")):
            await _problem(
                send,
                path,
                422,
                "validation-error",
                "The request is not valid",
                "query: contains a NUL character",
                "query",
            )
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if path.startswith("/v1") and not headers.get(b"authorization", b"").strip():
            await _problem(
                send,
                path,
                401,
                "unauthenticated",
                "Authentication required",
                "Send 'Authorization: Bearer <API key>'.",
                "Authorization",
            )
            return
        length = headers.get(b"content-length")
        is_file = path.startswith(FILE_PATHS) and not path.endswith("/apply")
        limit = self.max_file_bytes if is_file else self.max_body_bytes
        too_big = f"body: larger than {limit} bytes"
        if length is not None and length.isdigit() and int(length) > limit:
            await _problem(send, path, 413, "payload-too-large", "The body is too large", too_big, "body")
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _problem(send, path, 413, "payload-too-large", "The body is too large", too_big, "body")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not is_file and _NUL_BODY.search(body) and _method_allowed(scope):
            await _problem(
                send,
                path,
                422,
                "validation-error",
                "The request is not valid",
                "body: contains a NUL character",
                "body",
            )
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
