"""Start-up helpers every service process uses: logging and waiting for dependencies."""

from __future__ import annotations

import asyncio
import logging
import sys

from temporalio.client import Client

from shared.settings import Settings
from shared.temporal import connect

log = logging.getLogger(__name__)


def configure_logging(service: str, level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stdout,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
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
