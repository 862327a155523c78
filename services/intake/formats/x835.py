"""X12 835 health care claim payment/advice (5010 X221A1; 4010 X091A1 read the same way).

One ``Remittance`` per ST..SE (one payment from one payer to one payee), its claims (CLP loops) with
their adjustments, service lines and remark codes. Payer, payee and payment facts are copied onto
each claim so a consumer can take claims one at a time.

This module is the claim level and the hot loop; the envelope, payment, payer/payee and PLB are
read by ``x835_remit.RemittanceReader``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from .model import Adjustment, ParsedClaim, ParseWarning, ServiceLine
from .remarks import CLAIM_STATUS, NSA_REMARK_CODES, PROCEDURE_QUALIFIERS, REVERSAL
from .tokenizer import Chunk
from .x835_remit import RemittanceReader

ZERO = Decimal("0")
_CODE_IN_AMOUNT = re.compile(r"([A-Z0-9]{4,5})(?:\.0+)?")
_ENVELOPE = frozenset({"ST", "SE", "GS", "GE", "ISA", "IEA"})
_PAD = [""] * 10
# The hot paths build claims and lines with positional arguments (keywords cost twice as much for
# a 37-field dataclass); tests/unit/test_formats_quirks.py checks the models still have this order.
CLAIM_FIELDS = (
    "claim_id", "payer_claim_control_number", "status", "status_label", "reversal", "payer_name",
    "payer_id", "payee_name", "payee_npi", "payee_tin", "payee_id", "payee_id_qualifier", "rendering_npi",
    "charge_amount", "paid_amount", "patient_responsibility", "cost_sharing", "allowed_amount",
    "payment_date", "payment_trace_number", "payment_method", "received_date", "bill_sent_date",
    "bill_sent_date_source", "statement_from", "statement_to", "place_of_service", "facility_type_code",
    "frequency_code", "claim_filing_indicator", "adjustments", "remark_codes", "nsa_remark_codes",
    "repricing", "service_lines", "remittance", "segment",
)  # fmt: skip
LINE_FIELDS = (
    "line_number", "procedure_code", "code_qualifier", "modifiers", "revenue_code", "charge_amount",
    "paid_amount", "allowed_amount", "units", "service_date", "service_date_end", "cost_sharing",
    "adjustments", "remark_codes", "control_number", "repricing",
)  # fmt: skip


class Parser835(RemittanceReader):
    def __init__(self, warnings: list[ParseWarning]) -> None:
        super().__init__(warnings)
        # segments the loop does not finish inline (and the inline ones' unusual shapes)
        self.handlers: dict[str, Callable[[list[str], int], None]] = {
            "CLP": self.clp, "SVC": self.svc, "CAS": self.cas, "MOA": self.moa, "MIA": self.mia,
            "N1": self.n1, "BPR": self.bpr_, "TRN": self.trn, "PLB": self.plb, "ST": self.st, "SE": self.se,
            "GS": self.gs, "ISA": self.isa,
        }  # fmt: skip

    # -- the loop ---------------------------------------------------------------------------------
    def feed(self, chunk: Chunk) -> None:
        """The hot loop. The segments of a claim (DTM, CAS, REF, AMT, SVC, NM1, LQ) are read inline,
        with the open claim and line in locals and dates looked up in the per-file cache first; a
        segment whose shape is unusual (several CAS triplets, an SVC amount that does not
        read, no open claim) and every other segment go to their handler, which warns as needed.
        Before a handler runs, ``self.claim``/``self.line`` are brought up to date; after it, the
        locals are read back (CLP, PLB, ST, SE change them)."""
        v = self.v
        v.start(chunk)
        sep = chunk.delimiters.element
        handlers = self.handlers
        day = v.day
        dates = v.dates
        money = v.money
        skip = self.skip
        claim = self.claim
        line = self.line
        for n, seg in enumerate(chunk.segments, chunk.first):
            els = seg.split(sep)
            tag = els[0]
            if skip and tag not in _ENVELOPE:
                continue
            size = len(els)
            if tag == "DTM":
                if size > 2:
                    q, raw = els[1], els[2]
                    if q == "472" or q == "150":
                        if line is not None:
                            line.service_date = dates.get(raw) or day(raw, n, "DTM", "DTM02")
                    elif q == "232" or q == "233" or q == "050":
                        if claim is not None:
                            d = dates.get(raw) or day(raw, n, "DTM", "DTM02")
                            if q == "232":
                                claim.statement_from = d
                            elif q == "233":
                                claim.statement_to = d
                            else:
                                claim.received_date = d
                    elif q == "151":
                        if line is not None:
                            line.service_date_end = dates.get(raw) or day(raw, n, "DTM", "DTM02")
                    elif q == "405" and claim is None:
                        self.line = line
                        self.production_date(els, n)
                        claim, line = self.claim, self.line
                continue
            elif tag == "CAS":
                if size == 4 and claim is not None:  # one triplet: the common case
                    raw = els[3]
                    try:
                        amount: Decimal | None = Decimal(raw)
                    except InvalidOperation:
                        amount = None
                    if amount is not None and amount.is_finite() and "_" not in raw:
                        group = els[1].strip()
                        adjustment = Adjustment(group, els[2], amount, None)
                        if line is not None:
                            line.adjustments.append(adjustment)
                            if group == "PR":
                                claim.cost_sharing = (claim.cost_sharing or ZERO) + amount
                                line.cost_sharing = (line.cost_sharing or ZERO) + amount
                        else:
                            claim.adjustments.append(adjustment)
                            if group == "PR":
                                claim.cost_sharing = (claim.cost_sharing or ZERO) + amount
                        continue
            elif tag == "REF":
                if size > 2:
                    if line is not None:
                        if els[1] == "6R":
                            line.control_number = els[2].strip() or None
                    elif claim is None:
                        self.claim, self.line = claim, line
                        self.payee_ref(els, n)
                continue
            elif tag == "AMT":
                if line is not None and size > 2 and els[1] == "B6":
                    raw = els[2]
                    try:
                        amount = Decimal(raw)
                    except InvalidOperation:
                        amount = None
                    if amount is not None and amount.is_finite() and "_" not in raw:
                        line.allowed_amount = amount
                    else:  # empty: None; not a number: None and a warning
                        line.allowed_amount = money(els, 2, n)
                continue
            elif tag == "SVC":
                comp = v.component
                if claim is not None and size > 3 and comp in els[1]:  # a well-formed line
                    # as svc() reads them (Decimal, finite); anything else goes to svc()
                    raw = els[5] if size > 5 else ""
                    try:
                        charge = Decimal(els[2])
                        paid = Decimal(els[3])
                        units = Decimal(raw) if raw else None
                    except InvalidOperation:
                        charge = None
                    if (
                        charge is not None and charge.is_finite() and paid.is_finite()
                        and (units is None or units.is_finite())
                    ):  # fmt: skip
                        parts = els[1].split(comp)
                        modifiers = parts[2:6]
                        if "" in modifiers:
                            modifiers = [m for m in modifiers if m]
                        lines = claim.service_lines
                        line = ServiceLine(
                            len(lines) + 1, parts[1] or None, parts[0] or None, modifiers,
                            (els[4].strip() or None) if size > 4 else None, charge, paid, None, units,
                            None, None, ZERO, [], [], None, None,
                        )  # fmt: skip
                        lines.append(line)
                        continue
            elif tag == "NM1":
                # NM1*QC (the patient) and NM1*IL (the insured) are never read: names stay out
                if claim is not None and size > 9 and els[1] == "82" and els[8] == "XX":
                    claim.rendering_npi = els[9].strip() or None
                continue
            elif tag == "LQ":
                if claim is not None and size > 2 and els[1] == "HE":
                    code = els[2].strip()
                    if code:
                        (line.remark_codes if line is not None else claim.remark_codes).append(code)
                        if code in NSA_REMARK_CODES and code not in claim.nsa_remark_codes:
                            claim.nsa_remark_codes.append(code)
                continue
            handler = handlers.get(tag)
            if handler is not None:
                self.claim, self.line = claim, line
                handler(els, n)
                claim, line, skip = self.claim, self.line, self.skip
        self.claim, self.line = claim, line

    # -- claims ---------------------------------------------------------------------------------
    def clp(self, els: list[str], n: int) -> None:
        if not self.header_done:
            self._resolve_header(n)
        r = self.remit
        if r is None:
            r = self._remittance(n, "CLP")
        v = self.v
        size = len(els)
        status = els[2] if size > 2 else None
        claim_id = els[1].strip() if size > 1 else ""
        if not claim_id:
            v.warn("no_claim_id", "the patient control number (CLP01) is empty", n, "CLP", "CLP01")
        if size < 5:
            v.warn("truncated_claim", f"CLP has {size - 1} of at least 4 elements", n, "CLP")
        e = els if size >= 10 else els + _PAD[: 10 - size]
        raw3, raw4, raw5 = e[3], e[4], e[5]
        charge: Decimal | None
        paid: Decimal | None
        try:  # the common case, read as v.money would; anything else is read (and reported) by it
            charge_, paid_ = Decimal(raw3), Decimal(raw4)
            responsibility = Decimal(raw5) if raw5 else None
            read = (
                charge_.is_finite() and paid_.is_finite() and "_" not in raw3 and "_" not in raw4
                and (responsibility is None or (responsibility.is_finite() and "_" not in raw5))
            )  # fmt: skip
            charge, paid = charge_, paid_
        except InvalidOperation:
            read = False
        if not read:
            money = v.money
            charge = money(e, 3, n)
            paid = money(e, 4, n)
            responsibility = money(e, 5, n) if raw5 else None
        claim = ParsedClaim(
            claim_id, e[7].strip() or None, status, CLAIM_STATUS.get(status or ""), status == REVERSAL,
            r.payer_name, r.payer_id, r.payee_name, r.payee_npi, r.payee_tin, r.payee_id,
            r.payee_id_qualifier, None, charge, paid, responsibility, ZERO, None, r.payment_date,
            r.trace_number, r.payment_method, None, None, None, None, None, None, e[8].strip() or None,
            e[9].strip() or None, e[6].strip() or None, [], [], [], None, [], r.index, n,
        )  # fmt: skip
        if status is not None and status not in CLAIM_STATUS:
            v.warn("unknown_status", f"claim status {status[:4]!r} is not a CLP02 code", n, "CLP", "CLP02")
        if size > 4 and paid is None:
            v.warn("no_paid_amount", "the claim payment amount (CLP04) is missing", n, "CLP", "CLP04")
        self._close_claim()
        self.claim = claim
        self.line = None
        self.claims.append(claim)
        r.claim_count += 1

    def svc(self, els: list[str], n: int) -> None:
        c = self.claim
        if c is None:
            self.v.warn("orphan", "a service line outside any claim was ignored", n, "SVC")
            return
        v = self.v
        comp = v.component
        if len(els) > 3 and comp in els[1]:  # well-formed, but an amount the loop's fast path refused
            charge: Decimal | None
            paid: Decimal | None
            units: Decimal | None
            try:
                charge, paid = Decimal(els[2]), Decimal(els[3])
                units = Decimal(els[5]) if len(els) > 5 and els[5] else None
            except InvalidOperation:
                charge = paid = units = None
            if charge is not None and paid is not None and charge.is_finite() and paid.is_finite():
                if units is None or units.is_finite():
                    parts = els[1].split(comp)
                    line = ServiceLine(
                        len(c.service_lines) + 1, parts[1] or None, parts[0] or None,
                        [m for m in parts[2:6] if m] if len(parts) > 2 else [],
                        (els[4].strip() or None) if len(els) > 4 else None,
                        charge, paid, None, units, cost_sharing=ZERO,
                    )  # fmt: skip
                    c.service_lines.append(line)
                    self.line = line
                    return
        parts = v.composite(els[1], n, "SVC", "SVC01") if len(els) > 1 else [""]
        line = ServiceLine(line_number=len(c.service_lines) + 1, cost_sharing=ZERO)
        k = 2  # where SVC02 is
        if len(parts) > 1:
            line.code_qualifier, line.procedure_code = parts[0] or None, parts[1] or None
            line.modifiers = [m for m in parts[2:6] if m]
        elif parts[0] in PROCEDURE_QUALIFIERS and len(els) > 4 and _CODE_IN_AMOUNT.fullmatch(els[2]):
            # "SVC*HC*24599.00*1766.50*187.50**1": the code slipped into its own element
            m = _CODE_IN_AMOUNT.fullmatch(els[2])
            line.code_qualifier, line.procedure_code = parts[0], m.group(1) if m else None
            k = 3
            v.warn("svc_shifted", "SVC01 holds only its qualifier; the code was read from the next element",
                   n, "SVC", "SVC01")  # fmt: skip
        elif parts[0]:
            line.procedure_code = parts[0]
            v.warn("no_qualifier", "SVC01 has no product/service id qualifier", n, "SVC", "SVC01")
        else:
            v.warn("no_procedure_code", "the service line has no procedure code (SVC01)", n, "SVC", "SVC01")
        line.charge_amount = v.money(els, k, n)
        line.paid_amount = v.money(els, k + 1, n)
        line.revenue_code = v.text(els, k + 2)
        line.units = v.money(els, k + 3, n)
        c.service_lines.append(line)
        self.line = line

    def cas(self, els: list[str], n: int) -> None:
        c = self.claim
        if c is None:
            self.v.warn("orphan", "an adjustment outside any claim was ignored", n, "CAS")
            return
        group = els[1].strip() if len(els) > 1 else ""
        line = self.line
        target = line.adjustments if line is not None else c.adjustments
        size = len(els)
        for k in range(2, min(size, 20), 3):
            reason = els[k]
            raw = els[k + 1] if k + 1 < size else ""
            if not reason and not raw:
                continue
            amount = self.v.amount(raw)
            if amount is None:
                self.v.warn("invalid_adjustment", "an adjustment without a valid amount was ignored", n,
                            "CAS", f"CAS{k + 1:02d}")  # fmt: skip
                continue
            qty = els[k + 2] if k + 2 < size else ""
            target.append(Adjustment(group, reason, amount, self.v.money(els, k + 2, n) if qty else None))
            if group == "PR":
                c.cost_sharing = (c.cost_sharing or ZERO) + amount
                if line is not None:
                    line.cost_sharing = (line.cost_sharing or ZERO) + amount

    def _remarks(self, codes: list[str], on_line: bool) -> None:
        c = self.claim
        if c is None:
            return
        target = self.line.remark_codes if on_line and self.line is not None else c.remark_codes
        for code in codes:
            code = code.strip()
            if not code:
                continue
            target.append(code)
            if code in NSA_REMARK_CODES and code not in c.nsa_remark_codes:
                c.nsa_remark_codes.append(code)

    def moa(self, els: list[str], n: int) -> None:
        self._remarks(els[3:8], on_line=False)

    def mia(self, els: list[str], n: int) -> None:
        self._remarks([els[k] for k in (5, 20, 21, 22, 23) if k < len(els)], on_line=False)


def parse_835(chunks: list[Chunk], warnings: list[ParseWarning]) -> Parser835:
    parser = Parser835(warnings)
    for chunk in chunks:
        parser.feed(chunk)
    parser.finish()
    return parser
