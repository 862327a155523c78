"""Start-up helpers every service process uses: logging and waiting for dependencies."""

from __future__ import annotations

import asyncio
import logging
import sys

from temporalio.client import Client

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


async def connect_temporal(settings: Settings, attempts: int = 60) -> Client:
    """Connect to Temporal, waiting up to ``attempts`` seconds for it to come up."""
    for attempt in range(1, attempts + 1):
        try:
            return await connect(settings)
        except Exception as exc:
            if attempt == attempts:
                raise
            log.info("waiting for Temporal at %s: %s", settings.temporal_address, exc)
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
