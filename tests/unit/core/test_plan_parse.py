"""Valid requests parse into the expected Plan; validate_plan and check_adoption on built plans."""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings

from core.codec import plan_to_dict
from core.errors import PlanInvalid
from core.models import EntryLevel, Instrument, Plan, Position, Side, TakeProfitLevel
from core.plan import MonitorRequest, check_adoption, parse_plan, parse_request, validate_plan
from tests.unit.core.strategies import plan_and_instrument
from tests.unit.core.test_plan_rules import BTC, INSTRUMENTS, LONG, MARKET, SHORT

D = Decimal

PINNED = """
{"account": "main", "symbol": "BTCUSDT", "side": "Buy", "preset": "conservative",
 "entries": [{"price": "60000", "qty": "0.010"}, {"price": "59500", "qty": "0.010"},
             {"price": "59000", "qty": "0.010"}],
 "take_profits": [{"price": "62000", "fraction": "0.85"}, {"price": "63000", "fraction": "0.05"},
                  {"price": "64000", "fraction": "0.05"}, {"price": "65000", "fraction": "0.05"}],
 "stop_loss": "58000", "breakeven_after": 1, "mirror": true}
"""

EXPECTED = Plan(
    symbol="BTCUSDT",
    side=Side.BUY,
    entries=(
        EntryLevel(qty=D("0.010"), price=D("60000")),
        EntryLevel(qty=D("0.010"), price=D("59500")),
        EntryLevel(qty=D("0.010"), price=D("59000")),
    ),
    take_profits=(
        TakeProfitLevel(price=D("62000"), fraction=D("0.85")),
        TakeProfitLevel(price=D("63000"), fraction=D("0.05")),
        TakeProfitLevel(price=D("64000"), fraction=D("0.05")),
        TakeProfitLevel(price=D("65000"), fraction=D("0.05")),
    ),
    stop_loss=D("58000"),
    breakeven_after=1,
    fee_buffer=D("0.0008"),
    adopt=False,
    position_idx=0,
    mirror=True,
    entry_time_limit_s=None,
    preset="conservative",
)


def parse(data: dict[str, Any], **kw: Any) -> Plan:
    return parse_request(data, instruments=INSTRUMENTS, **kw).plan


def test_pinned_example_parses_into_the_expected_plan() -> None:
    request = parse_request(json.loads(PINNED), instruments=INSTRUMENTS)
    assert request == MonitorRequest(account="main", plan=EXPECTED)


def test_numbers_may_be_json_numbers() -> None:
    as_numbers = json.loads(PINNED)
    for e in as_numbers["entries"]:
        e["price"], e["qty"] = float(e["price"]), float(e["qty"])
    for t in as_numbers["take_profits"]:
        t["price"], t["fraction"] = int(t["price"]), float(t["fraction"])
    as_numbers["stop_loss"] = 58000
    assert parse(as_numbers) == EXPECTED


def test_values_come_back_on_the_instrument_grid() -> None:
    data = copy.deepcopy(LONG)
    data["entries"][0]["qty"] = "0.01"
    data["entries"][1]["price"] = "5.95E+4"
    plan = parse(data)
    assert str(plan.entries[0].qty) == "0.010"
    assert str(plan.entries[1].price) == "59500.0"
    assert str(plan.stop_loss) == "58000.0"


def test_lower_case_side_and_explicit_options() -> None:
    data = {
        **copy.deepcopy(SHORT),
        "side": "sell",
        "position_idx": 2,
        "fee_buffer": "0.001",
        "entry_time_limit_s": 3600,
        "breakeven_after": None,
        "mirror": False,
    }
    plan = parse(data, fee_buffer=D("0.0005"))
    assert plan.side is Side.SELL
    assert plan.position_idx == 2
    assert plan.fee_buffer == D("0.001")
    assert plan.entry_time_limit_s == 3600.0
    assert plan.breakeven_after is None
    assert plan.mirror is False
    assert plan.preset is None


def test_defaults() -> None:
    plan = parse(copy.deepcopy(SHORT), fee_buffer=D("0.0005"))
    assert plan.fee_buffer == D("0.0005")  # the settings' default comes in as a parameter
    assert plan.breakeven_after == 1
    assert plan.position_idx == 0
    assert plan.mirror is True
    assert plan.adopt is False
    assert plan.entry_time_limit_s is None


def test_market_entry_in_both_shapes() -> None:
    expected = (EntryLevel(qty=D("0.030")),)
    assert parse(copy.deepcopy(MARKET), mark_price=D("60000")).entries == expected
    as_list = {**copy.deepcopy(MARKET), "entries": [{"type": "Market", "qty": 0.03}]}
    assert parse(as_list).entries == expected


def test_adoption_without_entries() -> None:
    data = {**copy.deepcopy(LONG), "adopt": True}
    del data["entries"]
    plan = parse(data, mark_price=D("61000"))
    assert plan.adopt is True
    assert plan.entries == ()
    assert parse({**data, "entries": []}).entries == ()


def test_null_counts_as_left_out() -> None:
    data = {
        **copy.deepcopy(LONG),
        "preset": None,
        "fee_buffer": None,
        "entry_time_limit_s": None,
        "qty": None,
    }
    plan = parse(data)
    assert plan.preset is None
    assert plan.fee_buffer == D("0.0008")


