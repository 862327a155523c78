"""Start-up helpers every service process uses: logging, the Temporal runtime (its SDK metrics
forwarded to ``/metrics``) and waiting for dependencies."""

from __future__ import annotations

import asyncio
import logging
import sys

from temporalio.client import Client
from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig

from shared.settings import Settings
from shared.temporal import connect

log = logging.getLogger(__name__)


def configure_logging(service: str, level: int = logging.INFO, fmt: str | None = None) -> None:
    """JSON lines with the correlation id, tenant and claim (``IDRFLOW_LOG_FORMAT=json``, the
    default), or plain text for reading by eye (``text``)."""
    from shared.logs import JsonFormatter
    from shared.settings import get_settings

    handler = logging.StreamHandler(sys.stdout)
    if (fmt or get_settings().log_format) == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("temporalio").setLevel(logging.WARNING)


_runtime: Runtime | None = None


def temporal_runtime() -> Runtime:
    """The process's Temporal runtime, made once and set as the default for the clients made after
    it: the SDK's metrics go to a buffer that :data:`shared.metrics.TEMPORAL` drains into the
    service's own ``/metrics`` (``temporal_*`` families; no separate port)."""
    global _runtime
    if _runtime is None:
        from shared.metrics import TEMPORAL

        buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
        _runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
        TEMPORAL.attach(buffer)
        Runtime.set_default(_runtime, error_if_already_set=False)
    return _runtime


async def connect_temporal(settings: Settings, attempts: int = 60) -> Client:
    """Connect to Temporal, waiting up to ``attempts`` seconds for it to come up."""
    temporal_runtime()
    for attempt in range(1, attempts + 1):
        try:
            return await connect(settings)
        except Exception as exc:
            if attempt == attempts:
                raise
            log.info("waiting for Temporal at %s: %s", settings.temporal_address, exc)
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
