"""Small X12 files for tests, written here (not copied from anywhere): an 837P and an 835."""

from __future__ import annotations

import itertools

_control = itertools.count(100)


def _isa(sender: str, receiver: str, control: int, sep: str = "*", comp: str = ":", term: str = "~") -> str:
    e = sep
    return (
        f"ISA{e}00{e}{' ' * 10}{e}00{e}{' ' * 10}{e}ZZ{e}{sender:<15}{e}ZZ{e}{receiver:<15}"
        f"{e}261105{e}1200{e}^{e}00501{e}{control:09d}{e}0{e}P{e}{comp}{term}"
    )


def x837(
    claim_id: str,
    *,
    billed: str = "2400",
    code: str = "99285",
    service_date: str = "20260928",
    created: str = "20260930",
    pos: str = "23",
    filing: str = "CI",
    npi: str = "1234567893",
    tin: str = "123456789",
    payer: str = "ACME HEALTH PLAN",
) -> str:
    n = next(_control)
    segments = [
        f"GS*HC*METROEM*ACMEHEALTH*{created}*1200*{n}*X*005010X222A1",
        "ST*837*0001*005010X222A1",
        f"BHT*0019*00*B{n}*{created}*1200*CH",
        "NM1*41*2*METRO EMERGENCY*****46*METRO1",
        "NM1*40*2*ACME*****46*ACME",
        "HL*1**20*1",
        f"NM1*85*2*METRO EMERGENCY PHYSICIANS*****XX*{npi}",
        f"REF*EI*{tin}",
        "HL*2*1*22*0",
        f"SBR*P*18*******{filing}",
        "NM1*IL*1*DOE*JANE****MI*MEM123",
        f"NM1*PR*2*{payer}*****PI*ACME",
        f"CLM*{claim_id}*{billed}***{pos}:B:1*Y*A*Y*Y",
        "LX*1",
        f"SV1*HC:{code}*{billed}*UN*1***1",
        f"DTP*472*D8*{service_date}",
    ]
    body = "~".join(segments) + "~"
    return _isa("METROEM", "ACMEHEALTH", n) + body + f"SE*{len(segments) - 1}*0001~GE*1*{n}~IEA*1*{n:09d}~"


def x835(
    claims: list[dict[str, str]],
    *,
    trace: str | None = None,
    paid_on: str = "20261105",
    npi: str = "1234567893",
    payer: str = "ACME HEALTH PLAN",
    sep: str = "*",
    term: str = "~",
) -> str:
    """Each claim: claim_id, billed, paid, and optionally status (1), filing (12), pccn, pr (cost
    sharing), code (99285), service_date (20260928)."""
    n = next(_control)
    total = sum(float(c["paid"]) for c in claims)
    segments = [
        f"GS*HP*ACMEHEALTH*METROEM*{paid_on}*1200*{n}*X*005010X221A1",
        "ST*835*0001",
        f"BPR*I*{total:.2f}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999999999*DA*654321*{paid_on}",
        f"TRN*1*{trace or f'EFT{n}'}*1512345678",
        f"N1*PR*{payer}",
        f"N1*PE*METRO EMERGENCY*XX*{npi}",
        "LX*1",
    ]
    for c in claims:
        pr = c.get("pr")
        segments.append(
            f"CLP*{c['claim_id']}*{c.get('status', '1')}*{c['billed']}*{c['paid']}*{pr or 0}"
            f"*{c.get('filing', '12')}*{c.get('pccn', 'PCN' + c['claim_id'])}*23"
        )
        if pr:
            segments.append(f"CAS*PR*2*{pr}")
        segments.append(f"SVC*HC:{c.get('code', '99285')}*{c['billed']}*{c['paid']}")
        segments.append(f"DTM*472*{c.get('service_date', '20260928')}")
    body = term.join(s.replace("*", sep) for s in segments) + term
    trailer = term.join(
        s.replace("*", sep) for s in (f"SE*{len(segments) + 1}*0001", f"GE*1*{n}", f"IEA*1*{n:09d}")
    )
    return _isa("ACMEHEALTH", "METROEM", n, sep=sep, term=term) + body + trailer + term
