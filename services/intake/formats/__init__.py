"""Readers for what providers and payers send: X12 835 remittances, X12 837 claims, FHIR R4
ExplanationOfBenefit resources and idrflow's canonical claim JSON, all into one ``ParseResult``.

    from services.intake.formats import parse, ParseError
    result = parse(raw_bytes, filename="remit.835")
    result.format      # "x12-835" | "x12-837" | "fhir-eob" | "json"
    result.claims      # list[ParsedClaim], each with its service lines
    result.warnings    # list[ParseWarning(code, message, location, segment)]
    result.remittances # 835 only: payment, trace, payer, payee, PLB per ST..SE

Lenient by design: real files are messy, so what can be read is read and what cannot is reported
as a warning; only input with nothing readable raises ``ParseError``.
"""

from .model import (
    Adjustment,
    Format,
    ParsedClaim,
    ParseError,
    ParseResult,
    ParseWarning,
    ProviderAdjustment,
    Remittance,
    Repricing,
    ServiceLine,
    to_jsonable,
)
from .parse import parse, parse_text
from .remarks import NSA_REMARK_CODES

__all__ = [
    "NSA_REMARK_CODES",
    "Adjustment",
    "Format",
    "ParseError",
    "ParseResult",
    "ParseWarning",
    "ParsedClaim",
    "ProviderAdjustment",
    "Remittance",
    "Repricing",
    "ServiceLine",
    "parse",
    "parse_text",
    "to_jsonable",
]
