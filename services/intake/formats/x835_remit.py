"""The remittance level of an 835: envelope (ISA/GS/ST/SE), payment (BPR, TRN, DTM*405), payer and
payee (N1, REF*TJ), provider adjustments (PLB), and the checks made when a claim, a remittance or
the file ends. ``x835.Parser835`` adds the claim level (CLP and what follows it) on top of this.

State shared with the claim level: ``claim`` and ``line`` are the open claim and service line (the
hot loop keeps them in locals and writes them back before it calls any handler here).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from .model import ParsedClaim, ParseWarning, ProviderAdjustment, Remittance, ServiceLine
from .x12base import Values

ZERO = Decimal("0")


class RemittanceReader:
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
        duplicated = {claim_id for claim_id, count in counts.items() if count > 1}
        statuses: dict[str, set[str]] = {claim_id: set() for claim_id in duplicated}
        if duplicated:
            for c in self.claims:
                if c.claim_id in duplicated:
                    statuses[c.claim_id].add(c.status or "?")
        for claim_id, count in counts.items():
            if count > 1:
                self.v.warnings.append(
                    ParseWarning(
                        "duplicate_claim_id",
                        f"claim id {claim_id!r} appears {count} times "
                        f"(statuses {', '.join(sorted(statuses[claim_id]))}); "
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

    def production_date(self, els: list[str], n: int) -> None:
        """DTM*405 before the first claim."""
        self._remittance(n, "DTM").production_date = self.v.day(els[2], n, "DTM", "DTM02")

    def payee_ref(self, els: list[str], n: int) -> None:
        """REF*TJ in the payee loop: the payee's tax id when N1*PE did not give one."""
        if self.claim is None and self.in_payee and els[1] == "TJ" and self.remit is not None:
            if self.remit.payee_tin is None:
                self.remit.payee_tin = els[2].strip() or None

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

    # -- closing ----------------------------------------------------------------------------------
    def _close_claim(self) -> None:
        c = self.claim
        if c is None:
            return
        total: Decimal | None = None
        for ln in c.service_lines:  # the lines' AMT*B6, summed from ZERO as sum() would
            allowed = ln.allowed_amount
            if allowed is not None:
                total = ZERO + allowed if total is None else total + allowed
        if total is not None:
            c.allowed_amount = total
        pr, shared = c.patient_responsibility, c.cost_sharing
        if pr is not None and shared is not None and pr != shared and shared:
            self.v.warn(
                "cost_sharing_mismatch",
                f"CLP05 patient responsibility {pr} differs from the CAS PR total {shared}",
                c.segment or 0, "CLP", "CLP05",
            )  # fmt: skip

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
