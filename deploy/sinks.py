"""Local stand-ins for the outside world: an SMTP server (aiosmtpd) and a Slack incoming-webhook
receiver. ``make run`` starts both so a new user can read the alerts that arrived; the e2e tests use
them to check what was delivered. Each message is kept in memory and written to a folder."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _MailHandler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.sink.add(message, raw)
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(_MailHandler(self), hostname="127.0.0.1", port=port)

    def add(self, message: EmailMessage, raw: bytes) -> None:
        with self._lock:
            self.messages.append(message)
            n = len(self.messages)
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{n:05d}.eml").write_bytes(raw)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class SlackSink:
    """Answers POSTs like a Slack incoming webhook ("ok"), keeping each JSON body."""

    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self.folder = folder
        self.posts: list[dict[str, Any]] = []
        self.fail_next = 0  # tests: answer 500 to this many posts
        # tests: called with each accepted post before the answer goes back (a chaos test kills the
        # notifier here: Slack has the post, the notifier never hears that it was accepted)
        self.on_post: Callable[[dict[str, Any]], None] | None = None
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"internal_error")
                    return
                post = json.loads(body or b"{}")
                with sink.lock:
                    sink.add(post)
                if sink.on_post is not None:
                    sink.on_post(post)
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, post: dict[str, Any]) -> None:
        self.posts.append(post)
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{len(self.posts):05d}.json").write_text(json.dumps(post, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/local"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
