"""The 835 parser's throughput: claims per second on a generated remittance of 20,000 claims.

Printed next to, on the same bytes in the same run:
- a bare split: decode, split on the segment terminator and split each segment on the element
  separator (both read from the ISA), nothing else: the ceiling, doing none of the work of reading
  values;
- a model floor: the bare split plus building the same result objects (claims, lines, adjustments,
  Decimal amounts, cached dates) with no checks, no warnings and no lenient reading: what any
  reader of this data model costs at least, in this Python;
- x12sdk 2.2.0 (``X12ModelReader``, the claims of each transaction) and pyx12 4.0.0
  (``X12ContextReader``, the 2100 claim loops and their CLP values); a library that fails or
  returns a different number of claims is reported as such.

Checks before timing that our parser reads every claim with the generated amounts. Targets: at
least 2x the fastest library and at least 30% of the bare split. Timing is CPU time of this process
(``time.process_time``: the machine is shared, wall time counts other people's work), the best of
``IDRFLOW_BENCH_PARSE_REPEAT`` (5) runs taken in turns (split, floor, ours, split, ...) so a busy
moment hits all of them; a run's result is dropped before the next run's clock starts (freeing
200,000 objects is not parsing). ``IDRFLOW_BENCH_PARSE_CLAIMS`` changes the size; the libraries are
timed once (they are slow).
"""

from __future__ import annotations

import gc
import io
import os
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from services.intake.formats import Adjustment, ParsedClaim, ServiceLine, parse

N = int(os.environ.get("IDRFLOW_BENCH_PARSE_CLAIMS", "20000"))
REPEAT = int(os.environ.get("IDRFLOW_BENCH_PARSE_REPEAT", "5"))
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


def _separators(text: str) -> tuple[str, str]:
    """The element separator and the segment terminator of the generated (fixed-width) ISA."""
    return text[3], text[105]


def bare_split(data: bytes) -> int:
    """Decode, split on the terminator, split each segment on the element separator: nothing else."""
    text = data.decode("ascii")
    element, terminator = _separators(text)
    segments = text.split(terminator)
    for segment in segments:
        segment.split(element)
    return len(segments)


def bare_split_claims(data: bytes) -> int:
    """The CLP segments the bare split finds (checked once, not timed)."""
    text = data.decode("ascii")
    element, terminator = _separators(text)
    return sum(1 for s in text.split(terminator) if s.split(element)[0].strip() == "CLP")


def model_floor(data: bytes) -> list[ParsedClaim]:
    """The bare split plus the result objects ``parse`` builds from this file, with no checks:
    the least a reader of this model does (not a parser: it trusts every element). The cycle
    collector pauses, as in ``parse``."""
    gc.disable()
    try:
        return _floor(data)
    finally:
        gc.enable()


def _floor(data: bytes) -> list[ParsedClaim]:
    text = data.decode("ascii")
    element, terminator = _separators(text)
    claims: list[ParsedClaim] = []
    dates: dict[str, date] = {}
    claim: ParsedClaim | None = None
    line: ServiceLine | None = None
    for n, segment in enumerate(text.split(terminator), 1):
        els = segment.split(element)
        tag = els[0].lstrip()
        if tag == "DTM":
            raw = els[2]
            day = dates.get(raw)
            if day is None:
                day = dates[raw] = date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
            if line is not None:
                line.service_date = day
            elif claim is not None:
                claim.statement_from = day
        elif tag == "CAS" and line is not None:
            line.adjustments.append(Adjustment(els[1], els[2], Decimal(els[3])))
        elif tag == "REF" and line is not None:
            line.control_number = els[2]
        elif tag == "AMT" and line is not None:
            line.allowed_amount = Decimal(els[2])
        elif tag == "SVC" and claim is not None:
            code = els[1].split(":")
            line = ServiceLine(
                len(claim.service_lines) + 1, code[1], code[0], code[2:6], None, Decimal(els[2]),
                Decimal(els[3]), None, Decimal(els[5]), None, None, Decimal(0), [], [], None, None,
            )  # fmt: skip
            claim.service_lines.append(line)
        elif tag == "CLP":
            claim = ParsedClaim(
                els[1], els[7], els[2], None, False, None, None, None, None, None, None, None, None,
                Decimal(els[3]), Decimal(els[4]), Decimal(els[5]), Decimal(0), None, None, None, None,
                None, None, None, None, None, None, els[8], els[9], els[6], [], [], [], None, [], 0, n,
            )  # fmt: skip
            claims.append(claim)
            line = None
    return claims


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


