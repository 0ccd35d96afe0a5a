"""Every plan rule, one table row each: the exact field and a fragment of the problem."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from core.errors import FixInput, PlanInvalid
from core.models import Instrument
from core.plan import parse_request

D = Decimal
BTC = Instrument(
    "BTCUSDT",
    tick_size=D("0.10"),
    qty_step=D("0.001"),
    min_qty=D("0.002"),
    max_qty=D("100"),
    min_notional=D("5"),
    max_mkt_qty=D("50"),
)
DOGE = Instrument(
    "DOGEUSDT",
    tick_size=D("0.00001"),
    qty_step=D("1"),
    min_qty=D("1"),
    max_qty=D("10000000"),
    min_notional=D("5"),
)
INSTRUMENTS = {i.symbol: i for i in (BTC, DOGE)}

LONG: dict[str, Any] = {
    "account": "main",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "preset": "conservative",
    "entries": [
        {"price": "60000", "qty": "0.010"},
        {"price": "59500", "qty": "0.010"},
        {"price": "59000", "qty": "0.010"},
    ],
    "take_profits": [
        {"price": "62000", "fraction": "0.85"},
        {"price": "63000", "fraction": "0.05"},
        {"price": "64000", "fraction": "0.05"},
        {"price": "65000", "fraction": "0.05"},
    ],
    "stop_loss": "58000",
    "breakeven_after": 1,
    "mirror": True,
}

SHORT: dict[str, Any] = {
    "account": "main",
    "symbol": "BTCUSDT",
    "side": "Sell",
    "entries": [{"price": "60000", "qty": "0.010"}, {"price": "60500", "qty": "0.010"}],
    "take_profits": [{"price": "58000", "fraction": "0.5"}, {"price": "57000", "fraction": "0.5"}],
    "stop_loss": "61500",
}

MARKET: dict[str, Any] = {
    "account": "main",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "entries": {"type": "market", "qty": "0.030"},
    "take_profits": [{"price": "62000", "fraction": "1"}],
    "stop_loss": "58000",
}

Edit = Callable[[dict[str, Any]], None]


def setkey(key: str, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d[key] = value

    return edit


def delkey(key: str) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        del d[key]

    return edit


def setitem(key: str, index: int, field: str, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d[key][index][field] = value

    return edit


def delitem(key: str, index: int, field: str) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        del d[key][index][field]

    return edit


def both(*edits: Edit) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        for e in edits:
            e(d)

    return edit


ELEVEN_ENTRIES = [{"price": str(60000 - 100 * i), "qty": "0.010"} for i in range(11)]
ELEVEN_TPS = [{"price": str(62000 + 100 * i), "fraction": "0.1" if i else "0"} for i in range(11)]

# (id, base, edit, mark_price, field, problem fragment)
ROWS: list[tuple[str, dict[str, Any], Edit, Decimal | None, str, str]] = [
    # ---- the request itself
    ("unknown key", LONG, setkey("stop_los", "1"), None, "stop_los", "did you mean 'stop_loss'"),
    ("unknown key no hint", LONG, setkey("leverage", 10), None, "leverage", "unknown field 'leverage'"),
    # ---- account
    ("account missing", LONG, delkey("account"), None, "account", "required"),
    ("account empty", LONG, setkey("account", " "), None, "account", "non-empty string, got ' '"),
    ("account not str", LONG, setkey("account", 5), None, "account", "non-empty string, got 5"),
    # ---- symbol
    ("symbol missing", LONG, delkey("symbol"), None, "symbol", "required"),
    ("symbol unknown", LONG, setkey("symbol", "FOOUSDT"), None, "symbol", "unknown symbol 'FOOUSDT'"),
    ("symbol case", LONG, setkey("symbol", "btcusdt"), None, "symbol", "did you mean 'BTCUSDT'"),
    ("symbol not str", LONG, setkey("symbol", ["BTCUSDT"]), None, "symbol", "must be a string"),
    # ---- side
    ("side missing", LONG, delkey("side"), None, "side", "required"),
    ("side long", LONG, setkey("side", "long"), None, "side", "must be Buy or Sell, got 'long'"),
    ("side upper", LONG, setkey("side", "BUY"), None, "side", "got 'BUY'"),
    ("side number", LONG, setkey("side", 1), None, "side", "got 1"),
    # ---- position_idx
    ("idx 3", LONG, setkey("position_idx", 3), None, "position_idx", "got 3"),
    ("idx bool", LONG, setkey("position_idx", True), None, "position_idx", "got true"),
    ("idx str", LONG, setkey("position_idx", "1"), None, "position_idx", "got '1'"),
    ("idx 2 for a long", LONG, setkey("position_idx", 2), None, "position_idx", "needs 0 or 1"),
    ("idx 1 for a short", SHORT, setkey("position_idx", 1), None, "position_idx", "needs 0 or 2"),
    # ---- preset
    ("preset unknown", LONG, setkey("preset", "yolo"), None, "preset", "unknown preset 'yolo'"),
    ("preset not str", LONG, setkey("preset", 1), None, "preset", "must be a preset name"),
    # ---- adopt
    ("adopt not bool", LONG, setkey("adopt", "yes"), None, "adopt", "true or false, got 'yes'"),
    ("adopt with entries", LONG, setkey("adopt", True), None, "entries", "left out when adopt is true"),
    (
        "adopt with qty",
        LONG,
        both(delkey("entries"), setkey("adopt", True), setkey("qty", "1")),
        None,
        "qty",
        "left out when adopt",
    ),
    # ---- entries: the list
    ("entries missing", LONG, delkey("entries"), None, "entries", "required"),
    ("entries empty", LONG, setkey("entries", []), None, "entries", "at least one entry"),
    ("entries > 10", LONG, setkey("entries", ELEVEN_ENTRIES), None, "entries", "at most 10 entries, got 11"),
    ("entries str", LONG, setkey("entries", "60000"), None, "entries", "must be a list"),
    ("entries object", LONG, setkey("entries", {"price": "1", "qty": "1"}), None, "entries", "market entry"),
    ("entry not object", LONG, setitem("entries", 1, "price", None), None, "entries[1].price", "required"),
    ("entry scalar", LONG, setkey("entries", ["60000"]), None, "entries[0]", "must be an object"),
    ("entry unknown key", LONG, setitem("entries", 0, "prce", "1"), None, "entries[0].prce", "'price'"),
    ("entry type", LONG, setitem("entries", 0, "type", "stop"), None, "entries[0].type", "got 'stop'"),
    (
        "market not alone",
        LONG,
        both(setitem("entries", 1, "type", "market"), delitem("entries", 1, "price")),
        None,
        "entries[1].type",
        "must be the only entry",
    ),
    (
        "market with price",
        MARKET,
        setkey("entries", {"type": "market", "qty": "1", "price": "1"}),
        None,
        "entries.price",
        "has no price",
    ),
    # ---- entries: numbers
    (
        "price text",
        LONG,
        setitem("entries", 1, "price", "abc"),
        None,
        "entries[1].price",
        "number, got 'abc'",
    ),
    ("price bool", LONG, setitem("entries", 1, "price", True), None, "entries[1].price", "number, got true"),
    ("price NaN", LONG, setitem("entries", 1, "price", math.nan), None, "entries[1].price", "finite"),
    ("price inf", LONG, setitem("entries", 1, "price", math.inf), None, "entries[1].price", "finite"),
    ("price 'NaN'", LONG, setitem("entries", 1, "price", "NaN"), None, "entries[1].price", "got 'NaN'"),
    (
        "price 'Infinity'",
        LONG,
        setitem("entries", 1, "price", "Infinity"),
        None,
        "entries[1].price",
        "number",
    ),
    ("price '1_000'", LONG, setitem("entries", 1, "price", "59_500"), None, "entries[1].price", "number"),
    ("price Decimal NaN", LONG, setitem("entries", 1, "price", D("NaN")), None, "entries[1].price", "finite"),
    ("price list", LONG, setitem("entries", 1, "price", [1]), None, "entries[1].price", "a list"),
    ("price huge", LONG, setitem("entries", 1, "price", "1e30"), None, "entries[1].price", "out of range"),
    (
        "price negative",
        LONG,
        setitem("entries", 0, "price", "-1"),
        None,
        "entries[0].price",
        "positive, got -1",
    ),
    ("price zero", LONG, setitem("entries", 0, "price", 0), None, "entries[0].price", "positive, got 0"),
    (
        "price off tick",
        LONG,
        setitem("entries", 2, "price", "59000.05"),
        None,
        "entries[2].price",
        "tick size 0.10, got 59000.05",
    ),
    (
        "entries not descending",
        LONG,
        setitem("entries", 1, "price", "60500"),
        None,
        "entries[1].price",
        "60500.0 is not below 60000.0",
    ),
    ("entries equal", LONG, setitem("entries", 2, "price", "59500"), None, "entries[2].price", "not below"),
    (
        "short entries not ascending",
        SHORT,
        setitem("entries", 1, "price", "59000"),
        None,
        "entries[1].price",
        "59000.0 is not above 60000.0",
    ),
    ("qty missing", LONG, delitem("entries", 0, "qty"), None, "entries[0].qty", "required"),
    (
        "qty off step",
        LONG,
        setitem("entries", 0, "qty", "0.0105"),
        None,
        "entries[0].qty",
        "qtyStep 0.001, got 0.0105",
    ),
    ("qty zero", LONG, setitem("entries", 0, "qty", "0"), None, "entries[0].qty", "positive"),
    (
        "qty under min",
        LONG,
        setitem("entries", 1, "qty", "0.001"),
        None,
        "entries[1].qty",
        "minOrderQty 0.002",
    ),
    (
        "qty over max",
        LONG,
        setitem("entries", 1, "qty", "100.001"),
        None,
        "entries[1].qty",
        "maxOrderQty 100",
    ),
    (
        "market over max",
        MARKET,
        setkey("entries", {"type": "market", "qty": "51"}),
        None,
        "entries.qty",
        "maxMktOrderQty 50",
    ),
    (
        "market notional",
        MARKET,
        setkey("entries", {"type": "market", "qty": "0.002"}),
        D("2000"),
        "entries.qty",
        "minimum order value 5",
    ),
    ("both entries and entry_price", LONG, setkey("entry_price", "60000"), None, "entry_price", "not both"),
    (
        "entry_price without qty",
        LONG,
        both(delkey("entries"), setkey("entry_price", "60000")),
        None,
        "qty",
        "required",
    ),
    (
        "entry_price off tick",
        LONG,
        both(delkey("entries"), setkey("entry_price", "60000.01"), setkey("qty", "1")),
        None,
        "entry_price",
        "tick size",
    ),
    (
        "shorthand qty off step",
        LONG,
        both(delkey("entries"), setkey("entry_price", "6e4"), setkey("qty", "0.01001")),
        None,
        "qty",
        "qtyStep",
    ),
    # ---- take-profits
    ("tps missing", LONG, delkey("take_profits"), None, "take_profits", "required"),
    ("tps empty", LONG, setkey("take_profits", []), None, "take_profits", "at least one"),
    ("tps > 10", LONG, setkey("take_profits", ELEVEN_TPS), None, "take_profits", "at most 10"),
    ("tps str", LONG, setkey("take_profits", "62000"), None, "take_profits", "must be a list"),
    ("tps object", LONG, setkey("take_profits", {"price": "62000"}), None, "take_profits", "must be a list"),
    (
        "tp unknown key",
        LONG,
        setitem("take_profits", 1, "fractoin", "1"),
        None,
        "take_profits[1].fractoin",
        "'fraction'",
    ),
    (
        "tp price missing",
        LONG,
        delitem("take_profits", 1, "price"),
        None,
        "take_profits[1].price",
        "required",
    ),
    (
        "tp price text",
        LONG,
        setitem("take_profits", 1, "price", "high"),
        None,
        "take_profits[1].price",
        "got 'high'",
    ),
    (
        "tp price off tick",
        LONG,
        setitem("take_profits", 2, "price", "64000.01"),
        None,
        "take_profits[2].price",
        "tick size 0.10, got 64000.01",
    ),
    (
        "tp price negative",
        LONG,
        setitem("take_profits", 0, "price", "-62000"),
        None,
        "take_profits[0].price",
        "positive",
    ),
    (
        "tp not above entries",
        LONG,
        setitem("take_profits", 0, "price", "60000"),
        None,
        "take_profits[0].price",
        "above the highest entry 60000.0, got 60000.0",
    ),
    (
        "tp not ascending",
        LONG,
        setitem("take_profits", 2, "price", "62500"),
        None,
        "take_profits[2].price",
        "62500.0 is not above the previous level 63000.0",
    ),
    (
        "short tp not below entries",
        SHORT,
        setitem("take_profits", 0, "price", "60100"),
        None,
        "take_profits[0].price",
        "below the lowest entry 60000.0",
    ),
    (
        "short tp not descending",
        SHORT,
        setitem("take_profits", 1, "price", "58000"),
        None,
        "take_profits[1].price",
        "not below the previous level",
    ),
    (
        "market tp vs mark",
        MARKET,
        setitem("take_profits", 0, "price", "61000"),
        D("61000"),
        "take_profits[0].price",
        "above the mark price 61000",
    ),
    (
        "fraction zero",
        LONG,
        setitem("take_profits", 1, "fraction", "0"),
        None,
        "take_profits[1].fraction",
        "above 0 and at most 1, got 0",
    ),
    (
        "fraction negative",
        LONG,
        setitem("take_profits", 1, "fraction", "-0.05"),
        None,
        "take_profits[1].fraction",
        "got -0.05",
    ),
    (
        "fraction above 1",
        LONG,
        setitem("take_profits", 0, "fraction", "1.5"),
        None,
        "take_profits[0].fraction",
        "got 1.5",
    ),
    (
        "fraction text",
        LONG,
        setitem("take_profits", 0, "fraction", "most"),
        None,
        "take_profits[0].fraction",
        "got 'most'",
    ),
    (
        "fraction bool",
        LONG,
        setitem("take_profits", 0, "fraction", True),
        None,
        "take_profits[0].fraction",
        "got true",
    ),
    (
        "fraction too fine",
        LONG,
        setitem("take_profits", 0, "fraction", "0.85" + "0" * 20 + "1"),
        None,
        "take_profits[0].fraction",
        "more than 18 decimal places",
    ),
    (
        "fractions sum < 1",
        LONG,
        setitem("take_profits", 0, "fraction", "0.80"),
        None,
        "take_profits",
        "sum to exactly 1, they sum to 0.95",
    ),
    (
        "fractions sum > 1",
        LONG,
        setitem("take_profits", 3, "fraction", "0.10"),
        None,
        "take_profits",
        "they sum to 1.05",
    ),
    (
        "fraction missing on one",
        LONG,
        delitem("take_profits", 2, "fraction"),
        None,
        "take_profits[2].fraction",
        "either every level gives its fraction or none does",
    ),
    (
        "no fractions no preset",
        LONG,
        both(delkey("preset"), setkey("take_profits", ["62000", "63000"])),
        None,
        "take_profits[0].fraction",
        "or a preset",
    ),
    (
        "preset count mismatch",
        LONG,
        setkey("take_profits", ["62000", "63000"]),
        None,
        "take_profits",
        "supplies 4 fractions (85/5/5/5) but 2 prices were given",
    ),
    # ---- stop-loss
    ("sl missing", LONG, delkey("stop_loss"), None, "stop_loss", "required"),
    ("sl null", LONG, setkey("stop_loss", None), None, "stop_loss", "required"),
    ("sl text", LONG, setkey("stop_loss", "low"), None, "stop_loss", "got 'low'"),
    ("sl negative", LONG, setkey("stop_loss", "-5"), None, "stop_loss", "positive"),
    ("sl off tick", LONG, setkey("stop_loss", "58000.03"), None, "stop_loss", "tick size 0.10"),
    (
        "sl above lowest entry",
        LONG,
        setkey("stop_loss", "59200"),
        None,
        "stop_loss",
        "below the lowest entry 59000.0, got 59200.0",
    ),
    (
        "short sl below highest entry",
        SHORT,
        setkey("stop_loss", "60400"),
        None,
        "stop_loss",
        "above the highest entry 60500.0",
    ),
    (
        "market sl vs mark",
        MARKET,
        setkey("stop_loss", "60000"),
        D("59999"),
        "stop_loss",
        "below the mark price 59999",
    ),
    (
        "market sl vs tp1",
        MARKET,
        setkey("stop_loss", "62000"),
        None,
        "stop_loss",
        "below the first take-profit 62000.0, got 62000.0",
    ),
    # ---- breakeven_after
    ("breakeven 0", LONG, setkey("breakeven_after", 0), None, "breakeven_after", "between 1 and 4"),
    ("breakeven 5", LONG, setkey("breakeven_after", 5), None, "breakeven_after", "got 5"),
    ("breakeven str", LONG, setkey("breakeven_after", "1"), None, "breakeven_after", "whole number"),
    ("breakeven bool", LONG, setkey("breakeven_after", True), None, "breakeven_after", "got true"),
    ("breakeven float", LONG, setkey("breakeven_after", 1.5), None, "breakeven_after", "got 1.5"),
    # ---- fee_buffer, time limit, mirror
    ("fee buffer too big", LONG, setkey("fee_buffer", "0.05"), None, "fee_buffer", "got 0.05"),
    ("fee buffer negative", LONG, setkey("fee_buffer", -0.001), None, "fee_buffer", "got -0.001"),
    ("fee buffer text", LONG, setkey("fee_buffer", "small"), None, "fee_buffer", "got 'small'"),
    ("time limit zero", LONG, setkey("entry_time_limit_s", 0), None, "entry_time_limit_s", "positive"),
    ("time limit bool", LONG, setkey("entry_time_limit_s", True), None, "entry_time_limit_s", "number"),
    (
        "time limit market",
        MARKET,
        setkey("entry_time_limit_s", 60),
        None,
        "entry_time_limit_s",
        "limit entries",
    ),
    ("mirror text", LONG, setkey("mirror", "true"), None, "mirror", "true or false, got 'true'"),
    # ---- first violation in document order
    (
        "entries before take-profits",
        LONG,
        both(setitem("take_profits", 0, "price", "x"), setitem("entries", 2, "qty", "0")),
        None,
        "entries[2].qty",
        "positive",
    ),
    (
        "price before qty within an entry",
        LONG,
        both(setitem("entries", 1, "qty", "x"), setitem("entries", 1, "price", "y")),
        None,
        "entries[1].price",
        "got 'y'",
    ),
    (
        "unknown key before anything",
        LONG,
        both(delkey("account"), setkey("stoploss", "1")),
        None,
        "stoploss",
        "unknown field",
    ),
    (
        "tp before sl",
        LONG,
        both(setkey("stop_loss", "x"), setitem("take_profits", 3, "price", "1")),
        None,
        "take_profits[3].price",
        "above the highest entry 60000.0, got 1.0",
    ),
]


@pytest.mark.parametrize(
    ("base", "edit", "mark", "field", "fragment"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_each_rule(base: dict[str, Any], edit: Edit, mark: Decimal | None, field: str, fragment: str) -> None:
    data = copy.deepcopy(base)
    edit(data)
    with pytest.raises(PlanInvalid) as err:
        parse_request(data, instruments=INSTRUMENTS, mark_price=mark)
    assert err.value.field == field, err.value.problem
    assert fragment in err.value.problem
    assert str(err.value) == f"{field}: {err.value.problem}"


def test_the_bases_are_valid() -> None:
    for base, mark in ((LONG, None), (SHORT, None), (MARKET, D("60000"))):
        parse_request(copy.deepcopy(base), instruments=INSTRUMENTS, mark_price=mark)


def test_request_must_be_an_object() -> None:
    with pytest.raises(PlanInvalid) as err:
        parse_request([LONG], instruments=INSTRUMENTS)  # type: ignore[arg-type]
    assert err.value.field == "request"
    assert "JSON object, got a list" in err.value.problem


def test_plan_invalid_is_fix_input() -> None:
    """The API maps FixInput to a 4xx naming the field; a plan error must be one."""
    with pytest.raises(FixInput):
        parse_request({**LONG, "side": "up"}, instruments=INSTRUMENTS)


def test_limit_entry_under_minimum_order_value() -> None:
    data = {
        "account": "main",
        "symbol": "DOGEUSDT",
        "side": "Buy",
        "entries": [{"price": "0.10000", "qty": "100"}, {"price": "0.09000", "qty": "50"}],
        "take_profits": ["0.12000"],
        "stop_loss": "0.08000",
    }
    with pytest.raises(PlanInvalid) as err:
        parse_request(data, instruments=INSTRUMENTS)
    assert err.value.field == "entries[1].qty"
    assert "50 × 0.09000 = 4.50000 is under the minimum order value 5" in err.value.problem


def test_adoption_compares_with_the_mark_price_when_given() -> None:
    data = {**copy.deepcopy(LONG), "adopt": True}
    del data["entries"]
    with pytest.raises(PlanInvalid) as err:
        parse_request(data, instruments=INSTRUMENTS, mark_price=D("62500"))
    assert err.value.field == "take_profits[0].price"
    assert "above the mark price 62500" in err.value.problem
    with pytest.raises(PlanInvalid) as err:
        parse_request(data, instruments=INSTRUMENTS, mark_price=D("57000"))
    assert err.value.field == "stop_loss"
    assert "below the mark price 57000" in err.value.problem
