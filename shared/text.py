"""Text that goes into records, emails and Slack: control characters are refused (issue 10 item 5).

A newline in a payer name broke every email header for that claim; a NUL cannot be stored. Names
and one-line values allow none; free text (reasons, details) allows tab and newline only."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")
_FREE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
FREE_TEXT_FIELDS = frozenset({"reason", "detail"})


def check_text(value: str, *, multiline: bool = False) -> str:
    bad = (_FREE_TEXT if multiline else _ONE_LINE).search(value)
    if bad:
        raise ValueError(f"contains a control character (U+{ord(bad.group()):04X})")
    return value


OneLine = Annotated[str, AfterValidator(check_text)]
