"""The OpenAPI documents say exactly what the validators accept (issue 10 item 5).

Every value type here validates the same set of JSON values its JSON Schema describes, so a client
generated from ``/openapi.json`` (or a fuzzer) never sends a schema-valid request that is refused,
nor a schema-invalid one that is taken:

- money: a decimal string (``"1500.00"``, at most 10 digits before the point and 2 after, no
  exponent, no sign) or a whole JSON number; a JSON number with a fraction is a binary float and is
  refused (send the string);
- dates: ``YYYY-MM-DD`` only (no timestamps, no week dates); calendar dates also within the years
  the business-day calendar counts;
- integers and booleans in bodies: JSON integers and booleans only (no ``"1"``, no ``"yes"``);
  in the query: the digits, or ``true``/``false``;
- the problem details every route can answer, declared with their schema
  (``application/problem+json``).

Regular expressions use only what ECMA-262, Python and Rust agree on (character classes, ``{m,n}``,
alternation); whitespace is the Unicode White_Space set, spelled out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, create_model
from pydantic.fields import FieldInfo

PROBLEM_JSON = "application/problem+json"

# -- whitespace and text ----------------------------------------------------------------------
# Unicode White_Space: what pydantic's str_strip_whitespace (Rust's str::trim) removes
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_WS_CLASS = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WS = f"[{_WS_CLASS}]*"


def stripped(core: str) -> str:
    """The pattern of a value that, stripped of surrounding whitespace, fully matches ``core``."""
    return f"^{WS}(?:{core}){WS}$"


def strip(value: str) -> str:
    return value.strip(WHITE_SPACE)


# -- money ------------------------------------------------------------------------------------
MONEY_MAX = 9_999_999_999  # NUMERIC(12, 2)
MONEY = r"^(?:0|[1-9][0-9]{0,9})(?:\.[0-9]{1,2})?$"
POSITIVE_MONEY = r"^(?:0\.(?:0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?)$"
_MONEY_HINT = (
    'a decimal string like "1500.00" (at most 10 digits before the point, 2 after) or a whole number'
)


_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def _money_reason(value: str, positive: bool) -> str:
    """Why a string is not an amount, as precisely as it can be said."""
    m = _DECIMAL.fullmatch(value)
    if m is None:
        return f"expected {_MONEY_HINT}"
    sign, whole, fraction = m.groups()
    if fraction is not None and len(fraction) > 2:
        return "no more than 2 decimal places"
    if len(whole.lstrip("0")) > 10:
        return "no more than 10 digits before the decimal point"
    if sign or (positive and re.fullmatch(MONEY, value)):
        return "must be greater than 0" if positive else "must be greater than or equal to 0"
    return f"expected {_MONEY_HINT}, without leading zeros"


def _money_check(positive: bool) -> Callable[[Any], Any]:
    pattern = re.compile(POSITIVE_MONEY if positive else MONEY)

    def check(value: Any) -> Any:
        if isinstance(value, Decimal):  # from Python code: the Field constraints check it
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected {_MONEY_HINT}")
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise ValueError(
                'a JSON number with a fraction is a binary float; send the amount as a string, e.g. "1500.25"'
            )
        if isinstance(value, str):
            if pattern.fullmatch(value):
                return Decimal(value)
            raise ValueError(_money_reason(value, positive))
        raise ValueError(f"expected {_MONEY_HINT}")

    return check


def money_schema(positive: bool = False, *, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "anyOf": [
            {"type": "integer", "minimum": 1 if positive else 0, "maximum": MONEY_MAX},
            {"type": "string", "pattern": POSITIVE_MONEY if positive else MONEY},
        ]
    }
    if description:
        schema["description"] = description
    return schema


# The constraints come before the BeforeValidator so they stay in pydantic-core's decimal schema
# (checked in Rust); after it they would run as Python validators, about twice the cost of a claim's
# amounts. The check still runs first: an annotation wraps the ones before it.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    BeforeValidator(_money_check(False)),
    WithJsonSchema(money_schema()),
]
PositiveMoney = Annotated[
    Decimal,
    Field(gt=0, max_digits=12, decimal_places=2),
    BeforeValidator(_money_check(True)),
    WithJsonSchema(money_schema(True)),
]


def _query_money(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(MONEY, value):
        raise ValueError(f"expected {_MONEY_HINT}")
    return value


# a money value in the query string: always text
QueryMoney = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    BeforeValidator(_query_money),
    WithJsonSchema({"type": "string", "pattern": MONEY}),
]

# -- dates ------------------------------------------------------------------------------------
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO_DATE = re.compile(ISO_DATE)


def year_pattern(first: int, last: int) -> str:
    return "(?:" + "|".join(str(y) for y in range(first, last + 1)) + ")"


def parse_date(value: Any) -> Any:
    """``YYYY-MM-DD`` (or a ``date`` from Python code): no timestamps, times or other forms."""
    if isinstance(value, datetime):
        raise ValueError("expected a date without a time, YYYY-MM-DD")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value} is not a valid date") from None
    raise ValueError("expected a date as YYYY-MM-DD")


def date_schema(first_year: int | None = None, last_year: int | None = None) -> dict[str, Any]:
    if first_year is None or last_year is None:
        return {"type": "string", "format": "date", "pattern": ISO_DATE}
    years = year_pattern(first_year, last_year)
    return {
        "type": "string",
        "format": "date",
        "pattern": f"^{years}-[0-9]{{2}}-[0-9]{{2}}$",
        "description": f"YYYY-MM-DD, {first_year}-01-01..{last_year}-12-31 (the business-day calendar)",
    }


IsoDate = Annotated[date, BeforeValidator(parse_date), WithJsonSchema(date_schema())]

# -- integers and booleans ----------------------------------------------------------------------
_DIGITS = re.compile(r"[0-9]{1,19}")


def json_int(value: Any) -> Any:
    """A JSON integer (``2.0`` is one too); not a string, not a boolean, not a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    return value


