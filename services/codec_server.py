"""``idrflow codec-server``: Temporal's remote codec endpoint, so the Temporal UI and CLI show
decrypted payloads to operators who hold the payload keys.

The UI (``--ui-codec-endpoint``, or each operator's browser setting) and the CLI
(``temporal workflow show --codec-endpoint``) POST ``{"payloads": [...]}`` (protobuf JSON) to
``/decode`` or ``/encode`` and get the same shape back. The server runs where the keys are (an
operator's machine, or next to the services), binds to localhost by default, answers only the
browser origins in ``IDRFLOW_CODEC_CORS_ORIGINS`` and, when ``IDRFLOW_CODEC_TOKEN`` is set, only
requests with ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import typer
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads

from shared.codec import EncryptionCodec, PayloadKeyError, build_codec, new_key_entry
from shared.http import install_problem_handlers
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    s = settings or get_settings()
    codec = build_codec(s.payload_keys.get_secret_value(), s.payload_key_id)
    token = s.codec_token.get_secret_value() if s.codec_token else None
    app = FastAPI(
        title="idrflow payload codec",
        version="0.1.0",
        description="Temporal remote codec: decrypts and encrypts workflow payloads for the UI and CLI.",
    )
    install_problem_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=s.codec_cors_origins,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,
    )

    def check(request: Request) -> EncryptionCodec:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise HTTPException(401, "a bearer token is required (IDRFLOW_CODEC_TOKEN)")
        if codec is None:
            raise HTTPException(503, "no payload keys configured (IDRFLOW_PAYLOAD_KEYS)")
        return codec

    async def payloads_of(request: Request) -> Payloads:
        try:
            body = await request.json()
            return ParseDict(body, Payloads())
        except (ValueError, ParseError) as exc:
            raise HTTPException(422, f"payloads: not a Temporal Payloads JSON document ({exc})") from None

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "keys": list(codec.key_ids) if codec else []}

    @app.post("/decode")
    async def decode(request: Request) -> dict[str, Any]:
        c = check(request)
        payloads = await payloads_of(request)
        try:
            out = await c.decode(payloads.payloads)
        except PayloadKeyError as exc:
            raise HTTPException(422, str(exc)) from None
        except Exception:  # a tampered or truncated payload: cryptography's InvalidTag
            raise HTTPException(422, "payloads: a payload does not decrypt with its key") from None
        return MessageToDict(Payloads(payloads=out))

    @app.post("/encode")
    async def encode(request: Request) -> dict[str, Any]:
        c = check(request)
        payloads = await payloads_of(request)
        return MessageToDict(Payloads(payloads=await c.encode(payloads.payloads)))

    return app


codec_app = typer.Typer(help="Payload encryption keys and the remote codec endpoint.", no_args_is_help=True)


@codec_app.command("new-key")
def new_key(key_id: str = typer.Argument(..., help="a name for the key, e.g. k2026-12")) -> None:
    """Print a fresh ``id:base64`` entry for IDRFLOW_PAYLOAD_KEYS (a random 256-bit AES key)."""
    typer.echo(new_key_entry(key_id))


@codec_app.command("serve")
def serve(
    port: int | None = typer.Option(None, help="default: IDRFLOW_CODEC_PORT (8005)"),
    host: str = typer.Option("127.0.0.1", help="bind address; keep it local unless behind TLS"),
) -> None:
    """Run the codec endpoint for the Temporal UI (--ui-codec-endpoint) and CLI (--codec-endpoint)."""
    import uvicorn

    s = get_settings()
    uvicorn.run(create_app(s), host=host, port=port or s.codec_port, log_level="warning")
