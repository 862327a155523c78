"""JSON logs with a correlation id, trace id, tenant and claim (issue 10 item 7): one object a line, never
patient data (only what the caller puts in the message or in ``extra``: ids, codes, stages)."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
log_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("log_tenant", default=None)
log_claim: contextvars.ContextVar[str | None] = contextvars.ContextVar("log_claim", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (
            ("correlation_id", correlation_id),
            ("tenant_id", log_tenant),
            ("claim_id", log_claim),
        ):
            value = var.get()
            if value:
                out[key] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # the OpenTelemetry trace this line belongs to (shared/tracing.py)
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        for key, value in vars(record).items():  # extra={...} of the call
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, str | int | float | bool) or value is None else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)
