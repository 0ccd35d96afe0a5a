"""Presets fill exactly what they document, and nothing the request gives explicitly."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from core.errors import PlanInvalid
from core.models import EntryLevel, Instrument, Plan, Side, TakeProfitLevel
from core.plan import parse_request
from core.presets import CONSERVATIVE, FAST, PRESETS, get_preset, lay_out_entries, split_equal
from tests.unit.core.test_plan_rules import BTC, INSTRUMENTS, LONG

D = Decimal
COARSE = Instrument("COARSEUSDT", tick_size=D("1"), qty_step=D("1"), min_qty=D("1"), max_qty=D("1000"))


def parse(data: dict[str, Any], **kw: Any) -> Plan:
    return parse_request(data, instruments={**INSTRUMENTS, COARSE.symbol: COARSE}, **kw).plan


def shorthand(side: str = "Buy", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account": "main",
        "symbol": "BTCUSDT",
        "side": side,
        "preset": "conservative",
        "entry_price": "60000",
        "qty": "0.010",
        "take_profits": ["62000", "63000", "64000", "65000"]
        if side == "Buy"
        else ["58000", "57000", "56000", "55000"],
        "stop_loss": "58000" if side == "Buy" else "62000",
    }
    data.update(extra)
    return data


def test_every_preset_is_documented_and_sums_to_one() -> None:
    import core.presets as module

    assert set(PRESETS) == {"conservative", "fast"}
    for preset in PRESETS.values():
        assert sum(preset.tp_fractions) == 1
        assert f"``{preset.name}``" in (module.__doc__ or "")


def test_conservative_lays_out_three_entries_for_a_long() -> None:
    plan = parse(shorthand())
    assert plan.entries == (
        EntryLevel(D("0.004"), D("60000")),  # the remainder of 0.010 / 3 goes on the first
        EntryLevel(D("0.003"), D("59700")),  # -0.5 %
        EntryLevel(D("0.003"), D("59400")),  # -1.0 %
    )
    assert [t.fraction for t in plan.take_profits] == [D("0.85"), D("0.05"), D("0.05"), D("0.05")]
    assert plan.breakeven_after == 1
    assert plan.preset == "conservative"


def test_conservative_lays_out_three_entries_for_a_short() -> None:
    plan = parse(shorthand("Sell", entry_price="60001.3", qty="0.031"))
    assert plan.entries == (
        EntryLevel(D("0.011"), D("60001.3")),
        EntryLevel(D("0.010"), D("60301.4")),  # 60301.3065 rounded up: away from the market
        EntryLevel(D("0.010"), D("60601.4")),  # 60601.313 rounded up
    )


def test_ladder_prices_round_away_from_the_market() -> None:
    entries = lay_out_entries(CONSERVATIVE, Side.BUY, D("60000.3"), D("0.009"), BTC)
    # 59700.2985 and 59400.297 round down for a long
    assert [e.price for e in entries] == [D("60000.3"), D("59700.2"), D("59400.2")]
    assert [e.qty for e in entries] == [D("0.003")] * 3


def test_conservative_with_explicit_entries_only_fills_fractions_and_breakeven() -> None:
    data = copy.deepcopy(LONG)
    data["take_profits"] = [62000, 63000, 64000, 65000]
    del data["breakeven_after"]
    plan = parse(data)
    assert [e.price for e in plan.entries] == [D("60000"), D("59500"), D("59000")]
    assert plan.take_profits[0] == TakeProfitLevel(D("62000"), D("0.85"))
    assert plan.breakeven_after == 1


def test_explicit_values_win_over_the_preset() -> None:
    data = copy.deepcopy(LONG)
    data["take_profits"] = [{"price": "62000", "fraction": "0.5"}, {"price": "63000", "fraction": "0.5"}]
    data["breakeven_after"] = 2
    plan = parse(data)
    assert [t.fraction for t in plan.take_profits] == [D("0.5"), D("0.5")]
    assert plan.breakeven_after == 2
    assert parse({**copy.deepcopy(LONG), "breakeven_after": None}).breakeven_after is None


def test_fast_is_a_market_entry_with_one_take_profit() -> None:
    data = {
        "account": "main",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "preset": "fast",
        "qty": "0.03",
        "take_profits": [{"price": "62000"}],
        "stop_loss": "58000",
    }
    plan = parse(data, mark_price=D("60000"))
    assert plan.entries == (EntryLevel(D("0.030")),)
    assert plan.take_profits == (TakeProfitLevel(D("62000"), D("1")),)
    assert plan.breakeven_after == 1
    assert plan.preset == "fast"


def test_without_a_preset_the_shorthand_is_one_entry() -> None:
    data = shorthand(preset=None, take_profits=["62000"])
    assert parse(data).entries == (EntryLevel(D("0.010"), D("60000")),)
    del data["entry_price"]
    assert parse(data).entries == (EntryLevel(D("0.010")),)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (shorthand(preset="fast", take_profits=["62000"]), "entry_price", "enters at market"),
        (
            shorthand(preset="fast", entry_price=None),
            "take_profits",
            "the fast preset supplies 1 fraction (100)",
        ),
        (shorthand(entry_price=None), "entry_price", "required with qty by the conservative preset"),
        (shorthand(qty="0.005"), "qty", "splits qty 0.005 into 3 entries of 0.001, under minOrderQty 0.002"),
        (shorthand(qty="301"), "qty", "entry 1: must be at most maxOrderQty 100, got 100.334"),
        (shorthand(entry_price="60000.01"), "entry_price", "tick size 0.10"),
        (shorthand(qty="0.0101"), "qty", "qtyStep"),
        (
            shorthand(
                symbol="COARSEUSDT", entry_price="20", qty="3", take_profits=[21, 22, 23, 24], stop_loss=10
            ),
            "entry_price",
            "needs 3 distinct entry prices; 20 on tick 1 gives 20, 19, 19",
        ),
        (shorthand(stop_loss="59500"), "stop_loss", "below the lowest entry 59400.0"),
        (shorthand(preset="slow"), "preset", "unknown preset 'slow' (known: conservative, fast)"),
    ],
)
def test_preset_errors(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PlanInvalid) as err:
        parse(data)
    assert err.value.field == field
    assert fragment in err.value.problem


def test_get_preset() -> None:
    assert get_preset("fast") is FAST
    with pytest.raises(PlanInvalid) as err:
        get_preset("Fast")
    assert err.value.field == "preset"


@pytest.mark.parametrize(
    ("qty", "parts", "expected"),
    [
        ("0.010", 3, ["0.004", "0.003", "0.003"]),
        ("0.009", 3, ["0.003", "0.003", "0.003"]),
        ("0.011", 3, ["0.005", "0.003", "0.003"]),
        ("0.001", 3, ["0.001", "0.000", "0.000"]),
        ("7", 1, ["7.000"]),
    ],
)
def test_split_equal(qty: str, parts: int, expected: list[str]) -> None:
    out = split_equal(D(qty), parts, BTC)
    assert [str(q) for q in out] == expected
    assert sum(out) == D(qty)
