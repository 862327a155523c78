"""JSON log lines carry the correlation id, tenant and claim, and the caller's extra fields."""

from __future__ import annotations

import json
import logging

from shared.logs import JsonFormatter, correlation_id, log_claim, log_tenant


def test_a_log_line_is_one_json_object_with_its_context() -> None:
    tokens = (correlation_id.set("req-1"), log_tenant.set("metro-em"), log_claim.set("CLM-1001"))
    try:
        record = logging.makeLogRecord(
            {"name": "t", "levelname": "INFO", "msg": "stage %s", "args": ("paid",), "event_id": "e-1"}
        )
        line = json.loads(JsonFormatter("dispute").format(record))
    finally:
        correlation_id.reset(tokens[0])
        log_tenant.reset(tokens[1])
        log_claim.reset(tokens[2])
    assert line["message"] == "stage paid" and line["service"] == "dispute"
    assert (line["correlation_id"], line["tenant_id"], line["claim_id"]) == ("req-1", "metro-em", "CLM-1001")
    assert line["event_id"] == "e-1"