def timed_in_turns(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The best CPU time of each function over ``repeat`` rounds, the functions taken in turns."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            result = None  # the last round's result is freed here, outside the clock
            start = time.process_time()
            result = fn()
            best[name] = min(best[name], time.process_time() - start)
            del result
    return best


def timed_once(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.process_time()
    count = fn()
    return time.process_time() - start, count


def main() -> None:
    console = Console()
    data, expected = generate_835(N)
    result = parse(data)
    got = [(c.claim_id, c.charge_amount, c.paid_amount) for c in result.claims]
    assert got == expected, "our parser disagrees with the generated file"
    assert bare_split_claims(data) == N, "the bare split does not find every CLP"
    floor = [(c.claim_id, c.charge_amount, c.paid_amount) for c in model_floor(data)]
    assert floor == expected, "the model floor disagrees with the generated file"
    del result
    console.print(f"checked: {N:,} claims read with the generated ids and amounts ({len(data) / 1e6:.1f} MB)")

    best = timed_in_turns(
        {"split": lambda: bare_split(data), "floor": lambda: model_floor(data), "ours": lambda: parse(data)},
        REPEAT,
    )
    rows: list[tuple[str, float | None, str]] = [
        ("bare split on the ISA's separators (ceiling)", N / best["split"], ""),
        ("model floor: split + the result objects, no checks", N / best["floor"], ""),
        ("idrflow parse() (claims, lines, adjustments, dates)", N / best["ours"], ""),
    ]
    for label, fn in (
        ("x12sdk 2.2.0 X12ModelReader", with_x12sdk),
        ("pyx12 4.0.0 X12ContextReader", with_pyx12),
    ):
        try:
            t, count = timed_once(lambda fn=fn: fn(data))  # type: ignore[misc]
        except Exception as exc:
            rows.append((label, None, f"failed: {type(exc).__name__}: {str(exc)[:80]}"))
            continue
        note = "" if count == N else f"returned {count:,} claims of {N:,}"
        rows.append((label, N / t, note))

    table = Table(title=f"835 parsing, one core (CPU time), {N:,} claims (2 service lines each)")
    for column, justify in (
        ("parser", "left"),
        ("claims/s", "right"),
        ("vs bare split", "right"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    split_rate = N / best["split"]
    for label, rate, note in rows:
        table.add_row(
            label, f"{rate:,.0f}" if rate else "-", f"{rate / split_rate:.1%}" if rate else "-", note
        )
    console.print(table)
    our_rate = N / best["ours"]
    libs = [rate for label, rate, note in rows[3:] if rate and not note]
    if libs:
        vs_libs = our_rate / max(libs)
        met = "met" if vs_libs >= 2 else "NOT met"
        console.print(
            f"idrflow vs the fastest library that read the file correctly: {vs_libs:.1f}x (target 2x: {met})"
        )
    else:
        console.print("no library read the file correctly (target 2x: not measurable)")
    vs_split = our_rate / split_rate
    met = "met" if vs_split >= 0.30 else "NOT met"
    console.print(f"idrflow vs the bare split: {vs_split:.1%} (target 30%: {met})")
    console.print(
        f"model floor vs the bare split: {best['split'] / best['floor']:.1%}; "
        f"idrflow vs the model floor: {best['floor'] / best['ours']:.1%}"
    )


if __name__ == "__main__":
    main()
