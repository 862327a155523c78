"""The deadline schedule for many claims at once (recomputing every open claim on demand).

Same rules as :func:`shared.rules.deadlines.compute_schedule`, on numpy arrays of dates: each
business-day step is two array look-ups in the calendar's dense index, so the cost per claim is a
few nanoseconds. Dates are ``datetime64[D]``; ``NaT`` marks a trigger that is not known (its
deadlines are ``NaT`` too). Extensions without a state scope are applied; state-scoped extensions
need the per-claim path.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from shared.rules.calendar import BusinessCalendar, Overrides, calendar_with

Dates = npt.NDArray[np.datetime64]
_EPOCH = date(1970, 1, 1).toordinal()
NAT = np.datetime64("NaT", "D")


class BulkCalendar:
    def __init__(self, cal: BusinessCalendar) -> None:
        self.first = np.datetime64(cal.first.isoformat(), "D")
        self.size = len(cal.next_business_index) - 1
        self.next = np.asarray(cal.next_business_index, dtype=np.int64)
        self.business = (np.asarray(cal.business_ordinals, dtype=np.int64) - _EPOCH).astype("datetime64[D]")
        self.count = len(self.business)

    def _take(self, index: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> Dates:
        ok = valid & (index >= 0) & (index < self.count)
        out = np.full(index.shape, NAT)
        out[ok] = self.business[index[ok]]
        return out

    def _offsets(self, days: Dates) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        off = (days - self.first).astype(np.int64)
        valid = ~np.isnat(days) & (off >= 0) & (off < self.size)
        return np.where(valid, off, 0), valid

    def beginning(self, days: Dates, n: int) -> Dates:
        off, valid = self._offsets(days)
        return self._take(self.next[off] + n - 1, valid)

    def after(self, days: Dates, n: int) -> Dates:
        off, valid = self._offsets(days)
        return self._take(self.next[off + 1] + n - 1, valid)


def _extend(name: str, due: Dates, overrides: Overrides) -> Dates:
    for ext in overrides.extensions:
        if ext.states is not None or name == "payment_deadline":
            continue
        if ext.deadlines is not None and name not in ext.deadlines:
            continue
        moves_to = np.datetime64(ext.moves_to.isoformat(), "D")
        start, end = np.datetime64(ext.start.isoformat(), "D"), np.datetime64(ext.end.isoformat(), "D")
        hit = (due >= start) & (due <= end) & (due < moves_to)
        due = np.where(hit, moves_to, due)
    return due


def bulk_schedule(
    *,
    initial_payment_received_on: Dates | None = None,
    open_negotiation_started_on: Dates | None = None,
    idr_initiated_on: Dates | None = None,
    idre_selected_on: Dates | None = None,
    determination_on: Dates | None = None,
    overrides: Overrides | None = None,
) -> dict[str, Dates]:
    """Part A item 6 deadlines for arrays of triggers (non-batched cooling-off)."""
    ov = overrides or Overrides()
    cal = BulkCalendar(calendar_with(ov.closures))
    out: dict[str, Dates] = {}
    if initial_payment_received_on is not None:
        out["open_negotiation_initiation_deadline"] = cal.beginning(initial_payment_received_on, 30)
    if open_negotiation_started_on is not None:
        out["open_negotiation_period_end"] = cal.beginning(open_negotiation_started_on, 30)
        out["idr_initiation_window_opens"] = cal.beginning(open_negotiation_started_on, 31)
        out["idr_initiation_deadline"] = cal.beginning(open_negotiation_started_on, 34)
    if idr_initiated_on is not None:
        out["idre_joint_selection_deadline"] = cal.after(idr_initiated_on, 3)
        out["departments_idre_selection_deadline"] = cal.after(idr_initiated_on, 6)
    if idre_selected_on is not None:
        out["conflict_attestation_deadline"] = cal.after(idre_selected_on, 3)
        out["offer_and_fee_deadline"] = cal.after(idre_selected_on, 10)
        out["determination_deadline"] = cal.after(idre_selected_on, 30)
    if determination_on is not None:
        out["payment_deadline"] = determination_on + np.timedelta64(30, "D")
        out["idre_fee_refund_deadline"] = cal.after(determination_on, 30)
        ends = determination_on + np.timedelta64(90, "D")
        out["cooling_off_ends"] = ends
        out["post_cooling_off_initiation_deadline"] = cal.beginning(ends + np.timedelta64(1, "D"), 30)
    return {name: _extend(name, due, ov) for name, due in out.items()}
