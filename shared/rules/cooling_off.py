"""Which IDR initiation window a claim held by a prior determination's cooling-off has: the one
function the eligibility screen and the lifecycle workflow both use (audit 2026-11 rows 3, 9, 10).

42 U.S.C. 300gg-111(c)(5)(E)(ii)-(iii); 45 CFR 149.510(c)(4)(vii): for 90 calendar days after a
determination the party that submitted that dispute may not initiate IDR for the same parties and
item. If the end of open negotiation (business day 30) falls during that period, the party may
initiate within 30 business days beginning on the day after it ends; otherwise the normal window,
business days 31-34 of open negotiation, applies.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

Window = Literal["normal", "post_cooling_off"]


def initiation_window(
    open_negotiation_period_end: date,
    prior_determination_on: date | None,
    cooling_off_ends: date | None,
    *,
    prior_initiated_by_us: bool = True,
) -> Window:
    """``post_cooling_off`` when business day 30 of open negotiation falls inside the cooling-off
    (the day after the prior determination through ``cooling_off_ends``) and the prior dispute was
    ours to be barred from; ``normal`` otherwise (no prior, the other party initiated it, or open
    negotiation ended before or after the cooling-off)."""
    if prior_determination_on is None or cooling_off_ends is None or not prior_initiated_by_us:
        return "normal"
    inside = prior_determination_on < open_negotiation_period_end <= cooling_off_ends
    return "post_cooling_off" if inside else "normal"


def barred_on(
    day: date,
    prior_determination_on: date | None,
    cooling_off_ends: date | None,
    *,
    prior_initiated_by_us: bool = True,
) -> bool:
    """True when initiating on ``day`` falls inside the cooling-off for the barred party."""
    if prior_determination_on is None or cooling_off_ends is None or not prior_initiated_by_us:
        return False
    return prior_determination_on < day <= cooling_off_ends
