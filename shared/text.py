"""Text that goes into records, emails and Slack: control characters are refused (issue 10 item 5).

A newline in a payer name broke every email header for that claim; a NUL cannot be stored. Names
and one-line values allow none; free text (reasons, details) allows tab and newline only. The
OpenAPI documents carry the same rule as a pattern (``ONE_LINE``, ``FREE_TEXT``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")
_FREE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
FREE_TEXT_FIELDS = frozenset({"reason", "detail"})
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
FREE_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"


def check_text(value: str, *, multiline: bool = False) -> str:
    bad = (_FREE_TEXT if multiline else _ONE_LINE).search(value)
    if bad:
        raise ValueError(f"contains a control character (U+{ord(bad.group()):04X})")
    return value


OneLine = Annotated[str, AfterValidator(check_text), Field(json_schema_extra={"pattern": ONE_LINE})]


def _plain_string(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" and not ({"pattern", "enum", "const", "format"} & set(schema))


def text_patterns(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a model whose every string field is checked with :func:`check_text`:
    each plain string property (or string branch of an ``anyOf``) gets the matching pattern."""
    for name, prop in schema.get("properties", {}).items():
        pattern = FREE_TEXT if name in FREE_TEXT_FIELDS else ONE_LINE
        for branch in (prop, *prop.get("anyOf", ())):
            if _plain_string(branch):
                branch["pattern"] = pattern
