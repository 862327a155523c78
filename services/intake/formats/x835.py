"""X12 835 health care claim payment/advice (5010 X221A1; 4010 X091A1 read the same way).

One ``Remittance`` per ST..SE (one payment from one payer to one payee), its claims (CLP loops) with
their adjustments, service lines and remark codes. Payer, payee and payment facts are copied onto
each claim so a consumer can take claims one at a time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from .model import Adjustment, ParsedClaim, ParseWarning, ProviderAdjustment, Remittance, ServiceLine
from .remarks import CLAIM_STATUS, NSA_REMARK_CODES, PROCEDURE_QUALIFIERS, REVERSAL
from .tokenizer import Chunk
from .x12base import Values

ZERO = Decimal("0")
_CODE_IN_AMOUNT = re.compile(r"([A-Z0-9]{4,5})(?:\.0+)?")
_ENVELOPE = frozenset({"ST", "SE", "GS", "GE", "ISA", "IEA"})
_PAD = [""] * 10


class Parser835:
    def __init__(self, warnings: list[ParseWarning]) -> None:
        self.v = Values(warnings)
        self.claims: list[ParsedClaim] = []
        self.remittances: list[Remittance] = []
        self.version: str | None = None
        self.remit: Remittance | None = None
        self.claim: ParsedClaim | None = None
        self.line: ServiceLine | None = None
        self.in_payee = False
        self.header_done = False
        self.bpr: list[str] = []
        self.bpr_n = 0
        self.isa13: str | None = None
        self.skip = False
        self.handlers: dict[str, Callable[[list[str], int], None]] = {
            "SVC": self.svc, "CLP": self.clp, "LQ": self.lq, "NM1": self.nm1, "MOA": self.moa,
            "MIA": self.mia, "N1": self.n1, "BPR": self.bpr_, "TRN": self.trn, "PLB": self.plb, "ST": self.st,
            "SE": self.se, "GS": self.gs, "ISA": self.isa,
        }  # fmt: skip

    # -- the loop ---------------------------------------------------------------------------------
    def feed(self, chunk: Chunk) -> None:
        """The hot loop: service lines, adjustments and their dates are read inline (they are most
        of an 835's segments); everything else goes to its handler."""
        v = self.v
        v.start(chunk)
        sep = chunk.delimiters.element
        handlers = self.handlers
        day = v.day
        money = v.money
        n = chunk.first - 1
        skip = self.skip
        for seg in chunk.segments:
            n += 1
            els = seg.split(sep)
            tag = els[0]
            if skip and tag not in _ENVELOPE:
                continue
            if tag == "CAS":
                self.cas(els, n)
            elif tag == "DTM":
                if len(els) > 2:
                    q = els[1]
                    line = self.line
                    if line is not None and (q == "472" or q == "150"):
                        line.service_date = day(els[2], n, "DTM", "DTM02")
                    else:
                        self.dtm(els, n)
            elif tag == "AMT":
                line = self.line
                if line is not None and len(els) > 2 and els[1] == "B6":
                    line.allowed_amount = money(els, 2, n)
            elif tag == "REF":
                if self.line is not None and len(els) > 2 and els[1] == "6R":
                    self.line.control_number = els[2].strip() or None
                else:
                    self.ref(els, n)
            else:
                handler = handlers.get(tag)
                if handler is not None:
                    handler(els, n)
                    skip = self.skip

    def finish(self) -> None:
        if self.remit is not None:
            self.v.warnings.append(
                ParseWarning(
                    "truncated",
                    f"remittance {self.remit.index + 1} has no SE: the file ends inside it (truncated?)",
                )
            )
            self._close_remittance(None)
        counts = Counter(c.claim_id for c in self.claims)
        for claim_id, count in counts.items():
            if count > 1:
                statuses = sorted({c.status or "?" for c in self.claims if c.claim_id == claim_id})
                self.v.warnings.append(
                    ParseWarning(
                        "duplicate_claim_id",
                        f"claim id {claim_id!r} appears {count} times (statuses {', '.join(statuses)}); "
                        "each is kept (a reversal and its correction share the id)",
                    )
                )
        if not self.claims:
            self.v.warnings.append(ParseWarning("no_claims", "the file has no claims (no CLP segment)"))

    # -- envelope and header ----------------------------------------------------------------------
    def isa(self, els: list[str], n: int) -> None:
        self.isa13 = self.v.text(els, 13)

    def gs(self, els: list[str], n: int) -> None:
        self.version = self.v.text(els, 8) or self.version

    def st(self, els: list[str], n: int) -> None:
        if self.remit is not None:
            self.v.warn("truncated", "a new ST before the SE of the last one", n, "ST")
            self._close_remittance(n)
        if (self.v.text(els, 1) or "") != "835":
            self.skip = True
            self.v.warn("skipped", f"transaction set {els[1][:6] if len(els) > 1 else ''!r} skipped", n, "ST")
            return
        self.skip = False
        version = self.v.text(els, 3) or self.version
        self.remit = Remittance(
            index=len(self.remittances), control_number=self.v.text(els, 2), version=version,
            interchange_control_number=self.isa13, segment=n,
        )  # fmt: skip
        self.remittances.append(self.remit)
        self.claim = self.line = None
        self.in_payee = self.header_done = False
        self.bpr = []

    def _remittance(self, n: int, tag: str) -> Remittance:
        if self.remit is None:  # segments without ST (no envelope at all): one implicit remittance
            self.remit = Remittance(index=len(self.remittances), version=self.version, segment=n)
            self.remittances.append(self.remit)
            self.claim = self.line = None
            self.in_payee = self.header_done = False
            self.bpr = []
        return self.remit

    def bpr_(self, els: list[str], n: int) -> None:
        r = self._remittance(n, "BPR")
        v = self.v
        r.handling_code = v.text(els, 1)
        r.payment_amount = v.money(els, 2, n)
        r.credit_debit = v.text(els, 3)
        r.payment_method = v.text(els, 4)
        self.bpr, self.bpr_n = els, n

    def trn(self, els: list[str], n: int) -> None:
        r = self._remittance(n, "TRN")
        if r.trace_number is None and self.claim is None:
            r.trace_number = self.v.text(els, 2)
            r.trace_originator = self.v.text(els, 3)

    def n1(self, els: list[str], n: int) -> None:
        r = self._remittance(n, "N1")
        v = self.v
        role = v.text(els, 1)
        name = v.text(els, 2)
        qualifier, ident = v.text(els, 3), v.text(els, 4)
        if role == "PR":
            self.in_payee = False
            r.payer_name, r.payer_id, r.payer_id_qualifier = name, ident, qualifier
            if name is None:
                v.warn("empty_name", "the payer's name (N102) is empty", n, "N1", "N102")
        elif role == "PE":
            self.in_payee = True
            r.payee_name, r.payee_id, r.payee_id_qualifier = name, ident, qualifier
            if qualifier == "XX":
                r.payee_npi = ident
            elif qualifier == "FI":
                r.payee_tin = ident
            if name is None:
                v.warn("empty_name", "the payee's name (N102) is empty", n, "N1", "N102")
            if ident is None:
                v.warn("no_payee_id", "the payee has no identifier (N104)", n, "N1", "N104")

    def _resolve_header(self, n: int) -> None:
        """Payment date: BPR16 when it is a date; a date sent in BPR15 instead; else DTM*405."""
        r = self._remittance(n, "CLP")
        self.header_done = True
        v, els, at = self.v, self.bpr, self.bpr_n
        day = None
        if len(els) > 16 and els[16].strip():
            day = v.day(els[16], at, "BPR", "BPR16")
            if day is not None:
                r.payment_date, r.payment_date_source = day, "BPR16"
        elif len(els) > 15 and len(els[15].strip()) == 8 and els[15].strip().isdigit():
            day = v.day(els[15], at, "BPR", "BPR15")
            if day is not None:
                r.payment_date, r.payment_date_source = day, "BPR15"
                v.warn(
                    "payment_date_bpr15", "the payment date was sent in BPR15, not BPR16", at, "BPR", "BPR15"
                )
        if r.payment_date is None and r.production_date is not None:
            r.payment_date, r.payment_date_source = r.production_date, "DTM405"
            v.warn(
                "payment_date_fallback",
                "no usable payment date in BPR16; the production date DTM*405 is used",
                at or n, "BPR", "BPR16",
            )  # fmt: skip
        elif r.payment_date is None:
            v.warn(
                "no_payment_date", "no payment date: BPR16 and DTM*405 are missing or invalid",
                at or n, "BPR" if els else "CLP",
            )  # fmt: skip

    # -- claims ---------------------------------------------------------------------------------
    def clp(self, els: list[str], n: int) -> None:
        if not self.header_done:
            self._resolve_header(n)
        r = self._remittance(n, "CLP")
        v = self.v
        status = els[2] if len(els) > 2 else None
        claim_id = els[1].strip() if len(els) > 1 else ""
        if not claim_id:
            v.warn("no_claim_id", "the patient control number (CLP01) is empty", n, "CLP", "CLP01")
        if len(els) < 5:
            v.warn("truncated_claim", f"CLP has {len(els) - 1} of at least 4 elements", n, "CLP")
        e = els if len(els) >= 10 else els + _PAD[: 10 - len(els)]
        claim = ParsedClaim(
            claim_id=claim_id, payer_claim_control_number=e[7].strip() or None, status=status,
            status_label=CLAIM_STATUS.get(status or ""), reversal=status == REVERSAL,
            payer_name=r.payer_name, payer_id=r.payer_id, payee_name=r.payee_name, payee_npi=r.payee_npi,
            payee_tin=r.payee_tin, payee_id=r.payee_id, payee_id_qualifier=r.payee_id_qualifier,
            charge_amount=v.money(e, 3, n), paid_amount=v.money(e, 4, n),
            patient_responsibility=v.money(e, 5, n) if e[5] else None, cost_sharing=ZERO,
            payment_date=r.payment_date, payment_trace_number=r.trace_number, payment_method=r.payment_method,
            claim_filing_indicator=e[6].strip() or None, facility_type_code=e[8].strip() or None,
            frequency_code=e[9].strip() or None, remittance=r.index, segment=n,
        )  # fmt: skip
        if status is not None and status not in CLAIM_STATUS:
            v.warn("unknown_status", f"claim status {status[:4]!r} is not a CLP02 code", n, "CLP", "CLP02")
        if len(els) > 4 and claim.paid_amount is None:
            v.warn("no_paid_amount", "the claim payment amount (CLP04) is missing", n, "CLP", "CLP04")
        self._close_claim()
        self.claim = claim
        self.line = None
        self.claims.append(claim)
        r.claim_count += 1

    def _close_claim(self) -> None:
        c = self.claim
        if c is None:
            return
        if c.service_lines:
            allowed = [ln.allowed_amount for ln in c.service_lines if ln.allowed_amount is not None]
            if allowed:
                c.allowed_amount = sum(allowed, ZERO)
        pr = c.patient_responsibility
        if pr is not None and c.cost_sharing is not None and pr != c.cost_sharing and c.cost_sharing:
            self.v.warn(
                "cost_sharing_mismatch",
                f"CLP05 patient responsibility {pr} differs from the CAS PR total {c.cost_sharing}",
                c.segment or 0, "CLP", "CLP05",
            )  # fmt: skip

    def svc(self, els: list[str], n: int) -> None:
        c = self.claim
        if c is None:
            self.v.warn("orphan", "a service line outside any claim was ignored", n, "SVC")
            return
        v = self.v
        comp = v.component
        if len(els) > 3 and comp in els[1]:  # the fast path: a well-formed line
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
            try:
                amount = Decimal(raw)
                if not amount.is_finite() or "_" in raw:
                    raise InvalidOperation
            except InvalidOperation:
                self.v.warn("invalid_adjustment", "an adjustment without a valid amount was ignored", n,
                            "CAS", f"CAS{k + 1:02d}")  # fmt: skip
                continue
            qty = els[k + 2] if k + 2 < size else ""
            target.append(Adjustment(group, reason, amount, self.v.money(els, k + 2, n) if qty else None))
            if group == "PR":
                c.cost_sharing = (c.cost_sharing or ZERO) + amount
                if line is not None:
                    line.cost_sharing = (line.cost_sharing or ZERO) + amount

    def dtm(self, els: list[str], n: int) -> None:
        if len(els) < 3:
            return
        q = els[1]
        if q == "472" or q == "150":
            if self.line is not None:
                self.line.service_date = self.v.day(els[2], n, "DTM", "DTM02")
        elif q == "151":
            if self.line is not None:
                self.line.service_date_end = self.v.day(els[2], n, "DTM", "DTM02")
        elif q == "232" or q == "233" or q == "050":
            c = self.claim
            if c is not None:
                day = self.v.day(els[2], n, "DTM", "DTM02")
                if q == "232":
                    c.statement_from = day
                elif q == "233":
                    c.statement_to = day
                else:
                    c.received_date = day
        elif q == "405" and self.claim is None:
            self._remittance(n, "DTM").production_date = self.v.day(els[2], n, "DTM", "DTM02")

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

    def lq(self, els: list[str], n: int) -> None:
        if len(els) > 2 and els[1] == "HE":
            self._remarks([els[2]], on_line=True)

    def moa(self, els: list[str], n: int) -> None:
        self._remarks(els[3:8], on_line=False)

    def mia(self, els: list[str], n: int) -> None:
        self._remarks([els[k] for k in (5, 20, 21, 22, 23) if k < len(els)], on_line=False)

    def ref(self, els: list[str], n: int) -> None:
        if len(els) < 3:
            return
        q = els[1]
        if self.line is not None:
            if q == "6R":
                self.line.control_number = els[2].strip() or None
        elif self.claim is None and self.in_payee and q == "TJ" and self.remit is not None:
            if self.remit.payee_tin is None:
                self.remit.payee_tin = els[2].strip() or None

    def nm1(self, els: list[str], n: int) -> None:
        # NM1*QC (the patient) and NM1*IL (the insured) are never read: names stay out of the result
        if self.claim is not None and len(els) > 9 and els[1] == "82" and els[8] == "XX":
            self.claim.rendering_npi = els[9].strip() or None

    def plb(self, els: list[str], n: int) -> None:
        r = self._remittance(n, "PLB")
        if not self.header_done:
            self._resolve_header(n)
        self._close_claim()
        self.claim = self.line = None
        v = self.v
        provider = v.text(els, 1)
        day = v.day(els[2], n, "PLB", "PLB02") if len(els) > 2 and els[2] else None
        for k in range(3, min(len(els), 15), 2):
            if not els[k]:
                continue
            parts = v.composite(els[k], n, "PLB", f"PLB{k:02d}")
            amount = v.money(els, k + 1, n)
            if amount is None:
                v.warn("invalid_adjustment", "a provider adjustment without an amount was ignored", n, "PLB",
                       f"PLB{k + 1:02d}")  # fmt: skip
                continue
            reference = parts[1].strip() or None if len(parts) > 1 else None
            r.provider_adjustments.append(ProviderAdjustment(provider, day, parts[0], reference, amount))

    def se(self, els: list[str], n: int) -> None:
        if self.skip:
            self.skip = False
            return
        self._close_remittance(n)

    def _close_remittance(self, n: int | None) -> None:
        r = self.remit
        if r is None:
            return
        if not self.header_done:
            self._resolve_header(n or r.segment or 0)
        self._close_claim()
        if r.claim_count == 0:
            only = ", only provider-level adjustments (PLB)" if r.provider_adjustments else ""
            self.v.warnings.append(
                ParseWarning(
                    "no_claims_in_remittance",
                    f"remittance {r.index + 1} (ST02 {r.control_number or '?'}) has no claims{only}",
                    f"segment {r.segment} (ST)" if r.segment else None,
                    r.segment,
                )
            )
        self.remit = None
        self.claim = self.line = None


def parse_835(chunks: list[Chunk], warnings: list[ParseWarning]) -> Parser835:
    parser = Parser835(warnings)
    for chunk in chunks:
        parser.feed(chunk)
    parser.finish()
    return parser