def test_single_take_profit_without_fraction_is_the_whole_position() -> None:
    data = {**copy.deepcopy(SHORT), "take_profits": ["58000"]}
    assert parse(data).take_profits == (TakeProfitLevel(D("58000"), D("1")),)


def test_parse_plan_takes_the_request_without_account() -> None:
    data = json.loads(PINNED)
    del data["account"]
    assert parse_plan(data, instruments=INSTRUMENTS) == EXPECTED
    with pytest.raises(PlanInvalid) as err:
        parse_plan(json.loads(PINNED), instruments=INSTRUMENTS)
    assert err.value.field == "account"


def test_the_input_is_not_modified() -> None:
    data = json.loads(PINNED)
    before = copy.deepcopy(data)
    parse(data)
    assert data == before


# ------------------------------------------------------------------------------------ validate_plan


def test_validate_plan_accepts_the_expected_plan() -> None:
    validate_plan(EXPECTED, BTC)


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"symbol": "ETHUSDT"}, "symbol", "the instrument is BTCUSDT"),
        ({"position_idx": 2}, "position_idx", "needs 0 or 1"),
        ({"preset": "yolo"}, "preset", "unknown preset"),
        ({"adopt": True}, "entries", "left out when adopt"),
        ({"entries": ()}, "entries", "at least one entry"),
        (
            {"entries": (EntryLevel(D("0.01")), EntryLevel(D("0.01"), D("59000")))},
            "entries[0].price",
            "only entry",
        ),
        ({"entries": (EntryLevel(D("0.0101"), D("60000")),)}, "entries[0].qty", "qtyStep"),
        ({"take_profits": ()}, "take_profits", "at least one"),
        ({"take_profits": (TakeProfitLevel(D("62000"), D("0.5")),)}, "take_profits", "sum to 0.5"),
        (
            {"take_profits": (TakeProfitLevel(D("59999.9"), D("1")),)},
            "take_profits[0].price",
            "highest entry",
        ),
        ({"stop_loss": D("59000")}, "stop_loss", "below the lowest entry"),
        ({"breakeven_after": 7}, "breakeven_after", "between 1 and 4"),
        ({"fee_buffer": D("0.5")}, "fee_buffer", "got 0.5"),
        ({"entry_time_limit_s": -1.0}, "entry_time_limit_s", "positive"),
    ],
)
def test_validate_plan_rules(change: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PlanInvalid) as err:
        validate_plan(dataclasses.replace(EXPECTED, **change), BTC)
    assert err.value.field == field
    assert fragment in err.value.problem


@settings(max_examples=200)
@given(plan_and_instrument())
def test_generated_plans_are_valid_and_survive_the_request_shape(pi: tuple[Plan, Instrument]) -> None:
    """The strategies build valid plans, and a plan written as a request parses back to itself."""
    plan, inst = pi
    validate_plan(plan, inst)
    request = {**json.loads(json.dumps(plan_to_dict(plan))), "account": "acc"}
    assert parse_request(request, instruments={inst.symbol: inst}).plan == plan


# ---------------------------------------------------------------------------------- check_adoption


def adopt_plan(**kw: Any) -> Plan:
    return dataclasses.replace(EXPECTED, entries=(), adopt=True, **kw)


def pos(side: Side | None = Side.BUY, size: str = "0.030", avg: str = "60000", **kw: Any) -> Position:
    fields: dict[str, Any] = {"symbol": "BTCUSDT", "position_idx": 0, "side": side, "size": D(size)}
    fields.update(avg_price=D(avg), **kw)
    return Position(**fields)


def test_adoption_of_a_matching_position() -> None:
    check_adoption(adopt_plan(), pos(mark_price=D("61000")))
    short = dataclasses.replace(
        adopt_plan(side=Side.SELL),
        take_profits=(TakeProfitLevel(D("58000"), D("1")),),
        stop_loss=D("62000"),
    )
    check_adoption(short, pos(Side.SELL, avg="60000"))


@pytest.mark.parametrize(
    ("plan", "position", "field", "fragment"),
    [
        (adopt_plan(), dataclasses.replace(pos(), symbol="ETHUSDT"), "symbol", "the position is on ETHUSDT"),
        (adopt_plan(), pos(position_idx=1), "position_idx", "positionIdx 1, the plan names 0"),
        (adopt_plan(), pos(None, size="0"), "adopt", "no open BTCUSDT position (positionIdx 0)"),
        (adopt_plan(), pos(size="0"), "adopt", "no open"),
        (adopt_plan(), pos(Side.SELL), "side", "the open position is short (Sell), the plan is Buy"),
        (adopt_plan(), pos(avg="62500"), "take_profits[0].price", "average price 62500, got 62000"),
        (adopt_plan(), pos(avg="57000"), "stop_loss", "below the position's average price 57000, got 58000"),
        (adopt_plan(), pos(mark_price=D("57500")), "stop_loss", "mark price 57500, got 58000 (it would fire"),
    ],
)
def test_adoption_rules(plan: Plan, position: Position, field: str, fragment: str) -> None:
    with pytest.raises(PlanInvalid) as err:
        check_adoption(plan, position)
    assert err.value.field == field
    assert fragment in err.value.problem
