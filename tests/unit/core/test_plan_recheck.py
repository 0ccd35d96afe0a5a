"""recheck_plan: a plan that comes back from storage or a message is validated again (pure)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from core.errors import PlanInvalid
from core.models import EntryLevel, Side
from core.plan import parse_request, recheck_plan
from tests.unit.core.test_plan_rules import BTC, INSTRUMENTS, LONG, MARKET, SHORT

D = Decimal


@pytest.mark.parametrize("request_", [LONG, SHORT, MARKET], ids=["long", "short", "market"])
def test_a_valid_plan_passes_with_and_without_the_instrument(request_):
    plan = parse_request(request_, instruments=INSTRUMENTS).plan
    recheck_plan(plan)
    recheck_plan(plan, BTC)


def test_a_tick_size_change_does_not_drop_a_live_monitor():
    plan = parse_request(LONG, instruments=INSTRUMENTS).plan
    recheck_plan(plan, dataclasses.replace(BTC, tick_size=D("1000"), qty_step=D("0.1")))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stop_loss": D("99000")}, "stop_loss"),  # a long's stop above its entries
        ({"side": Side.SELL}, "entries"),  # the long's ladder under a short
        ({"breakeven_after": 9}, "breakeven_after"),
        ({"fee_buffer": D("0.9")}, "fee_buffer"),
        ({"position_idx": 2}, "position_idx"),  # hedge short index on a long
    ],
)
def test_a_forged_plan_fails_naming_the_field(change, field):
    plan = dataclasses.replace(parse_request(LONG, instruments=INSTRUMENTS).plan, **change)
    with pytest.raises(PlanInvalid) as err:
        recheck_plan(plan)
    assert err.value.field.split("[")[0].split(".")[0] == field, err.value


def test_fractions_must_still_sum_to_one():
    plan = parse_request(SHORT, instruments=INSTRUMENTS).plan
    doubled = tuple(dataclasses.replace(t, fraction=t.fraction * 2) for t in plan.take_profits)
    with pytest.raises(PlanInvalid):
        recheck_plan(dataclasses.replace(plan, take_profits=doubled))


def test_size_limits_are_checked_when_the_instrument_is_known():
    plan = parse_request(LONG, instruments=INSTRUMENTS).plan
    huge = (EntryLevel(qty=D("5000"), price=D("60000")), *plan.entries[1:])
    forged = dataclasses.replace(plan, entries=huge)
    recheck_plan(forged)  # no instrument: only the rules that need none
    with pytest.raises(PlanInvalid) as err:
        recheck_plan(forged, BTC)
    assert err.value.field.startswith("entries[0]")


@pytest.mark.parametrize("digits", ["٥٨٠٠٠", "５８０００", "5٨000"])
def test_plans_take_ascii_decimals_only(digits):
    with pytest.raises(PlanInvalid) as err:
        parse_request({**LONG, "stop_loss": digits}, instruments=INSTRUMENTS)
    assert err.value.field == "stop_loss"
