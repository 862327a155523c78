"""OpenTelemetry traces (issue 10 item 7): one trace from the HTTP request through the outbox, Kafka,
the consumer, the Temporal workflow and its activities to the delivery.

- The HTTP middleware (:class:`shared.http.ObserveRequests`) starts a server span from the caller's
  ``traceparent``.
- :func:`shared.kafka.outbox.add_to_outbox` stores the current ``traceparent`` beside the envelope in
  the outbox row's JSON (``"_headers"``); the relay publishes it as a Kafka header from a producer span.
- The consumer loop extracts it and runs the handler in a consumer span, so a Temporal call made by
  the handler carries it on (``TracingInterceptor`` on the client, hence on its workers), and an
  activity that writes an event to an outbox stores its own span's ``traceparent`` there.

Spans carry ids, topics, routes and event types, never patient data. Where they go is a setting
(``IDRFLOW_TRACES_EXPORTER``): ``none`` (ids still made, so logs carry a ``trace_id``), ``console``,
``jsonl`` (OTLP-JSON, one span a line, appended to ``IDRFLOW_TRACES_FILE``; an OpenTelemetry
collector's ``otlpjsonfile`` receiver reads the same files) or ``otlp`` (needs
``opentelemetry-exporter-otlp-proto-http``; the endpoint from ``OTEL_EXPORTER_OTLP_ENDPOINT``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import Settings, get_settings

TRACER_NAME = "idrflow"
HEADER_KEYS = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_exporters: set[str] = set()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def provider(service: str) -> TracerProvider:
    """The process's SDK tracer provider, set once (the first caller names the service)."""
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        made = TracerProvider(resource=Resource.create({"service.name": f"idrflow-{service}"}))
        trace.set_tracer_provider(made)
        return made


def configure_tracing(service: str, settings: Settings | None = None) -> TracerProvider:
    """Install the provider and the configured exporter; calling it again adds nothing."""
    s = settings or get_settings()
    tp = provider(service)
    kind = s.traces_exporter
    key = f"{kind}:{s.traces_file}" if kind == "jsonl" else kind
    with _lock:
        if kind == "none" or key in _exporters:
            return tp
        _exporters.add(key)
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "jsonl":
        exporter = JsonLinesExporter(s.traces_file)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter()
    add_processor(tp, BatchSpanProcessor(exporter))
    return tp


def add_processor(tp: TracerProvider, processor: SpanProcessor) -> None:
    tp.add_span_processor(processor)


# -- propagation ----------------------------------------------------------------------------------
def current_headers() -> dict[str, str]:
    """The current span's W3C ``traceparent`` (and ``tracestate``), empty without a span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str] | None) -> Context | None:
    """The remote parent named by a ``traceparent`` carrier, or None."""
    if not carrier or "traceparent" not in carrier:
        return None
    return _propagator.extract(dict(carrier))


def kafka_headers(carrier: Mapping[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in carrier.items() if k in HEADER_KEYS]


def from_kafka_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in headers or () if k in HEADER_KEYS}


def trace_id() -> str | None:
    """The current trace id (32 hex digits), for log lines."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# -- the JSON-lines exporter ----------------------------------------------------------------------
def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (attrs or {}).items()]


def otlp_json(span: ReadableSpan) -> dict[str, Any]:
    """One span as an OTLP-JSON ``ExportTraceServiceRequest`` (trace and span ids in hex)."""
    ctx = span.get_span_context()
    assert ctx is not None
    body: dict[str, Any] = {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP numbers SPAN_KIND_INTERNAL as 1
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "status": {"code": span.status.status_code.value},
    }
    if span.parent is not None:
        body["parentSpanId"] = format(span.parent.span_id, "016x")
    if span.status.description:
        body["status"]["message"] = span.status.description
    if span.links:
        body["links"] = [
            {"traceId": format(link.context.trace_id, "032x"), "spanId": format(link.context.span_id, "016x")}
            for link in span.links
        ]
    scope = span.instrumentation_scope.name if span.instrumentation_scope else TRACER_NAME
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(span.resource.attributes)},
                "scopeSpans": [{"scope": {"name": scope}, "spans": [body]}],
            }
        ]
    }


class JsonLinesExporter(SpanExporter):
    """Appends each span as one OTLP-JSON line; several processes may share the file (each batch is
    one ``write`` to a file opened for appending)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(otlp_json(s), separators=(",", ":")) + "\n" for s in spans)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def worker_interceptors(client: Any) -> list[Any]:
    """A worker's tracing interceptor: none when its client has one (workers inherit the client's),
    else one of its own, so a worker built on any client traces its workflows and activities."""
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if any(isinstance(i, TracingInterceptor) for i in client.config().get("interceptors", ())):
        return []
    return [TracingInterceptor()]


def delivery_span(envelope: Mapping[str, Any], channel: str) -> Any:
    """A span for sending one stored alert, continuing the trace kept beside its envelope JSON
    (``"_headers"``, as :func:`shared.kafka.outbox.with_trace_headers` writes it); use it as a
    context manager around the channel call."""
    carrier = envelope.get("_headers")
    parent = context_from(carrier if isinstance(carrier, Mapping) else None)
    return tracer().start_as_current_span(
        f"deliver {channel}",
        context=parent,
        kind=trace.SpanKind.CLIENT,
        record_exception=False,
        attributes={
            "idrflow.channel": channel,
            "idrflow.event_id": str(envelope.get("event_id", "")),
            "idrflow.event_type": str(envelope.get("event_type", ""))[:100],
        },
    )
