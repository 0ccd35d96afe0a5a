"""Mirror scaling: round down, merge what cannot stand alone, None when nothing can."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import FixInput
from core.mirror import equity_ratio, mirror_plan
from core.models import EntryLevel, Instrument, Plan
from core.plan import validate_plan
from core.sizing import qty_down
from tests.unit.core.strategies import plan_and_instrument
from tests.unit.core.test_plan_parse import EXPECTED

D = Decimal
# BTCUSDT with minOrderQty 0.002 on a 0.001 grid, so that merging shows
BTC = Instrument("BTCUSDT", tick_size=D("0.10"), qty_step=D("0.001"), min_qty=D("0.002"), max_qty=D("100"))


def entries(*pairs: tuple[str, str | None]) -> tuple[EntryLevel, ...]:
    return tuple(EntryLevel(D(q), None if p is None else D(p)) for q, p in pairs)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("1", (("0.010", "60000"), ("0.010", "59500"), ("0.010", "59000"))),
        ("0.5", (("0.005", "60000"), ("0.005", "59500"), ("0.005", "59000"))),
        ("0.33", (("0.003", "60000"), ("0.003", "59500"), ("0.003", "59000"))),  # 0.0033 rounded down
        ("0.25", (("0.002", "60000"), ("0.002", "59500"), ("0.002", "59000"))),  # 0.0025 rounded down
        # 0.0015 cannot stand alone: carried into E2 (0.003), E3's joins E2 from behind (0.0045 → 0.004)
        ("0.15", (("0.004", "59500"),)),
        # 0.001 each: E1 carried into E2 (0.002), E3 joins E2 from behind (0.003)
        ("0.1", (("0.003", "59500"),)),
        ("0.01", None),  # 0.0003 in all: under minOrderQty
        ("0", None),
    ],
)
def test_mirror_scaling_table(ratio: str, expected: tuple[tuple[str, str], ...] | None) -> None:
    result = mirror_plan(EXPECTED, D(ratio), BTC)
    if expected is None:
        assert result is None
        return
    assert result is not None
    assert [(str(e.qty), str(e.price)) for e in result.entries] == list(expected)
    assert result.mirror is False
    assert result.take_profits == EXPECTED.take_profits
    assert result.stop_loss == EXPECTED.stop_loss
    assert result.breakeven_after == EXPECTED.breakeven_after
    assert result.fee_buffer == EXPECTED.fee_buffer


def test_merge_forward_keeps_the_deeper_price_and_the_tail_merges_back() -> None:
    plan = dataclasses.replace(
        EXPECTED, entries=entries(("0.010", "60000"), ("0.030", "59500"), ("0.010", "59000"))
    )
    result = mirror_plan(plan, D("0.15"), BTC)
    assert result is not None
    # 0.0015 → carried; 0.0015 + 0.0045 = 0.006 at 59500; 0.0015 → back into 59500: 0.0075 → 0.007
    assert result.entries == entries(("0.007", "59500"))


def test_every_scaled_entry_is_rounded_down() -> None:
    plan = dataclasses.replace(EXPECTED, entries=entries(("0.017", "60000"), ("0.019", "59500")))
    result = mirror_plan(plan, D("0.5"), BTC)
    assert result is not None
    assert result.entries == entries(("0.008", "60000"), ("0.009", "59500"))  # 0.0085, 0.0095


def test_entries_under_the_minimum_order_value_merge_too() -> None:
    inst = dataclasses.replace(BTC, min_qty=D("0.001"), min_notional=D("100"))
    result = mirror_plan(EXPECTED, D("0.15"), inst)  # 0.0015 → 0.001 × ~60000 = 60 < 100
    assert result is not None
    # E1 0.001 × 60000 = 60 and E3 0.001 × 59000 = 59 are under 100: both join E2 (0.0045 → 0.004)
    assert result.entries == entries(("0.004", "59500"))


def test_market_entry() -> None:
    plan = dataclasses.replace(EXPECTED, entries=entries(("0.030", None)))
    result = mirror_plan(plan, D("0.333"), BTC)
    assert result is not None
    assert result.entries == entries(("0.009", None))
    assert mirror_plan(plan, D("0.05"), BTC) is None  # 0.0015 < 0.002


def test_adopted_plan_is_kept_as_is() -> None:
    plan = dataclasses.replace(EXPECTED, entries=(), adopt=True)
    assert mirror_plan(plan, D("0.5"), BTC) == dataclasses.replace(plan, mirror=False)


def test_bad_ratio_and_instrument() -> None:
    with pytest.raises(FixInput) as err:
        mirror_plan(EXPECTED, D("-1"), BTC)
    assert err.value.field == "ratio"
    with pytest.raises(FixInput) as err:
        mirror_plan(EXPECTED, D("10001"), BTC)  # 0.010 × 10001 = 100.01 > maxOrderQty 100
    assert err.value.field == "ratio"
    assert "above the largest order the exchange takes (100)" in err.value.problem
    with pytest.raises(ValueError, match="ETHUSDT"):
        mirror_plan(EXPECTED, D("1"), dataclasses.replace(BTC, symbol="ETHUSDT"))


def test_equity_ratio() -> None:
    assert equity_ratio(D("10000"), D("2500")) == D("0.25")
    assert equity_ratio(D("10000"), D("0")) == 0
    for main in (D("0"), D("-5")):
        with pytest.raises(FixInput) as err:
            equity_ratio(main, D("100"))
        assert err.value.field == "main_equity"
    with pytest.raises(FixInput) as err:
        equity_ratio(D("100"), D("-1"))
    assert err.value.field == "mirror_equity"


@settings(max_examples=200)
@given(plan_and_instrument(), st.decimals(min_value=D("0"), max_value=D("3"), places=4))
def test_mirrored_plans_are_valid_and_never_larger(pi: tuple[Plan, Instrument], ratio: Decimal) -> None:
    plan, inst = pi
    result = mirror_plan(plan, ratio, inst)
    if result is None:
        # nothing could stand alone: not even the whole mirrored size, at the last entry's price
        total = qty_down(plan.planned_qty * ratio, inst)
        last_price = plan.entries[-1].price
        assert total < inst.min_qty or (
            last_price is not None and inst.min_notional > 0 and total * last_price < inst.min_notional
        )
        return
    validate_plan(result, inst)
    assert result.planned_qty <= plan.planned_qty * ratio
    assert result.mirror is False
    prices = [e.price for e in plan.entries]
    assert all(e.price in prices for e in result.entries)
    assert dataclasses.replace(result, entries=plan.entries, mirror=plan.mirror) == plan
