"""exchange.bybit.parse against the responses recorded from Bybit's documentation, and the quirks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.models import ExchangeOrderStatus, Side
from exchange.bybit import parse
from exchange.bybit.parse import MalformedResponse
from tests.plugins.recorded_bybit import fixture_body, load_fixture

D = Decimal


def result(name: str) -> dict:
    return fixture_body(name)["result"]


def test_every_fixture_names_its_source_and_is_an_envelope() -> None:
    from tests.plugins.recorded_bybit import FIXTURES

    names = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert len(names) >= 30
    for name in names:
        fx = load_fixture(name)
        assert fx["source"], name
        if fx.get("body") is not None:
            env = parse.envelope(__import__("json").dumps(fx["body"]).encode())
            assert isinstance(env.ret_code, int), name


def test_position_row_linear_with_empty_tp_sl() -> None:
    rows = parse.rows(result("position_list_linear"))
    p = parse.position(rows[0])
    assert p.symbol == "XRPUSDT"
    assert p.side is Side.BUY
    assert p.size == D("100")
    assert p.avg_price == D("0.3615")
    assert p.mark_price == D("0.3432")
    assert p.unrealised_pnl == D("-1.83")
    assert p.leverage == D("10")
    assert p.position_idx == 0
    assert parse.next_cursor(result("position_list_linear")) == "updateAt%3D1672279322668"


def test_position_row_current_docs_with_zero_tp_sl() -> None:
    p = parse.position(parse.rows(result("position_list"))[0])
    assert (p.symbol, p.side, p.size) == ("BTCUSD", Side.SELL, D("300"))
    assert p.avg_price == D("27464.50441675")
    assert parse.next_cursor(result("position_list")) == ""


def test_flat_position_row_has_no_side() -> None:
    row = {**parse.rows(result("position_list_linear"))[0], "side": "", "size": "0", "avgPrice": "0"}
    p = parse.position(row)
    assert p.side is None and p.size == 0


def test_open_order_row() -> None:
    r = result("order_realtime")
    o = parse.order(parse.rows(r)[0])
    assert o.order_id == "fd4300ae-7847-404e-b947-b46980a4d140"
    assert o.link_id == "test-000005"
    assert (o.symbol, o.side, o.order_type) == ("ETHUSDT", Side.BUY, "Limit")
    assert (o.qty, o.filled, o.price) == (D("0.10"), D("0.00"), D("1600.00"))
    assert o.status is ExchangeOrderStatus.NEW
    assert o.trigger_price is None  # "0.00" on a plain order
    assert o.avg_price is None  # "0" without fills
    assert o.position_idx == 1 and o.reduce_only is False
    assert (o.created_ms, o.updated_ms) == (1684738540559, 1684738540561)
    # the cursor comes back exactly as sent, still percent-encoded
    assert parse.next_cursor(r) == "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26"


def test_history_row() -> None:
    o = parse.order(parse.rows(result("order_history"))[0])
    assert o.status is ExchangeOrderStatus.CANCELLED
    assert o.link_id == "YLxaWKMiHU" and o.filled == 0


def test_conditional_order_row() -> None:
    row = {
        **parse.rows(result("order_realtime"))[0],
        "orderStatus": "Untriggered",
        "triggerPrice": "1500.5",
        "orderType": "Market",
        "price": "0",
        "triggerDirection": 2,
        "reduceOnly": True,
    }
    o = parse.order(row)
    assert o.status is ExchangeOrderStatus.UNTRIGGERED and o.status.is_open
    assert o.trigger_price == D("1500.5") and o.price is None and o.reduce_only


def test_numbers_as_json_numbers_and_bools_as_strings() -> None:
    row = {**parse.rows(result("order_realtime"))[0], "qty": 0.1, "cumExecQty": 0, "reduceOnly": "true"}
    o = parse.order(row)
    assert o.qty == D("0.1") and o.filled == 0 and o.reduce_only is True


def test_unknown_status_is_a_malformed_answer_naming_the_field() -> None:
    row = {**parse.rows(result("order_realtime"))[0], "orderStatus": "Exploded"}
    with pytest.raises(MalformedResponse, match="orderStatus"):
        parse.order(row)


def test_bad_number_names_the_field() -> None:
    row = {**parse.rows(result("order_realtime"))[0], "qty": "abc"}
    with pytest.raises(MalformedResponse, match="qty: not a number"):
        parse.order(row)


def test_instruments_both_documented_examples() -> None:
    btc = parse.instrument(parse.rows(result("market_instruments_linear"))[0])
    assert (btc.symbol, btc.tick_size, btc.qty_step) == ("BTCUSDT", D("0.10"), D("0.001"))
    assert (btc.min_qty, btc.max_qty, btc.max_mkt_qty, btc.min_notional) == (
        D("0.001"),
        D("1190.000"),
        D("500.000"),
        D("5"),
    )
    pre = result("market_instruments_linear_prelisting")
    bio = parse.instrument(parse.rows(pre)[0])
    assert (bio.symbol, bio.tick_size, bio.qty_step) == ("BIOUSDT", D("0.0001"), D("1"))
    assert parse.next_cursor(pre) == "first%3DBIOUSDT%26last%3DBIOUSDT"


def test_ticker_and_prelisting_ticker_without_prices() -> None:
    row = parse.rows(result("market_tickers"))[0]
    t = parse.ticker(row)
    assert t is not None and (t.last_price, t.mark_price) == (D("120635.50"), D("114898.43"))
    assert parse.ticker({**row, "lastPrice": "", "markPrice": ""}) is None


def test_wallet_balance_without_usdt() -> None:
    w = parse.wallet(result("account_wallet_balance"), "main")
    assert w.equity == D("3.31216591")
    assert w.available == D("3.00326056")
    assert w.wallet_balance == 0  # the documented account holds only BTC


def test_execution_row() -> None:
    r = result("execution_list")
    e = parse.execution(parse.rows(r)[0])
    assert e is not None
    assert (e.exec_id, e.symbol, e.side) == ("e0cbe81d-0f18-5866-9415-cf319b5dab3b", "ETHPERP", Side.BUY)
    assert (e.price, e.qty, e.fee) == (D("1190.15"), D("0.1"), D("0.071409"))
    assert e.exec_time_ms == 1672282722429 and e.is_maker is False
    assert parse.next_cursor(r) == "132766%3A2%2C132766%3A2"
    assert e.stop_order_type == "" and not e.by_position_stop  # Bybit's "UNKNOWN": a plain order


@pytest.mark.parametrize(
    ("stop_order_type", "expected", "by_position_stop"),
    [
        ("StopLoss", "StopLoss", True),  # the position's own stop-loss (trading-stop, Full mode)
        ("PartialStopLoss", "PartialStopLoss", False),
        ("Stop", "Stop", False),  # a conditional order of ours
        ("UNKNOWN", "", False),
        ("", "", False),
    ],
)
def test_an_execution_says_which_stop_filled_it(stop_order_type, expected, by_position_stop) -> None:
    row = {**parse.rows(result("execution_list"))[0], "stopOrderType": stop_order_type}
    e = parse.execution(row)
    assert e is not None and e.stop_order_type == expected and e.by_position_stop is by_position_stop


def test_batch_items_zip_the_two_lists() -> None:
    body = fixture_body("order_cancel_batch")
    items = parse.batch_items(body["result"], body["retExtInfo"], 2)
    assert [(i.link_id, i.code) for i in items] == [("spot-btc-03", 0), ("1666800494330512129", 170213)]
    assert items[1].order_id == "" and items[1].msg == "Order does not exist."
    with pytest.raises(MalformedResponse, match="2 results and 2 statuses for 3 items"):
        parse.batch_items(body["result"], body["retExtInfo"], 3)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"retCode":0,"retMsg":"OK","result":{}}', 0),
        (b'{"retMsg":"OK","result":{}}', 0),  # absent retCode: success, as pybit reads it
        (b'{"retCode":"10006","retMsg":"x"}', 10006),
        (b"<html>502 Bad Gateway</html>", None),
        (b"", None),
        (b'{"retCode":"abc"}', None),
        (b"[1,2]", None),
        (b'{"retCode":0,"result":{"x":NaN}}', 0),  # orjson refuses NaN: json reads it, as before
        (b"\xff\xfe", None),
    ],
)
def test_envelope(raw: bytes, code: int | None) -> None:
    assert parse.envelope(raw).ret_code == code


def test_unset_spellings() -> None:
    for v in ("", "0", "0.00", 0, None):
        assert parse.opt_dec({"x": v}, "x") is None
    assert parse.opt_dec({"x": "65000.5"}, "x") == D("65000.5")
    assert parse.opt_dec({"x": 1.5}, "x") == D("1.5")


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        (parse.dec, "0.010", D("0.010")),
        (parse.dec, " 65000.5\n", D("65000.5")),
        (parse.dec, 7, D("7")),
        (parse.dec, 0.1, D("0.1")),
        (parse.dec, "abc", "not a number"),
        (parse.dec, "NaN", "not a finite number"),
        (parse.dec, "Infinity", "not a finite number"),
        (parse.dec, True, "expected a number, got a boolean"),
        (parse.dec, [1], "not a number"),
        (parse.to_int, 2, 2),
        (parse.to_int, "1", 1),
        (parse.to_int, " 1 ", 1),
        (parse.to_int, "1684738540559.0", 1684738540559),
        (parse.to_int, "", 0),
        (parse.to_int, None, 0),
        (parse.to_int, True, "expected an integer, got a boolean"),
        (parse.to_int, "x", "not an integer"),
    ],
)
def test_number_fields_every_json_type(read: Any, value: object, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(MalformedResponse, match=f"^f: {expected}"):
            read({"f": value}, "f")
    else:
        assert read({"f": value}, "f") == expected


def test_side_status_and_text_refuse_what_they_do_not_know() -> None:
    row = parse.rows(result("order_realtime"))[0]
    for field, bad in (("side", "buy"), ("side", 1), ("orderStatus", "Exploded"), ("orderStatus", 3)):
        with pytest.raises(MalformedResponse, match=field):
            parse.order({**row, field: bad})
    assert parse.order({**row, "orderStatus": "Active"}).status.value == "New"  # an alias
    assert parse.order({**row, "side": "Sell"}).side is Side.SELL
    with pytest.raises(MalformedResponse, match="orderId: expected a string"):
        parse.order({**row, "orderId": {"x": 1}})
