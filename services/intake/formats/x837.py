"""X12 837 professional (5010 X222A1) and institutional (5010 X223A2/A3) claims.

Claims are read through the HL hierarchy: HL 20 the billing provider (NM1*85: NPI when NM108 is XX;
REF*EI its tax id), HL 22 the subscriber (NM1*PR: the payer; SBR09 the filing indicator), HL 23 the
patient. A CLM belongs to the subscriber or patient HL above it. Patient and subscriber names,
member ids and birth dates are never read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date

from .model import ParsedClaim, ParseWarning, Repricing, ServiceLine
from .tokenizer import Chunk
from .x12base import Values


def bill_sent_date(
    bht04: date | None, received: date | None, gs04: date | None, isa09: date | None
) -> tuple[date | None, str | None]:
    """The date the bill was sent, and which element it came from.

    The No Surprises Act clocks (the plan's 30-day initial payment deadline) run from the day the
    plan *receives* the bill, and an 837 cannot say when that happened: it is written before it is
    sent. The best proxy in the file is BHT04, the date the submitter created this transaction
    (clearinghouses create and send in the same run). Without it: DTP*050 (the repricer's received
    date, when a repricer handled the claim), then GS04 (the functional group date), then ISA09 (the
    interchange date, YYMMDD). The payer's acknowledgement (999/277CA) or the 835's DTM*050 is the
    evidence of receipt; ingest should prefer them when it has them.
    """
    for day, source in ((bht04, "BHT04"), (received, "DTP050"), (gs04, "GS04"), (isa09, "ISA09")):
        if day is not None:
            return day, source
    return None, None


class Parser837:
    def __init__(self, warnings: list[ParseWarning]) -> None:
        self.v = Values(warnings)
        self.claims: list[ParsedClaim] = []
        self.version: str | None = None
        self.isa09: date | None = None
        self.gs04: date | None = None
        self.bht04: date | None = None
        self.level: str | None = None
        self.billing_name: str | None = None
        self.billing_npi: str | None = None
        self.billing_tin: str | None = None
        self.payer_name: str | None = None
        self.payer_id: str | None = None
        self.filing: str | None = None
        self.claim: ParsedClaim | None = None
        self.line: ServiceLine | None = None
        self.lx: int | None = None
        self.skip = False
        self.handlers: dict[str, Callable[[list[str], int], None]] = {
            "SV1": self.sv1, "SV2": self.sv2, "DTP": self.dtp, "LX": self.lx_, "REF": self.ref,
            "NM1": self.nm1, "HCP": self.hcp, "CLM": self.clm, "HL": self.hl, "SBR": self.sbr,
            "BHT": self.bht, "ST": self.st, "SE": self.se, "GS": self.gs, "ISA": self.isa,
        }  # fmt: skip

    def feed(self, chunk: Chunk) -> None:
        self.v.start(chunk)
        sep = chunk.delimiters.element
        handlers = self.handlers
        n = chunk.first - 1
        for seg in chunk.segments:
            n += 1
            els = seg.split(sep)
            if self.skip and els[0] not in ("ST", "SE", "GS", "ISA"):
                continue
            handler = handlers.get(els[0])
            if handler is not None:
                handler(els, n)

    def finish(self) -> None:
        self._close_claim()
        counts = Counter(c.claim_id for c in self.claims)
        for claim_id, count in counts.items():
            if count > 1:
                self.v.warnings.append(
                    ParseWarning(
                        "duplicate_claim_id", f"claim id {claim_id!r} appears {count} times; each is kept"
                    )
                )
        if not self.claims:
            self.v.warnings.append(ParseWarning("no_claims", "the file has no claims (no CLM segment)"))

    # -- envelope -------------------------------------------------------------------------------
    def isa(self, els: list[str], n: int) -> None:
        if len(els) > 9 and els[9].strip():
            self.isa09 = self.v.day(els[9], n, "ISA", "ISA09")

    def gs(self, els: list[str], n: int) -> None:
        self.version = self.v.text(els, 8) or self.version
        if len(els) > 4 and els[4].strip():
            self.gs04 = self.v.day(els[4], n, "GS", "GS04")

    def st(self, els: list[str], n: int) -> None:
        self._close_claim()
        self.skip = (self.v.text(els, 1) or "") != "837"
        if self.skip:
            self.v.warn("skipped", f"transaction set {els[1][:6] if len(els) > 1 else ''!r} skipped", n, "ST")
        self.version = self.v.text(els, 3) or self.version
        self.bht04 = None
        self.level = None

    def se(self, els: list[str], n: int) -> None:
        self._close_claim()
        self.skip = False

    def bht(self, els: list[str], n: int) -> None:
        if len(els) > 4 and els[4].strip():
            self.bht04 = self.v.day(els[4], n, "BHT", "BHT04")

    # -- hierarchy ------------------------------------------------------------------------------
    def hl(self, els: list[str], n: int) -> None:
        self._close_claim()
        level = self.v.text(els, 3)
        self.level = level
        if level == "20":
            self.billing_name = self.billing_npi = self.billing_tin = None
            self.payer_name = self.payer_id = self.filing = None
        elif level == "22":
            self.payer_name = self.payer_id = self.filing = None

    def sbr(self, els: list[str], n: int) -> None:
        if self.claim is None:
            self.filing = self.v.text(els, 9)

    def nm1(self, els: list[str], n: int) -> None:
        role = els[1] if len(els) > 1 else ""
        ident = els[9].strip() or None if len(els) > 9 else None
        if self.claim is None:
            if role == "85":
                self.billing_name = self.v.text(els, 3)
                if len(els) > 8 and els[8] == "XX":
                    self.billing_npi = ident
                elif len(els) > 8 and els[8] in ("FI", "24", "34"):
                    self.billing_tin = ident
                if not self.billing_name:
                    self.v.warn(
                        "empty_name", "the billing provider's name (NM103) is empty", n, "NM1", "NM103"
                    )
            elif role == "PR":
                self.payer_name, self.payer_id = self.v.text(els, 3), ident
                if not self.payer_name:
                    self.v.warn("empty_name", "the payer's name (NM103) is empty", n, "NM1", "NM103")
        elif role in ("82", "71") and self.line is None and len(els) > 8 and els[8] == "XX":
            if self.claim.rendering_npi is None or role == "82":
                self.claim.rendering_npi = ident

    def ref(self, els: list[str], n: int) -> None:
        if len(els) < 3:
            return
        q, value = els[1], els[2].strip() or None
        if self.claim is None:
            if q == "EI" and self.level == "20":
                self.billing_tin = value
        elif self.line is not None:
            if q == "6R":
                self.line.control_number = value
        elif q == "F8":
            self.claim.payer_claim_control_number = value

    # -- claims and lines -------------------------------------------------------------------------
    def clm(self, els: list[str], n: int) -> None:
        self._close_claim()
        v = self.v
        claim_id = els[1].strip() if len(els) > 1 else ""
        if not claim_id:
            v.warn("no_claim_id", "the claim id (CLM01) is empty", n, "CLM", "CLM01")
        if self.level is None:
            v.warn("no_hierarchy", "a claim outside any HL loop", n, "CLM")
        day, source = bill_sent_date(self.bht04, None, self.gs04, self.isa09)
        claim = ParsedClaim(
            claim_id=claim_id, payer_name=self.payer_name, payer_id=self.payer_id,
            payee_name=self.billing_name, payee_npi=self.billing_npi, payee_tin=self.billing_tin,
            payee_id=self.billing_npi or self.billing_tin,
            payee_id_qualifier="XX" if self.billing_npi else ("EI" if self.billing_tin else None),
            charge_amount=v.money(els, 2, n), bill_sent_date=day, bill_sent_date_source=source,
            claim_filing_indicator=self.filing, segment=n,
        )  # fmt: skip
        if claim.charge_amount is None:
            v.warn("no_charge", "the claim charge (CLM02) is missing", n, "CLM", "CLM02")
        if len(els) > 5 and els[5]:
            parts = v.composite(els[5], n, "CLM", "CLM05")
            code = parts[0].strip() or None
            qualifier = parts[1] if len(parts) > 1 else None
            institutional = qualifier == "A" or (qualifier is None and "X223" in (self.version or ""))
            if institutional:
                claim.facility_type_code = code
            else:
                claim.place_of_service = code
            claim.frequency_code = parts[2].strip() or None if len(parts) > 2 else None
        if not claim.payer_name:
            v.warn("no_payer", "no payer (NM1*PR) before this claim", n, "CLM")
        if not claim.payee_npi:
            v.warn("no_billing_npi", "no billing provider NPI (NM1*85 XX) before this claim", n, "CLM")
        self.claim = claim
        self.claims.append(claim)

    def _close_claim(self) -> None:
        c = self.claim
        if c is None:
            return
        if c.bill_sent_date_source != "BHT04" and c.received_date is not None:
            c.bill_sent_date, c.bill_sent_date_source = bill_sent_date(
                None, c.received_date, self.gs04, self.isa09
            )
        for ln in c.service_lines:
            if ln.service_date is None:
                ln.service_date = c.statement_from
        self.claim = self.line = None
        self.lx = None

    def lx_(self, els: list[str], n: int) -> None:
        self.line = None
        try:
            self.lx = int(els[1]) if len(els) > 1 else None
        except ValueError:
            self.lx = None

    def _new_line(self, n: int, tag: str) -> ServiceLine | None:
        c = self.claim
        if c is None:
            self.v.warn("orphan", "a service line outside any claim was ignored", n, tag)
            return None
        line = ServiceLine(line_number=self.lx or len(c.service_lines) + 1)
        c.service_lines.append(line)
        self.line = line
        return line

    def _procedure(self, line: ServiceLine, value: str, n: int, tag: str, element: str) -> None:
        parts = self.v.composite(value, n, tag, element)
        if len(parts) > 1:
            line.code_qualifier, line.procedure_code = parts[0] or None, parts[1] or None
            line.modifiers = [m for m in parts[2:6] if m]
        elif parts[0]:
            line.procedure_code = parts[0]

    def sv1(self, els: list[str], n: int) -> None:
        line = self._new_line(n, "SV1")
        if line is None:
            return
        if len(els) > 1:
            self._procedure(line, els[1], n, "SV1", "SV101")
        line.charge_amount = self.v.money(els, 2, n)
        line.units = self.v.money(els, 4, n)

    def sv2(self, els: list[str], n: int) -> None:
        line = self._new_line(n, "SV2")
        if line is None:
            return
        line.revenue_code = self.v.text(els, 1)
        if len(els) > 2 and els[2]:
            self._procedure(line, els[2], n, "SV2", "SV202")
        line.charge_amount = self.v.money(els, 3, n)
        line.units = self.v.money(els, 5, n)

    def dtp(self, els: list[str], n: int) -> None:
        c = self.claim
        if c is None or len(els) < 4:
            return
        q, value = els[1], els[3]
        if q == "472":
            first, last = self.v.range_start_end(value, n, "DTP", "DTP03")
            if self.line is not None:
                self.line.service_date, self.line.service_date_end = first, last
            elif c.statement_from is None:
                c.statement_from, c.statement_to = first, last
        elif q == "434" and self.line is None:
            c.statement_from, c.statement_to = self.v.range_start_end(value, n, "DTP", "DTP03")
        elif q == "050" and self.line is None:
            c.received_date = self.v.range_start_end(value, n, "DTP", "DTP03")[0]

    def hcp(self, els: list[str], n: int) -> None:
        if self.claim is None:
            return
        v = self.v
        repricing = Repricing(
            pricing_methodology=v.text(els, 1), allowed_amount=v.money(els, 2, n),
            saving_amount=v.money(els, 3, n), organization_id=v.text(els, 4), rate=v.money(els, 5, n),
            reject_reason=v.text(els, 13), policy_compliance=v.text(els, 14), exception_code=v.text(els, 15),
        )  # fmt: skip
        if self.line is not None:
            self.line.repricing = repricing
        else:
            self.claim.repricing = repricing
            self.claim.allowed_amount = repricing.allowed_amount


def parse_837(chunks: list[Chunk], warnings: list[ParseWarning]) -> Parser837:
    parser = Parser837(warnings)
    for chunk in chunks:
        parser.feed(chunk)
    parser.finish()
    return parser
