from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from deploy.devstack import Stack

SAMPLE: dict[str, Any] = {
    "claim_id": "CLM-1001",
    "source_system": "ehr-demo",
    "payer": {
        "name": "Acme Health Plan",
        "plan_type": "self_insured_erisa",
        "contact_email": "idr@acme.example",
    },
    "provider": {"npi": "1234567893", "tin": "123456789", "name": "Metro Emergency Physicians"},
    "service_category": "emergency",
    "state": "TX",
    "bill_sent_on": "2026-10-01",
    "initial_payment_received_on": "2026-11-02",
    "lines": [
        {
            "service_code": "99285",
            "code_system": "CPT",
            "service_date": "2026-09-28",
            "billed": "2400.00",
            "paid": "350.00",
            "qpa": "410.00",
        }
    ],
}


def claim(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SAMPLE)
    body.update(changes)
    return body


@pytest.fixture
async def intake(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    from services.intake.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://intake",
        headers={"Authorization": f"Bearer {stack.api_key}"},  # type: ignore[attr-defined]
    ) as client:
        yield client


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body)