def json_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def query_int(value: Any) -> Any:
    """An integer in the query or the path: its digits and nothing else."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("expected a whole number (digits only)")
    return value


def query_bool(value: Any) -> Any:
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("expected true or false")
    return value


def query_date(value: Any) -> Any:
    return parse_date(value)


JsonInt = Annotated[int, BeforeValidator(json_int)]
JsonBool = Annotated[bool, BeforeValidator(json_bool)]

# -- rules models taken as HTTP bodies -----------------------------------------------------
_EXACT: dict[Any, Any] = {
    date: IsoDate,
    date | None: IsoDate | None,
    bool: JsonBool,
    bool | None: JsonBool | None,
    int: JsonInt,
    int | None: JsonInt | None,
}


def exact_input(
    model: type[BaseModel], name: str, *, date_type: Any = None, **overrides: tuple[Any, Any]
) -> Any:
    """``model`` as an HTTP body whose OpenAPI schema is what it accepts: dates only as YYYY-MM-DD
    (or ``date_type``, e.g. the calendar's dates), integers and booleans only as JSON integers and
    booleans (no ``"1"``, ``"yes"``, timestamps); ``overrides`` replace fields (type, FieldInfo).
    A subclass, so the rules take it as it is; their own checks (dates in order, ...) still run."""
    exact_types = dict(_EXACT)
    if date_type is not None:
        exact_types[date] = date_type
        exact_types[date | None] = date_type | None
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        exact = exact_types.get(info.annotation)
        if exact is not None:
            kept = FieldInfo.merge_field_infos(info, annotation=exact)
            fields[field_name] = (exact, kept)
    fields.update(overrides)
    return create_model(name, __base__=model, __module__=model.__module__, **fields)


# -- problem details ------------------------------------------------------------------------
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; errors name each field and the reason",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON (the problem names the position)",
    401: "Missing or unknown API key (sent as 'Authorization: Bearer <key>')",
    404: "No such claim, batch or record for this tenant",
    405: "Method not allowed (Allow lists the methods of the path)",
    409: "Not possible now (the reason says why), or the Idempotency-Key was first used with another request",
    413: "The body is larger than IDRFLOW_MAX_BODY_BYTES",
    415: "The body is not a format this endpoint takes",
    422: "Validation error naming each field and reason (a NUL character anywhere included)",
    503: "The workflow worker did not answer in time: retry with the same Idempotency-Key",
}

# what every /v1 route can answer: before the route runs (the request guard, the router) or in
# the tenant dependency
V1 = (401, 405, 413, 422)


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses, each an ``application/problem+json`` problem;
    ``descriptions`` (``_409="..."``) override the generic text."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        out[status] = {
            "description": descriptions.get(f"_{status}") or PROBLEM_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
    return out


def v1_problems(*extra: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    return problems(*V1, *extra, **descriptions)
