"""Reading X12 element values leniently: money, dates and composites, with warnings instead of
exceptions. Shared by the 835 and 837 parsers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from .model import ParseWarning
from .tokenizer import Chunk

# component separators seen in the wild when the declared one is not used
_ALT_COMPONENTS = (":", ">", "<", "^", "|", "\\", "!", "}", "`")


def where(n: int, tag: str, element: str | None = None) -> str:
    return f"segment {n} ({tag}) {element}" if element else f"segment {n} ({tag})"


class Values:
    """Per-file reading state: the warnings so far, the component separator actually in use, and a
    cache of parsed dates (remittances repeat the same few dates thousands of times; only valid
    dates are cached, an invalid one is reported where it is). The 835 hot loop reads ``dates``
    directly and calls ``day`` on a miss.

    Amounts are not cached: in a remittance most amounts are distinct, and a cache of them was
    measured slower (the retained strings cost more than the conversions saved)."""

    def __init__(self, warnings: list[ParseWarning]) -> None:
        self.warnings = warnings
        self.element = "*"
        self.component = ":"
        self.declared_component = ":"
        self.dates: dict[str, date] = {}
        self._component_warned = False

    def start(self, chunk: Chunk) -> None:
        self.element = chunk.delimiters.element
        self.component = self.declared_component = chunk.delimiters.component
        self._component_warned = False

    def warn(self, code: str, message: str, n: int, tag: str, element: str | None = None) -> None:
        self.warnings.append(ParseWarning(code, message, where(n, tag, element), n))

    def money(self, els: list[str], k: int, n: int) -> Decimal | None:
        """Element ``k`` as Decimal; None when absent; a warning and None when not a number."""
        if k >= len(els):
            return None
        value = els[k]
        if not value:
            return None
        amount = self.amount(value)
        if amount is None:
            tag = els[0]
            self.warn("invalid_amount", f"{value[:20]!r} is not an amount", n, tag, f"{tag}{k:02d}")
        return amount

    def amount(self, value: str) -> Decimal | None:
        """``value`` as a finite Decimal (no ``_`` digit separators); None when it is not one. No
        warning: the caller reports it."""
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return None
        if amount.is_finite() and "_" not in value:
            return amount
        return None

    def text(self, els: list[str], k: int) -> str | None:
        if k >= len(els):
            return None
        return els[k].strip() or None

    def day(self, value: str, n: int, tag: str, element: str) -> date | None:
        """A D8 (CCYYMMDD) date, or YYMMDD as in ISA09; a warning and None when not a real date."""
        try:
            return self.dates[value]
        except KeyError:
            pass
        day: date | None = None
        v = value.strip()
        try:
            if len(v) == 8 and v.isdigit():
                day = date(int(v[:4]), int(v[4:6]), int(v[6:]))
            elif len(v) == 6 and v.isdigit():
                year = int(v[:2])
                day = date(2000 + year if year < 50 else 1900 + year, int(v[2:4]), int(v[4:]))
        except ValueError:
            day = None
        if day is None:
            self.warn("invalid_date", f"{value[:20]!r} is not a date (CCYYMMDD)", n, tag, element)
            return None  # not cached: each bad date is reported where it is
        self.dates[value] = day
        return day

    def range_start_end(self, value: str, n: int, tag: str, element: str) -> tuple[date | None, date | None]:
        """A D8 date or an RD8 range ``CCYYMMDD-CCYYMMDD``."""
        if "-" in value:
            first, _, last = value.partition("-")
            return self.day(first, n, tag, element), self.day(last, n, tag, element)
        day = self.day(value[:8], n, tag, element) if len(value) >= 8 else self.day(value, n, tag, element)
        return day, None

    def composite(self, value: str, n: int, tag: str, element: str) -> list[str]:
        """A composite split on the component separator the data uses: ':' declared but '>' used
        (and the reverse) are both common; the first such switch is reported once per interchange."""
        c = self.component
        if c in value:
            return value.split(c)
        for alt in _ALT_COMPONENTS:
            if alt in value and alt != self.element:
                if not self._component_warned:
                    self._component_warned = True
                    self.warn(
                        "component_separator",
                        f"component separator declared as {self.declared_component!r} but {alt!r} is used",
                        n,
                        tag,
                        element,
                    )
                self.component = alt
                return value.split(alt)
        return [value]
