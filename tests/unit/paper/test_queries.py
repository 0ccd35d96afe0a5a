"""The read side: v5 shapes (every number a string but the documented ints and bools), newest-first
keyset pagination that survives changes between pages, position rows by symbol and settleCoin."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exchange.paper import queries as Q
from exchange.paper.errors import PaperError
from exchange.paper.views import order_view, position_view
from tests.unit.paper.harness import D, Exchange

# Bybit v5 docs: ints are positionIdx, triggerDirection, seq, smpGroup, autoAddMargin (+ riskId, tradeMode,
# adlRankIndicator, openTime, fundingInterval, as the docs show them); bools are reduceOnly,
# closeOnTrigger, isMaker (+ isReduceOnly and the instrument/wallet flags)
INTS = {
    "positionIdx",
    "triggerDirection",
    "seq",
    "smpGroup",
    "autoAddMargin",
    "riskId",
    "tradeMode",
    "adlRankIndicator",
    "openTime",
    "fundingInterval",
}
BOOLS = {
    "reduceOnly",
    "closeOnTrigger",
    "isMaker",
    "isReduceOnly",
    "unifiedMarginTrade",
    "isPreListing",
    "marginCollateral",
    "collateralSwitch",
}


def check_types(obj: Any, where: str = "") -> None:
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            check_types(item, f"{where}[{i}]")
        return
    assert isinstance(obj, dict), where
    for key, value in obj.items():
        path = f"{where}.{key}"
        if key in INTS:
            assert type(value) is int, path
        elif key in BOOLS:
            assert type(value) is bool, path
        elif isinstance(value, (dict, list)):
            check_types(value, path)
        else:
            assert value is None or isinstance(value, str), path


def rows(page: tuple[list[Any], str]) -> tuple[list[dict[str, Any]], str]:
    return [orjson.loads(orjson.dumps(r)) for r in page[0]], page[1]


@pytest.fixture
def ex() -> Exchange:
    return Exchange(extra_symbols=30)


def open_orders(ex: Exchange, acct, **kw) -> tuple[list[dict[str, Any]], str]:
    args = dict(
        symbol=None,
        base_coin=None,
        order_id=None,
        link_id=None,
        open_only=0,
        order_filter=None,
        limit=20,
        cursor=None,
    )
    args.update(kw)
    return rows(Q.open_orders(ex.engine, acct, **args))


def test_every_shape_uses_strings_for_numbers(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    ex.place(a, "Sell", "0.010", price="66000", reduce_only=True)
    ex.place(a, "Sell", "0.010", trigger="64000", direction=2, reduce_only=True, close_on_trigger=True)
    engine = ex.engine
    check_types(open_orders(ex, a, symbol="BTCUSDT")[0])
    check_types(rows(Q.positions(engine, a, symbol=None, settle_coin="USDT", limit=20, cursor=None))[0])
    check_types(rows(Q.positions(engine, a, symbol="ETHUSDT", settle_coin=None, limit=20, cursor=None))[0])
    exec_args = dict(
        symbol=None,
        base_coin=None,
        order_id=None,
        link_id=None,
        exec_type=None,
        start_ms=None,
        end_ms=None,
        limit=50,
        cursor=None,
    )
    check_types(rows(Q.executions(engine, a, **exec_args))[0])
    check_types(orjson.loads(orjson.dumps(Q.tickers(engine, None))))
    check_types(
        rows(Q.instruments(engine, symbol=None, base_coin=None, status=None, limit=5, cursor=None))[0]
    )
    check_types(Q.wallet(engine, a, None))


def test_order_and_position_rows(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    o = ex.place(a, "Sell", "0.004", price="66000", reduce_only=True, link="tp1")
    v = order_view(o)
    assert (v["orderStatus"], v["price"], v["qty"], v["cumExecQty"], v["leavesQty"]) == (
        "New",
        "66000.00",
        "0.004",
        "0.000",
        "0.004",
    )
    assert (v["orderLinkId"], v["reduceOnly"], v["triggerPrice"], v["stopOrderType"]) == (
        "tp1",
        True,
        "0.00",
        "",
    )
    ex.walk("66000")
    v = order_view(o)
    assert (v["orderStatus"], v["cumExecQty"], v["avgPrice"], v["leavesQty"]) == (
        "Filled",
        "0.004",
        "66000",
        "0.000",
    )
    p = position_view(ex.position(a), ex.engine.markets["BTCUSDT"].mark)
    assert (p["side"], p["size"], p["avgPrice"], p["markPrice"], p["unrealisedPnl"]) == (
        "Buy",
        "0.006",
        "65000",
        "66000.00",
        "6",
    )
    assert (p["takeProfit"], p["stopLoss"], p["positionIdx"]) == ("", "", 0)


def test_position_list_by_symbol_shows_flat_rows_and_both_hedge_sides(ex: Exchange) -> None:
    one_way, hedge = ex.account(), ex.account(hedge=True)
    (flat,), _ = rows(
        Q.positions(ex.engine, one_way, symbol="BTCUSDT", settle_coin=None, limit=20, cursor=None)
    )
    assert (flat["side"], flat["size"], flat["positionIdx"]) == ("", "0.000", 0)
    ex.place(hedge, "Sell", "0.010", idx=2)
    both, _ = rows(Q.positions(ex.engine, hedge, symbol="BTCUSDT", settle_coin=None, limit=20, cursor=None))
    assert [(r["positionIdx"], r["side"], r["size"]) for r in both] == [
        (1, "", "0.000"),
        (2, "Sell", "0.010"),
    ]


def test_position_list_by_settle_coin_pages_through_open_positions_only(ex: Exchange) -> None:
    a = ex.account()
    symbols = [f"SYN{i:04d}USDT" for i in range(1, 26)]
    for s in symbols:
        ex.place(a, "Buy", "1", symbol=s)
    ex.place(a, "Sell", "1", symbol=symbols[3])  # closed again: not listed
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = rows(
            Q.positions(ex.engine, a, symbol=None, settle_coin="USDT", limit=10, cursor=cursor)
        )
        seen += [r["symbol"] for r in page]
        pages += 1
        if not cursor:
            break
        assert all(c in "0123456789abcdef" for c in cursor)
    assert pages == 3
    assert seen == [s for s in symbols if s != symbols[3]]


def test_open_orders_page_newest_first_and_survive_a_cancel_between_pages(ex: Exchange) -> None:
    a = ex.account()
    orders = [ex.place(a, "Buy", "0.001", price=str(60000 + i), link=f"o{i:02d}") for i in range(45)]
    page1, cursor = open_orders(ex, a, symbol="BTCUSDT")
    assert [r["orderLinkId"] for r in page1] == [f"o{i:02d}" for i in range(44, 24, -1)]
    ex.engine.cancel_order(a, "BTCUSDT", orders[20].order_id)  # on page 2, before it is read
    ex.engine.cancel_order(a, "BTCUSDT", orders[44].order_id)  # on page 1, already read
    page2, cursor = open_orders(ex, a, symbol="BTCUSDT", cursor=cursor)
    assert [r["orderLinkId"] for r in page2] == [f"o{i:02d}" for i in range(24, 3, -1) if i != 20]
    page3, cursor = open_orders(ex, a, symbol="BTCUSDT", cursor=cursor)
    assert [r["orderLinkId"] for r in page3] == ["o03", "o02", "o01", "o00"] and cursor == ""


def test_realtime_finds_a_closed_order_by_id_and_lists_recent_closed_ones(ex: Exchange) -> None:
    a = ex.account()
    filled = ex.place(a, "Buy", "0.001", link="m1")
    cancelled = ex.place(a, "Buy", "0.001", price="60000", link="l1")
    ex.engine.cancel_order(a, "BTCUSDT", cancelled.order_id)
    (row,), _ = open_orders(ex, a, symbol="BTCUSDT", link_id="m1")
    assert row["orderStatus"] == "Filled" and row["orderId"] == filled.order_id
    assert open_orders(ex, a, symbol="BTCUSDT")[0] == []
    closed, _ = open_orders(ex, a, symbol="BTCUSDT", open_only=1)
    assert [r["orderLinkId"] for r in closed] == ["l1", "m1"]


def test_order_history_filters_and_keeps_cancelled_orders_24_hours(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.001", link="f")
    c = ex.place(a, "Buy", "0.001", price="60000", link="c")
    ex.engine.cancel_order(a, "BTCUSDT", c.order_id)
    ex.place(a, "Buy", "0.001", price="60000", link="n")

    def history(**kw) -> list[str]:
        args = dict(
            symbol=None,
            base_coin=None,
            order_id=None,
            link_id=None,
            status=None,
            order_filter=None,
            start_ms=None,
            end_ms=None,
            limit=20,
            cursor=None,
        )
        args.update(kw)
        return [r["orderLinkId"] for r in rows(Q.order_history(ex.engine, a, **args))[0]]

    assert history() == ["n", "c", "f"]
    assert history(status="Filled") == ["f"]
    ex.clock.advance(25 * 3600)
    assert history() == ["n", "f"]  # the cancelled one aged out
    with pytest.raises(PaperError):
        history(start_ms=0, end_ms=8 * 24 * 3600 * 1000)


def test_executions_newest_first_with_cursor(ex: Exchange) -> None:
    a = ex.account()
    for _ in range(5):
        ex.place(a, "Buy", "0.001")
        ex.clock.advance(1)
    args = dict(
        symbol="BTCUSDT",
        base_coin=None,
        order_id=None,
        link_id=None,
        exec_type=None,
        start_ms=None,
        end_ms=None,
        limit=3,
    )
    first, cursor = rows(Q.executions(ex.engine, a, cursor=None, **args))
    second, end = rows(Q.executions(ex.engine, a, cursor=cursor, **args))
    seqs = [r["seq"] for r in first + second]
    assert seqs == [5, 4, 3, 2, 1] and end == ""


def test_bad_cursor_is_a_params_error(ex: Exchange) -> None:
    with pytest.raises(PaperError) as err:
        open_orders(ex, ex.account(), symbol="BTCUSDT", cursor="page_args%3Dzz")
    assert err.value.code == 10001 and "cursor" in err.value.message


def test_wallet(ex: Exchange) -> None:
    a = ex.account(balance="1000")
    ex.place(a, "Buy", "0.010")
    ex.walk("66000")
    w = Q.wallet(ex.engine, a, None)
    assert w["totalWalletBalance"] == "999.6425"
    assert w["totalPerpUPL"] == "10"
    assert w["totalEquity"] == "1009.6425"
    assert w["coin"][0]["totalPositionIM"] == "65"
    assert w["totalAvailableBalance"] == "934.6425"
    assert Q.wallet(ex.engine, a, {"USDC"})["coin"] == []
    assert D(w["coin"][0]["walletBalance"]) == a.wallet
