"""Every Part A deadline, fee boundaries, rule sets by date, overrides, and the bulk path."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.rules.bulk import bulk_schedule
from shared.rules.calendar import Closure, Extension, Overrides, federal_calendar
from shared.rules.deadlines import Triggers, compute_schedule
from shared.rules.rulesets import OutsideRuleSetsError, RuleConfig, batching_for, fees_for, idre_fee_range

CAL = federal_calendar()


def dates(**kw: object) -> dict[str, str | float | int]:
    return compute_schedule(Triggers.model_validate(kw)).as_dates()


def test_the_cms_worked_example() -> None:
    out = dates(open_negotiation_started_on="2023-03-06")
    assert out == {
        "open_negotiation_period_end": "2023-04-14",
        "idr_initiation_window_opens": "2023-04-17",
        "idr_initiation_deadline": "2023-04-20",
    }


def test_every_part_a_deadline_from_a_full_set_of_triggers() -> None:
    out = dates(
        bill_sent_on="2026-10-01",
        initial_payment_received_on="2026-11-02",
        open_negotiation_started_on="2026-11-16",
        idr_initiated_on="2027-01-05",
        idre_selected_on="2027-01-12",
        determination_on="2027-03-01",
    )
    assert out == {
        "initial_payment_deadline": "2026-10-31",  # calendar days do not roll off a Saturday
        "open_negotiation_initiation_deadline": "2026-12-15",
        "open_negotiation_period_end": "2026-12-29",  # skips Christmas 12-25
        "idr_initiation_window_opens": "2026-12-30",
        "idr_initiation_deadline": "2027-01-05",  # skips New Year's Day
        "idre_joint_selection_deadline": "2027-01-08",
        "departments_idre_selection_deadline": "2027-01-13",
        "offer_and_fee_deadline": "2027-01-27",  # skips MLK Day 2027-01-18
        "determination_deadline": "2027-02-25",  # skips MLK Day and Washington's Birthday
        "payment_deadline": "2027-03-31",
        "conflict_attestation_deadline": "2027-01-15",  # D6: 3 business days after selection
        "idre_fee_refund_deadline": "2027-04-12",
        "cooling_off_ends": "2027-05-30",  # a Sunday: calendar-day periods do not roll
        "post_cooling_off_initiation_deadline": "2027-07-14",  # Memorial Day, Juneteenth, July 5
        "administrative_fee_per_party": 15,
    }


def test_receipt_on_a_weekend_or_holiday_starts_the_count_on_the_next_business_day() -> None:
    weekend = dates(initial_payment_received_on="2026-11-07")  # Saturday
    monday = dates(initial_payment_received_on="2026-11-09")
    assert weekend == monday
    holiday = compute_schedule(Triggers(initial_payment_received_on=date(2026, 11, 11)))
    d = holiday.deadlines["open_negotiation_initiation_deadline"]
    assert d.due_on == CAL.business_day_beginning(date(2026, 11, 12), 30)
    assert "skipped 2026-11-11 Veterans Day" in d.explanation and d.rule_id == "D1"


def test_windows_across_thanksgiving_christmas_and_new_year() -> None:
    out = dates(open_negotiation_started_on="2027-11-15")
    # business days skip 11-25 Thanksgiving, 12-24 Christmas observed, 12-31 New Year's Day observed
    assert out["open_negotiation_period_end"] == "2027-12-28"
    assert out["idr_initiation_window_opens"] == "2027-12-29"
    assert out["idr_initiation_deadline"] == "2028-01-04"
    joint = compute_schedule(Triggers(idr_initiated_on=date(2027, 12, 29))).deadlines[
        "idre_joint_selection_deadline"
    ]
    assert joint.due_on == date(2028, 1, 4)
    assert "2027-12-31 New Year's Day (observed)" in joint.explanation


def test_juneteenth_observed_on_friday_2027_06_18() -> None:
    d = compute_schedule(Triggers(idre_selected_on=date(2027, 6, 16))).deadlines["offer_and_fee_deadline"]
    assert d.due_on == date(2027, 7, 1)
    assert "2027-06-18 Juneteenth National Independence Day (observed)" in d.explanation


@pytest.mark.parametrize(
    ("initiated", "fee"),
    [
        ("2022-04-15", 50),
        ("2022-12-31", 50),
        ("2023-01-01", 350),
        ("2023-08-02", 350),
        ("2023-08-03", 50),
        ("2024-01-21", 50),
        ("2024-01-22", 115),
        ("2026-06-10", 115),
        ("2026-06-11", 15),
    ],
)
def test_administrative_fee_boundaries(initiated: str, fee: int) -> None:
    assert dates(idr_initiated_on=initiated)["administrative_fee_per_party"] == fee


def test_no_fee_before_federal_idr_existed() -> None:
    with pytest.raises(OutsideRuleSetsError):
        fees_for(date(2022, 4, 14))


def test_batched_idre_fee_tiers() -> None:
    fees = fees_for(date(2026, 7, 1))
    assert idre_fee_range(fees, batched=False) == (Decimal(200), Decimal(840))
    assert idre_fee_range(fees, batched=True, line_items=25) == (Decimal(268), Decimal(1173))
    assert idre_fee_range(fees, batched=True, line_items=26) == (Decimal(343), Decimal(1423))
    assert idre_fee_range(fees, batched=True, line_items=51) == (Decimal(418), Decimal(1673))
    assert idre_fee_range(fees_for(date(2023, 5, 1)), batched=True, line_items=80) == (
        Decimal(268),
        Decimal(938),
    )


def test_batching_rule_set_and_batched_cooling_off_by_open_negotiation_start() -> None:
    assert batching_for(date(2026, 10, 31)).line_item_cap is None
    assert batching_for(date(2026, 11, 1)).line_item_cap == 50
    later = compute_schedule(
        Triggers(
            open_negotiation_started_on=date(2026, 11, 2), determination_on=date(2027, 3, 1), batched=True
        )
    ).deadlines["cooling_off_ends"]
    assert later.due_on == CAL.business_days_after(date(2027, 3, 1), 30) and later.rule_set == "batching-2026"
    earlier = compute_schedule(
        Triggers(
            open_negotiation_started_on=date(2026, 10, 30), determination_on=date(2027, 3, 1), batched=True
        )
    ).deadlines["cooling_off_ends"]
    assert earlier.due_on == date(2027, 3, 1) + timedelta(days=90)


def test_switched_features_appear_only_when_switched_on() -> None:
    t = Triggers(open_negotiation_started_on=date(2027, 3, 1), idre_selected_on=date(2027, 5, 3))
    assert "open_negotiation_response_deadline" not in compute_schedule(t).deadlines
    cfg = RuleConfig(
        open_negotiation_response_notice_from=date(2027, 1, 1),
        eligibility_review_5_days_from=date(2027, 1, 1),
    )
    on = compute_schedule(t, config=cfg).deadlines
    assert on["open_negotiation_response_deadline"].due_on == CAL.business_day_beginning(date(2027, 3, 1), 15)
    assert on["eligibility_determination_deadline"].due_on == CAL.business_days_after(date(2027, 5, 3), 5)


def test_improper_batch_resubmission_window() -> None:
    out = dates(idr_initiated_on="2026-11-02", improper_batch_notice_on="2026-11-24")
    assert out["improper_batch_resubmission_deadline"] == "2026-12-01"  # skips Thanksgiving


def test_a_closure_and_an_extension_move_deadlines_and_say_so() -> None:
    t = Triggers(initial_payment_received_on=date(2026, 11, 2), state="TX")
    closure = Overrides(
        closures=(Closure(date(2026, 12, 24), date(2026, 12, 24), "Executive order closure"),)
    )
    plain = compute_schedule(Triggers(open_negotiation_started_on=date(2026, 11, 16))).deadlines
    closed = compute_schedule(
        Triggers(open_negotiation_started_on=date(2026, 11, 16)), overrides=closure
    ).deadlines
    assert closed["idr_initiation_deadline"].due_on == plain["idr_initiation_deadline"].due_on + timedelta(
        days=1
    )
    assert "2026-12-24 Executive order closure" in closed["idr_initiation_deadline"].explanation

    storm = Extension(
        start=date(2026, 12, 1),
        end=date(2026, 12, 31),
        moves_to=date(2027, 1, 15),
        name="Hurricane extension",
        reference="CMS notice 2026-12",
        deadlines=frozenset({"open_negotiation_initiation_deadline"}),
        states=frozenset({"TX"}),
    )
    moved = compute_schedule(t, overrides=Overrides(extensions=(storm,))).deadlines[
        "open_negotiation_initiation_deadline"
    ]
    assert moved.due_on == date(2027, 1, 15) and moved.moved_by == ("Hurricane extension",)
    assert (
        "moved from 2026-12-15 to 2027-01-15 by Hurricane extension (CMS notice 2026-12)" in moved.explanation
    )
    elsewhere = compute_schedule(
        t.model_copy(update={"state": "NY"}), overrides=Overrides(extensions=(storm,))
    )
    assert elsewhere.deadlines["open_negotiation_initiation_deadline"].due_on == date(2026, 12, 15)


def test_the_payment_deadline_can_never_be_extended() -> None:
    everything = Extension(date(2027, 1, 1), date(2027, 12, 31), date(2028, 6, 1), "blanket")
    out = compute_schedule(
        Triggers(determination_on=date(2027, 3, 1)), overrides=Overrides(extensions=(everything,))
    )
    assert out.deadlines["payment_deadline"].due_on == date(2027, 3, 31)
    assert out.deadlines["idre_fee_refund_deadline"].due_on == date(2028, 6, 1)


@pytest.mark.parametrize(
    ("triggers", "field"),
    [
        (
            {"bill_sent_on": "2026-11-05", "initial_payment_received_on": "2026-11-02"},
            "initial_payment_received_on",
        ),
        ({"open_negotiation_started_on": "2026-12-01", "idr_initiated_on": "2026-11-30"}, "idr_initiated_on"),
        ({"idre_selected_on": "2027-01-05", "determination_on": "2027-01-04"}, "determination_on"),
        ({"idr_initiated_on": "2026-02-30"}, "idr_initiated_on"),
        ({"surprise": "2026-01-01"}, "surprise"),
    ],
)
def test_bad_triggers_name_the_field(triggers: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Triggers.model_validate(triggers)
    assert field in str(err.value)


received = st.dates(min_value=date(2016, 1, 1), max_value=date(2040, 12, 31))


@settings(max_examples=150, deadline=None)
@given(received, st.integers(0, 40), st.integers(40, 50), st.integers(1, 10), st.integers(1, 500))
def test_every_business_day_deadline_is_a_business_day_and_bulk_agrees(
    start: date, on_gap: int, init_gap: int, sel_gap: int, det_gap: int
) -> None:
    on = start + timedelta(days=on_gap)
    init = on + timedelta(days=init_gap)
    sel = init + timedelta(days=sel_gap)
    det = sel + timedelta(days=det_gap)
    t = Triggers(
        initial_payment_received_on=start,
        open_negotiation_started_on=on,
        idr_initiated_on=init if init >= date(2022, 4, 15) else None,
        idre_selected_on=sel,
        determination_on=det,
    )
    schedule = compute_schedule(t)
    for d in schedule.deadlines.values():
        if d.name not in ("payment_deadline", "cooling_off_ends", "initial_payment_deadline"):
            assert CAL.is_business_day(d.due_on), d
    bulk = bulk_schedule(
        **{
            k: np.array([v.isoformat() if v else "NaT"], dtype="datetime64[D]")
            for k, v in t.model_dump(
                include={
                    "initial_payment_received_on",
                    "open_negotiation_started_on",
                    "idr_initiated_on",
                    "idre_selected_on",
                    "determination_on",
                }
            ).items()
        }
    )
    for name, d in schedule.deadlines.items():
        assert str(bulk[name][0]) == d.due_on.isoformat(), name


@settings(max_examples=150, deadline=None)
@given(received, received)
def test_later_triggers_never_give_earlier_deadlines(a: date, b: date) -> None:
    early, late = sorted((a, b))
    for key in (
        "initial_payment_received_on",
        "open_negotiation_started_on",
        "idre_selected_on",
        "determination_on",
    ):
        e = compute_schedule(Triggers.model_validate({key: early})).deadlines
        lt = compute_schedule(Triggers.model_validate({key: late})).deadlines
        assert all(e[n].due_on <= lt[n].due_on for n in e)
