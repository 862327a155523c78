"""Tables of the dispute service (schema ``dispute``)."""

from __future__ import annotations

from shared.db import inbox_table, outbox_table

SCHEMA = "dispute"

outbox = outbox_table(SCHEMA)
inbox = inbox_table(SCHEMA)
