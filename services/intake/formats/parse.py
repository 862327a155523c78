"""``parse``: one entry point for every format intake reads, chosen from the content."""

from __future__ import annotations

import gc
import json
from decimal import Decimal
from typing import Any, NoReturn

from .canonical import looks_canonical, parse_canonical
from .fhir import parse_fhir
from .model import ParseError, ParseResult, ParseWarning
from .text import decode
from .tokenizer import Chunk, tokenize
from .x835 import parse_835
from .x837 import parse_837

_835_TAGS = frozenset({"BPR", "TRN", "CLP", "SVC", "PLB"})
_837_TAGS = frozenset({"BHT", "CLM", "SV1", "SV2", "HL"})


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc.msg}", f"line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN / Infinity, or an integer too long to convert
        raise ParseError(f"not valid JSON: {exc}", "$") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply", "$") from None


def _x12_kind(chunks: list[Chunk], filename: str | None) -> str:
    """'835' or '837': the first ST's transaction set code, else the first telling segment tag."""
    for chunk in chunks:
        sep = chunk.delimiters.element
        for seg in chunk.segments:
            tag, _, rest = seg.partition(sep)
            if tag == "ST":
                code = rest.partition(sep)[0].strip()
                if code in ("835", "837"):
                    return code
                raise ParseError(
                    f"X12 transaction set {code[:6]!r} is not an 835 remittance or an 837 claim", "ST01"
                )
            if tag in _835_TAGS:
                return "835"
            if tag in _837_TAGS:
                return "837"
    if filename and filename.lower().rsplit(".", 1)[-1] in ("835", "837"):
        return filename.lower().rsplit(".", 1)[-1]
    raise ParseError("X12 without an ST segment and without 835 (CLP, BPR) or 837 (CLM, HL) segments", "ST")


def parse_text(text: str, *, filename: str | None = None, check_profile: bool = False) -> ParseResult:
    head = text.lstrip()[:1]
    if head in ("{", "["):
        doc = _load_json(text)
        if isinstance(doc, dict) and "resourceType" in doc:
            return parse_fhir(doc, check_profile=check_profile)
        if looks_canonical(doc):
            return parse_canonical(doc)
        raise ParseError(
            "JSON that is neither a FHIR ExplanationOfBenefit (or Bundle) nor an idrflow claim "
            "(claim_id, payer, provider, lines)",
            "$",
        )
    if head == "<":
        raise ParseError(
            "XML is not read: send X12 (835/837), FHIR JSON or idrflow claim JSON", "character 0"
        )
    chunks, warnings = tokenize(text)
    kind = _x12_kind(chunks, filename)
    if kind == "835":
        p835 = parse_835(chunks, warnings)
        return ParseResult("x12-835", p835.claims, warnings, p835.remittances, p835.version)
    p837 = parse_837(chunks, warnings)
    return ParseResult("x12-837", p837.claims, warnings, [], p837.version)


def parse(data: bytes | str, *, filename: str | None = None, check_profile: bool = False) -> ParseResult:
    """Read an X12 835 or 837, a FHIR R4 ExplanationOfBenefit (or a Bundle of them) or idrflow's
    canonical claim JSON, detected from the content (``filename`` only breaks a tie).

    Returns the claims and the warnings about everything read around or left out (a file without
    claims always says so). Raises ``ParseError`` (with ``location``: the segment or the field) when
    nothing can be read. ``check_profile`` adds warnings for what FHIR R4 requires and is missing.
    """
    warnings: list[ParseWarning] = []
    if isinstance(data, bytes):
        text, warnings = decode(data)
    else:
        text = data
        if not text.strip():
            raise ParseError("the file is empty")
    # The result is a tree of acyclic objects, hundreds of thousands for a large 835: the cycle
    # collector would walk them again and again while they are built (it more than doubled the time),
    # and reference counting frees them anyway. So it pauses while one file is read.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = parse_text(text, filename=filename, check_profile=check_profile)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("input nested too deeply") from None
    except Exception as exc:  # a parser bug must not become a 500: report it as unreadable input
        raise ParseError(f"unexpected {type(exc).__name__} while reading; this is a parser bug") from exc
    finally:
        if collecting:
            gc.enable()
    if warnings:
        result.warnings[:0] = warnings
    return result
