"""The shapes of tenant, claim and batch ids (issue 10 item 6). Workflow ids are built as
``claim:{tenant}:{claim}``; no id may contain the ``:`` separator, so two tenants' ids can never
produce the same workflow id (tenant ``north`` + claim ``east:C1`` against tenant ``north:east`` +
claim ``C1``). Checked when a tenant is created, when a claim is taken in, and on every path."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

TENANT_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
CLAIM_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # intake's claim id; batch ids have the same shape

_TENANT = re.compile(TENANT_ID)

ClaimIdPath = Annotated[
    str, Path(pattern=CLAIM_ID, max_length=64, description="the claim id (letters, digits, . _ -)")
]
BatchIdPath = Annotated[
    str, Path(pattern=CLAIM_ID, max_length=64, description="the batch id (letters, digits, . _ -)")
]


def valid_tenant_id(tenant_id: str) -> bool:
    return bool(_TENANT.match(tenant_id))


def check_tenant_id(tenant_id: str) -> str:
    if not valid_tenant_id(tenant_id):
        raise ValueError(
            f"tenant id {tenant_id!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return tenant_id
