from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.models import Instrument, Side
from core.sizing import allocate, breakeven_price, price_to_tick, qty_down, round_down, round_up, scale_qty

from .builders import BTC, ETH

FRACTIONS_85_5 = [D("0.85"), D("0.05"), D("0.05"), D("0.05")]


@pytest.mark.parametrize(
    ("value", "step", "down", "up"),
    [
        (D("0.0299"), D("0.001"), D("0.029"), D("0.030")),
        (D("0.030"), D("0.001"), D("0.030"), D("0.030")),
        (D("65000.05"), D("0.10"), D("65000.0"), D("65000.1")),
        (D("7"), D("5"), D("5"), D("10")),
        (D("0"), D("0.01"), D("0"), D("0")),
    ],
)
def test_round_down_and_up(value, step, down, up):
    assert round_down(value, step) == down
    assert round_up(value, step) == up


@pytest.mark.parametrize(
    ("price", "mode", "expected"),
    [
        (D("65000.04"), "nearest", "65000.0"),
        (D("65000.06"), "nearest", "65000.1"),
        (D("65000.01"), "up", "65000.1"),
        (D("65000.09"), "down", "65000.0"),
    ],
)
def test_price_to_tick_prints_on_the_grid(price, mode, expected):
    assert str(price_to_tick(price, BTC, mode=mode)) == expected


def test_qty_keeps_the_step_exponent():
    assert str(qty_down(D("0.0105"), BTC)) == "0.010"
    assert str(qty_down(D("1.239"), ETH)) == "1.23"


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        # the pinned conservative example: 0.030 over 85/5/5/5
        ("0.030", FRACTIONS_85_5, ["0.025", "0.002", "0.001", "0.002"]),
        # one entry of three filled: tiny levels merge into the next, the remainder closes on the last
        ("0.010", FRACTIONS_85_5, ["0.008", "0.001", "0", "0.001"]),
        # under minOrderQty overall: all on the last level, the only order that can close it
        ("0.003", FRACTIONS_85_5, ["0.002", "0", "0", "0.001"]),
        # a single level takes everything
        ("0.030", [D("1")], ["0.030"]),
        # levels already hit weigh nothing
        ("0.005", [D("0"), D("0.05"), D("0.05"), D("0.05")], ["0", "0.001", "0.002", "0.002"]),
        # nothing left to weigh by: the whole remainder on the last level
        ("0.004", [D("0"), D("0")], ["0", "0.004"]),
        ("0", FRACTIONS_85_5, ["0", "0", "0", "0"]),
    ],
)
def test_allocate_table(total, weights, expected):
    got = allocate(D(total), weights, BTC)
    assert [str(q) if q else "0" for q in got] == expected
    assert sum(got) == D(total)


def test_allocate_merges_a_tiny_last_remainder_backwards():
    inst = Instrument("X", D("0.1"), D("1"), D("5"), D("1000"))
    # 12 over [0.5, 0.5]: 6 and 6; 11 over [0.9, 0.1]: 9, then 2 < min 5 merges back into the first
    assert allocate(D("12"), [D("0.5"), D("0.5")], inst) == [D("6"), D("6")]
    assert allocate(D("11"), [D("0.9"), D("0.1")], inst) == [D("11"), D("0")]


@given(
    steps=st.integers(min_value=1, max_value=100_000),
    weights=st.lists(st.decimals(min_value=0, max_value=1, places=3), min_size=1, max_size=10),
)
def test_allocate_always_sums_exactly_and_never_negative(steps, weights):
    total = D(steps) * BTC.qty_step
    got = allocate(total, weights, BTC)
    assert sum(got) == total
    assert all(q >= 0 for q in got)
    assert all(q == round_down(q, BTC.qty_step) for q in got)
    nonzero = [q for q in got if q > 0]
    if total >= BTC.min_qty * 2:
        assert all(q >= BTC.min_qty for q in nonzero)


@pytest.mark.parametrize(
    ("avg", "side", "expected"),
    [
        (D("60000"), Side.BUY, D("60048.0")),  # 60000 × 1.0008, already on the tick
        (D("60000.03"), Side.BUY, D("60048.1")),  # rounded up, away from the entry
        (D("60000"), Side.SELL, D("59952.0")),
        (D("60000.07"), Side.SELL, D("59952.0")),  # 59952.056 rounded down, away from the entry
    ],
)
def test_breakeven_price_rounds_away_from_entry(avg, side, expected):
    assert breakeven_price(avg, side, D("0.0008"), BTC) == expected


def test_mirror_scaling_rounds_down():
    assert scale_qty(D("0.030"), D("0.5"), BTC) == D("0.015")
    assert scale_qty(D("0.025"), D("0.33"), BTC) == D("0.008")
