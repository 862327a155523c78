"""Money values: what JSON and Python code may send, and that the constraints stay in pydantic-core."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.openapi import Money, PositiveMoney, QueryMoney

pytestmark = pytest.mark.unit

MONEY: TypeAdapter[Decimal] = TypeAdapter(Money)
POSITIVE: TypeAdapter[Decimal] = TypeAdapter(PositiveMoney)
QUERY: TypeAdapter[Decimal] = TypeAdapter(QueryMoney)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1500.00", Decimal("1500.00")),
        (12, Decimal(12)),
        ("0", Decimal(0)),
        (Decimal("1.50"), Decimal("1.50")),
    ],
)
def test_amounts_taken(value: Any, expected: Decimal) -> None:
    assert MONEY.validate_python(value) == expected


@pytest.mark.parametrize(
    ("adapter", "value", "reason"),
    [
        (MONEY, "10.001", "no more than 2 decimal places"),
        (MONEY, 1.5, "binary float"),
        (MONEY, "-1", "greater than or equal to 0"),
        # Python code (a parsed 835, an action built in code) hands Decimals over: the constraints check them
        (MONEY, Decimal("1.001"), "no more than 2 decimal places"),
        (MONEY, Decimal("-0.01"), "greater than or equal to 0"),
        (MONEY, Decimal("12345678901"), "10 digits before the decimal point"),
        (MONEY, 10**10, "10 digits before the decimal point"),
        (MONEY, Decimal("NaN"), "finite number"),
        (POSITIVE, 0, "greater than 0"),
        (POSITIVE, Decimal(0), "greater than 0"),
        (QUERY, "1.001", "expected a decimal string"),
        (QUERY, Decimal("1.001"), "no more than 2 decimal places"),
    ],
)
def test_amounts_refused_with_the_reason(adapter: TypeAdapter[Decimal], value: Any, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        adapter.validate_python(value)
    assert reason in str(refused.value)


def test_the_decimal_constraints_are_checked_in_pydantic_core() -> None:
    """Constraints written after the BeforeValidator become Python validators (twice a claim's
    amount checking); before it they stay in the core decimal schema."""

    def decimal_schemas(schema: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(schema, dict):
            if schema.get("type") == "decimal":
                found.append(schema)
            for value in schema.values():
                found += decimal_schemas(value)
        elif isinstance(schema, list):
            for value in schema:
                found += decimal_schemas(value)
        return found

    for adapter in (MONEY, POSITIVE, QUERY):
        (core,) = decimal_schemas(adapter.core_schema)
        assert core.get("max_digits") == 12 and core.get("decimal_places") == 2
        assert "ge" in core or "gt" in core
