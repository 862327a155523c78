"""A generated corpus: thousands of claims written as 835s in varied separator and terminator
styles, parsed back to the values they were written with."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.intake.formats import parse

CODES = ("99281", "99283", "99285", "70450", "J1885", "96374", "0450")
# element, component, terminator (with what follows it), declared component (None: as used)
STYLES = [
    ("*", ":", "~\n", None),
    ("*", ">", "~", None),
    ("|", "^", "\n", None),
    ("*", ":", "~\r\n", None),
    ("^", "\\", "'", None),
    ("*", ">", "~\n", ":"),  # ':' declared, '>' used
    ("*", ":", "~", "no ISA"),
]


@dataclass
class Line:
    code: str
    modifiers: list[str]
    charge: Decimal
    paid: Decimal
    share: Decimal
    day: date


@dataclass
class Claim:
    claim_id: str
    status: str
    lines: list[Line]

    @property
    def charge(self) -> Decimal:
        return sum((ln.charge for ln in self.lines), Decimal(0))

    @property
    def paid(self) -> Decimal:
        return sum((ln.paid for ln in self.lines), Decimal(0))


def make_claims(rng: random.Random, n: int, start: int) -> list[Claim]:
    claims = []
    for i in range(n):
        lines = []
        for _ in range(rng.randint(1, 4)):
            charge = Decimal(rng.randint(100, 900_000)) / 100
            paid = (charge * Decimal(rng.randint(0, 100)) / 100).quantize(Decimal("0.01"))
            share = min(charge - paid, Decimal(rng.randint(0, 10_000)) / 100)
            mods = rng.sample(["25", "59", "26", "TC"], rng.randint(0, 2))
            day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 900))
            lines.append(Line(rng.choice(CODES), mods, charge, paid, share, day))
        status = rng.choice(["1", "1", "1", "2", "4", "22"])
        claims.append(Claim(f"C{start + i:07d}", status, lines))
    return claims


def write_835(claims: list[Claim], style: tuple[str, str, str, str | None]) -> bytes:
    e, c, t, declared = style
    segs: list[str] = []
    if declared != "no ISA":
        isa = [
            "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "PAYER".ljust(15), "ZZ", "PROVIDER".ljust(15),
            "260110", "1200", "U" if e == "^" else "^", "00501", "000000001", "0", "P",
        ]  # fmt: skip
        segs.append(e.join(isa) + e + (declared or c))
        segs.append(e.join(["GS", "HP", "PAYER", "PROVIDER", "20260110", "1200", "1", "X", "005010X221A1"]))
    segs += [
        e.join(["ST", "835", "0001"]),
        e.join(
            ["BPR", "I", str(sum((x.paid for x in claims), Decimal(0))), "C", "ACH", *[""] * 11, "20260110"]
        ),
        e.join(["TRN", "1", "EFT1", "1234567890"]),
        e.join(["N1", "PR", "GENERATED PLAN"]),
        e.join(["N1", "PE", "GENERATED GROUP", "XX", "1234567893"]),
    ]
    for k, claim in enumerate(claims):
        share = sum((ln.share for ln in claim.lines), Decimal(0))
        segs.append(e.join(["LX", str(k + 1)]))
        clp = ["CLP", claim.claim_id, claim.status, str(claim.charge), str(claim.paid), str(share), "12"]
        segs.append(e.join([*clp, f"P{claim.claim_id}"]))
        for ln in claim.lines:
            segs.append(
                e.join(["SVC", c.join(["HC", ln.code, *ln.modifiers]), str(ln.charge), str(ln.paid), "", "1"])
            )
            segs.append(e.join(["DTM", "472", ln.day.strftime("%Y%m%d")]))
            co = ln.charge - ln.paid - ln.share
            if co:
                segs.append(e.join(["CAS", "CO", "45", str(co)]))
            if ln.share:
                segs.append(e.join(["CAS", "PR", "2", str(ln.share)]))
    segs.append(e.join(["SE", str(len(segs)), "0001"]))
    if declared != "no ISA":
        segs += [e.join(["GE", "1", "1"]), e.join(["IEA", "1", "000000001"])]
    return (t.join(segs) + t).encode()


@pytest.mark.parametrize("style", STYLES, ids=[repr(s) for s in STYLES])
def test_generated_claims_round_trip(style: tuple[str, str, str, str | None]) -> None:
    rng = random.Random(STYLES.index(style))
    claims = make_claims(rng, 600, 0)
    result = parse(write_835(claims, style))
    assert result.format == "x12-835"
    assert len(result.claims) == len(claims)
    for want, got in zip(claims, result.claims, strict=True):
        assert (got.claim_id, got.status, got.charge_amount, got.paid_amount) == (
            want.claim_id, want.status, want.charge, want.paid,
        )  # fmt: skip
        assert got.cost_sharing == sum((ln.share for ln in want.lines), Decimal(0))
        assert got.payee_npi == "1234567893" and got.payment_date == date(2026, 1, 10)
        read = [
            (g.procedure_code, g.modifiers, g.charge_amount, g.paid_amount, g.service_date, g.cost_sharing)
            for g in got.service_lines
        ]
        assert read == [(w.code, w.modifiers, w.charge, w.paid, w.day, w.share) for w in want.lines]
    unexpected = {w.code for w in result.warnings} - {
        "duplicate_claim_id",
        "component_separator",
        "no_envelope",
    }
    assert not unexpected


def test_several_interchanges_in_different_styles_in_one_file() -> None:
    rng = random.Random(5)
    parts, everything = [], []
    for k, style in enumerate(STYLES[:5]):
        claims = make_claims(rng, 300, k * 1000)
        everything += claims
        parts.append(write_835(claims, style))
    result = parse(b"\n".join(parts))
    assert [c.claim_id for c in result.claims] == [c.claim_id for c in everything]
    assert [c.paid_amount for c in result.claims] == [c.paid for c in everything]
    assert len(result.remittances) == 5
