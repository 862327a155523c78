"""The 835 parser's throughput: claims per second on a generated remittance of 20,000 claims.

Printed next to, on the same bytes in the same run:
- a bare split (decode, split on the segment terminator and the element separator read from the
  ISA): the ceiling, doing none of the work of reading values;
- x12sdk 2.2.0 (``X12ModelReader``, the claims of each transaction) and pyx12 4.0.0
  (``X12ContextReader``, the 2100 claim loops and their CLP values); a library that fails or
  returns a different number of claims is reported as such.

Checks before timing that our parser reads every claim with the generated amounts. Targets: at
least 2x the fastest library and at least 30% of the bare split. ``IDRFLOW_BENCH_PARSE_CLAIMS``
changes the size; the libraries are timed once (they are slow), our parser and the split 3 times.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from services.intake.formats import parse

N = int(os.environ.get("IDRFLOW_BENCH_PARSE_CLAIMS", "20000"))
CODES = ("99283", "99284", "99285", "70450", "71046", "93010", "J1885", "96374")


def generate_835(n: int, seed: int = 11) -> tuple[bytes, list[tuple[str, Decimal, Decimal]]]:
    """An 835 of ``n`` claims (two service lines each), one segment per line, and what it holds."""
    import random

    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    claims: list[str] = []
    expected: list[tuple[str, Decimal, Decimal]] = []
    total = Decimal(0)
    for i in range(n):
        charges = [Decimal(rng.randint(5000, 500000)) / 100 for _ in range(2)]
        paids = [(c * Decimal(rng.randint(10, 90)) / 100).quantize(Decimal("0.01")) for c in charges]
        shares = [Decimal(rng.randint(1, 5000)) / 100 for _ in range(2)]
        charge, paid = sum(charges, Decimal(0)), sum(paids, Decimal(0))
        total += paid
        claim_id = f"PCN{i:08d}"
        expected.append((claim_id, charge, paid))
        segs = [
            f"LX*{i + 1}",
            f"CLP*{claim_id}*1*{charge}*{paid}*{sum(shares, Decimal(0))}*12*{7000000000 + i}*11*1",
            "NM1*QC*1*DOE*JANE****MI*W000000000",
            "DTM*232*20260105",
            "DTM*233*20260105",
        ]
        for k in range(2):
            adj = charges[k] - paids[k] - shares[k]
            segs += [f"SVC*HC:{rng.choice(CODES)}:25*{charges[k]}*{paids[k]}**1", "DTM*472*20260105"]
            if adj:  # x12sdk refuses an adjustment of zero
                segs.append(f"CAS*CO*45*{adj}")
            segs += [
                f"CAS*PR*2*{shares[k]}",
                f"REF*6R*{i}-{k}",
                f"AMT*B6*{paids[k] + shares[k]}",
            ]
            if k == 1 and i % 7 == 0:
                segs.append("LQ*HE*N830")
        claims.append("~\n".join(segs))
    body = "~\n".join(claims)
    header = (
        "ISA*00*          *00*          *ZZ*PAYER          *ZZ*PROVIDER       *260110*1200*^*00501*"
        "000000001*0*P*:~\nGS*HP*PAYER*PROVIDER*20260110*1200*1*X*005010X221A1~\nST*835*0001~\n"
        f"BPR*I*{total}*C*ACH*CCP*01*999999999*DA*123456*1234567890**01*888888888*DA*654321*20260110~\n"
        "TRN*1*EFT0000001*1234567890~\nDTM*405*20260109~\nN1*PR*ACME HEALTH PLAN~\n"
        "N3*1 PLAN WAY~\nN4*DALLAS*TX*75201~\nN1*PE*METRO EMERGENCY PHYSICIANS*XX*1234567893~\n"
        "N3*2 CLINIC ROAD~\nN4*DALLAS*TX*75202~\nREF*TJ*123456789~\n"
    )
    count = header.count("~") + body.count("~") + 2
    trailer = f"~\nSE*{count - 2}*0001~\nGE*1*1~\nIEA*1*000000001~\n"
    return (header + body + trailer).encode(), expected


def bare_split(data: bytes) -> int:
    text = data.decode("ascii")
    element, terminator = text[3], text[105]
    segments = text.replace("\n", "").split(terminator)
    return sum(1 for s in segments if s.split(element)[0] == "CLP")


def ours(data: bytes) -> int:
    return len(parse(data).claims)


def with_x12sdk(data: bytes) -> int:
    from x12sdk.io import X12ModelReader

    count = 0
    with X12ModelReader(data.decode("ascii")) as reader:
        for model in reader.models():
            for claim in model.claims():  # type: ignore[attr-defined]
                _ = (claim.patient_control_number, claim.charge, claim.paid)
                count += 1
    return count


def with_pyx12(data: bytes) -> int:
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12context

    param = pyx12.params.params()
    errh = pyx12.error_handler.errh_null()
    reader = pyx12.x12context.X12ContextReader(param, errh, io.StringIO(data.decode("ascii")))
    count = 0
    for node in reader.iter_segments("2100"):
        if node.id == "2100":
            _ = (node.get_value("CLP01"), node.get_value("CLP03"), node.get_value("CLP04"))
            count += 1
    return count


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    console = Console()
    data, expected = generate_835(N)
    result = parse(data)
    got = [(c.claim_id, c.charge_amount, c.paid_amount) for c in result.claims]
    assert got == expected, "our parser disagrees with the generated file"
    console.print(f"checked: {N:,} claims read with the generated ids and amounts ({len(data) / 1e6:.1f} MB)")

    rows: list[tuple[str, float | None, str]] = []
    t_split, n_split = timed(lambda: bare_split(data), 3)
    assert n_split == N
    rows.append(("bare split on the ISA's separators (ceiling)", N / t_split, ""))
    t_ours, _ = timed(lambda: ours(data), 3)
    rows.append(("idrflow parse() (claims, lines, adjustments, dates)", N / t_ours, ""))
    for label, fn in (
        ("x12sdk 2.2.0 X12ModelReader", with_x12sdk),
        ("pyx12 4.0.0 X12ContextReader", with_pyx12),
    ):
        try:
            t, count = timed(lambda fn=fn: fn(data), 1)  # type: ignore[misc]
        except Exception as exc:
            rows.append((label, None, f"failed: {type(exc).__name__}: {str(exc)[:80]}"))
            continue
        note = "" if count == N else f"returned {count:,} claims of {N:,}"
        rows.append((label, N / t, note))

    table = Table(title=f"835 parsing, one core, {N:,} claims (2 service lines each)")
    for column, justify in (
        ("parser", "left"),
        ("claims/s", "right"),
        ("vs bare split", "right"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    split_rate = N / t_split
    for label, rate, note in rows:
        table.add_row(
            label, f"{rate:,.0f}" if rate else "-", f"{rate / split_rate:.2f}x" if rate else "-", note
        )
    console.print(table)
    libs = [rate for label, rate, note in rows[2:] if rate and not note]
    our_rate = N / t_ours
    if libs:
        console.print(
            f"idrflow vs the fastest library that read the file correctly: {our_rate / max(libs):.1f}x"
        )
    else:
        console.print("no library read the file correctly")
    console.print(f"idrflow vs the bare split: {our_rate / split_rate:.0%} (target: at least 30%)")


if __name__ == "__main__":
    main()
