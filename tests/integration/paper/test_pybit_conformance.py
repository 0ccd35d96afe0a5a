"""Conformance with a client nobody here wrote: the official pybit 5.17, unmodified, against the
paper exchange over real loopback HTTP. pybit must see what it would see from Bybit: the same
shapes and the same retCodes (10004 bad signature, 10002 clock window after its retries, 110072,
110017, …)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.helpers import Helpers
from pybit.unified_trading import HTTP

from tests.plugins.paper import PaperHandle


@pytest.fixture(autouse=True)
def _quiet_pybit_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="pybit._http_manager")


def session(
    paper: PaperHandle, *, hedge: bool = False, balance: str = "100000", secret: str | None = None
) -> HTTP:
    creds = paper.new_account(balance=balance, hedge_mode=hedge)
    s = HTTP(api_key=creds.api_key, api_secret=secret or creds.api_secret, retry_delay=0.05)
    s.endpoint = paper.base_url
    return s


def error_of(call, **kwargs) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as err:
        call(**kwargs)
    return err.value


def test_market_data(paper: PaperHandle) -> None:
    s = HTTP(retry_delay=0.05)  # no keys: market routes need no auth
    s.endpoint = paper.base_url
    assert int(s.get_server_time()["result"]["timeSecond"]) > 1_600_000_000
    (btc,) = s.get_tickers(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert btc["lastPrice"] == "65000.00" and btc["markPrice"] == "65000.00"
    assert len(s.get_tickers(category="linear")["result"]["list"]) >= 10
    (info,) = s.get_instruments_info(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert info["priceFilter"]["tickSize"] == "0.10"
    assert info["lotSizeFilter"] == {
        "maxOrderQty": "1190.000",
        "minOrderQty": "0.001",
        "qtyStep": "0.001",
        "postOnlyMaxOrderQty": "1190.000",
        "maxMktOrderQty": "500.000",
        "minNotionalValue": "5",
    }
    page = s.get_instruments_info(category="linear", limit=10)["result"]
    assert len(page["list"]) == 10 and page["nextPageCursor"]
    rest = s.get_instruments_info(category="linear", limit=1000, cursor=page["nextPageCursor"])["result"]
    names = [i["symbol"] for i in page["list"] + rest["list"]]
    assert len(names) == len(set(names)) and "SYN0050USDT" in names and rest["nextPageCursor"] == ""


def test_place_amend_cancel_and_read_back(paper: PaperHandle) -> None:
    s = session(paper)
    placed = s.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.010",
        price="64000",
        orderLinkId="tgconf-E1-1",
    )
    order_id = placed["result"]["orderId"]
    assert placed["result"]["orderLinkId"] == "tgconf-E1-1"
    s.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="tgconf-E1-1", price="64100", qty="0.020")
    (row,) = s.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (row["orderId"], row["price"], row["qty"], row["orderStatus"]) == (
        order_id,
        "64100.00",
        "0.020",
        "New",
    )
    assert row["positionIdx"] == 0 and row["reduceOnly"] is False
    unchanged = error_of(s.amend_order, category="linear", symbol="BTCUSDT", orderId=order_id, price="64100")
    assert unchanged.status_code == 10001 and "remains unchanged" in unchanged.message
    s.cancel_order(category="linear", symbol="BTCUSDT", orderId=order_id)
    assert s.get_open_orders(category="linear", settleCoin="USDT")["result"]["list"] == []
    gone = error_of(s.cancel_order, category="linear", symbol="BTCUSDT", orderId=order_id)
    assert gone.status_code == 110001
    (hist,) = s.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (hist["orderStatus"], hist["cancelType"]) == ("Cancelled", "CancelByUser")
    (by_link,) = s.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="tgconf-E1-1")["result"][
        "list"
    ]
    assert by_link["orderStatus"] == "Cancelled"  # realtime by id finds a closed order


def test_fills_positions_executions_and_wallet(paper: PaperHandle) -> None:
    s = session(paper, balance="10000")
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.010")
    s.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Sell",
        orderType="Limit",
        qty="0.004",
        price="66000",
        reduceOnly=True,
        orderLinkId="tp1",
    )
    fills = paper.admin.set_prices({"BTCUSDT": "66000"})
    assert [(f["orderLinkId"], f["execQty"], f["execPrice"], f["isMaker"]) for f in fills] == [
        ("tp1", "0.004", "66000.00", True)
    ]
    (pos,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (pos["side"], pos["size"], pos["avgPrice"], pos["positionIdx"]) == ("Buy", "0.006", "65000", 0)
    assert pos["unrealisedPnl"] == "6" and isinstance(pos["seq"], int)
    listed = s.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert [p["symbol"] for p in listed] == ["BTCUSDT"]
    execs = s.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert [(e["side"], e["execQty"], e["isMaker"]) for e in execs] == [
        ("Sell", "0.004", True),
        ("Buy", "0.010", False),
    ]
    assert execs[1]["execFee"] == "0.3575" and execs[0]["execFee"] == "0.0528"
    (wallet,) = s.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
    expected = Decimal(10000) - Decimal("0.3575") - Decimal("0.0528") + Decimal(4)
    assert Decimal(wallet["totalWalletBalance"]) == expected
    assert wallet["coin"][0]["coin"] == "USDT"


def test_batch_calls(paper: PaperHandle) -> None:
    s = session(paper)
    created = s.place_batch_order(
        category="linear",
        request=[
            {
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": 0.001,
                "price": 60000,
                "orderLinkId": "b1",
            },
            {
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": "0.0001",
                "price": "60000",
                "orderLinkId": "b2",
            },
            {
                "symbol": "ETHUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": "0.10",
                "price": "3000",
                "orderLinkId": "b3",
            },
            {
                "symbol": "BTCUSDT",
                "side": "Sell",
                "orderType": "Market",
                "qty": "0.001",
                "triggerPrice": "60000",
                "triggerDirection": 2,
                "orderLinkId": "b4",
            },
        ],
    )
    assert created["retCode"] == 0
    codes = [e["code"] for e in created["retExtInfo"]["list"]]
    assert codes == [0, 10001, 0, 0]
    rows = created["result"]["list"]
    assert [r["orderLinkId"] for r in rows] == ["b1", "b2", "b3", "b4"]
    assert rows[1]["orderId"] == "" and rows[0]["orderId"] and rows[0]["createAt"]

    amended = s.amend_batch_order(
        category="linear",
        request=[
            {"symbol": "BTCUSDT", "orderLinkId": "b1", "price": "60100"},
            {"symbol": "BTCUSDT", "orderLinkId": "b4", "qty": "0.002"},  # conditional: refused per item
            {"symbol": "BTCUSDT", "orderLinkId": "nope", "price": "1"},
        ],
    )
    assert [e["code"] for e in amended["retExtInfo"]["list"]] == [0, 10001, 110001]

    cancelled = s.cancel_batch_order(
        category="linear",
        request=[{"symbol": "BTCUSDT", "orderLinkId": "b1"}, {"symbol": "ETHUSDT", "orderLinkId": "b3"}],
    )
    assert [e["code"] for e in cancelled["retExtInfo"]["list"]] == [0, 0]
    left = s.get_open_orders(category="linear", settleCoin="USDT")["result"]["list"]
    assert [o["orderLinkId"] for o in left] == ["b4"]
    too_many = error_of(
        s.place_batch_order,
        category="linear",
        request=[{"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001"}] * 21,
    )
    assert too_many.status_code == 10001


def test_cancel_all_and_pagination(paper: PaperHandle) -> None:
    s = session(paper)
    for i in range(5):
        s.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Limit",
            qty="0.001",
            price=str(60000 + i),
            orderLinkId=f"p{i}",
        )
    first = s.get_open_orders(category="linear", symbol="BTCUSDT", limit=2)["result"]
    second = s.get_open_orders(category="linear", symbol="BTCUSDT", limit=2, cursor=first["nextPageCursor"])[
        "result"
    ]
    third = s.get_open_orders(category="linear", symbol="BTCUSDT", limit=2, cursor=second["nextPageCursor"])[
        "result"
    ]
    links = [o["orderLinkId"] for o in first["list"] + second["list"] + third["list"]]
    assert links == ["p4", "p3", "p2", "p1", "p0"] and third["nextPageCursor"] == ""
    done = s.cancel_all_orders(category="linear", symbol="BTCUSDT")["result"]
    assert done["success"] == "1" and len(done["list"]) == 5


def test_duplicate_order_link_id(paper: PaperHandle) -> None:
    s = session(paper)
    s.place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001", orderLinkId="dup"
    )
    err = error_of(
        s.place_order,
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.001",
        orderLinkId="dup",
    )
    assert (err.status_code, err.message) == (110072, "OrderLinkedID is duplicate")


def test_reduce_only_violation(paper: PaperHandle) -> None:
    s = session(paper)
    err = error_of(
        s.place_order,
        category="linear",
        symbol="BTCUSDT",
        side="Sell",
        orderType="Limit",
        qty="0.001",
        price="70000",
        reduceOnly=True,
    )
    assert err.status_code == 110017


def test_hedge_mode_rows_and_close_position_helper(paper: PaperHandle) -> None:
    s = session(paper, hedge=True)
    rows = s.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert sorted((r["positionIdx"], r["side"], r["size"]) for r in rows) == [
        (1, "", "0.00"),
        (2, "", "0.00"),
    ]
    err = error_of(
        s.place_order, category="linear", symbol="ETHUSDT", side="Buy", orderType="Market", qty="1"
    )
    assert (err.status_code, err.message) == (10001, "position idx not match position mode")
    s.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Market", qty="1", positionIdx=1)
    s.place_order(
        category="linear", symbol="ETHUSDT", side="Sell", orderType="Market", qty="2", positionIdx=2
    )
    rows = s.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert sorted((r["positionIdx"], r["side"], r["size"]) for r in rows) == [
        (1, "Buy", "1.00"),
        (2, "Sell", "2.00"),
    ]
    Helpers(s).close_position(
        category="linear", symbol="ETHUSDT"
    )  # market, qty=size, positionIdx, no reduceOnly
    assert s.get_positions(category="linear", settleCoin="USDT")["result"]["list"] == []


def test_position_settings(paper: PaperHandle) -> None:
    s = session(paper)
    s.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="20", sellLeverage="20")
    assert (
        error_of(
            s.set_leverage, category="linear", symbol="BTCUSDT", buyLeverage="20", sellLeverage="20"
        ).status_code
        == 110043
    )
    s.switch_position_mode(category="linear", symbol="SOLUSDT", mode=3)
    assert error_of(s.switch_position_mode, category="linear", symbol="SOLUSDT", mode=3).status_code == 110025
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.010")
    s.set_trading_stop(
        category="linear",
        symbol="BTCUSDT",
        tpslMode="Full",
        positionIdx=0,
        stopLoss="64000",
        takeProfit="67000",
    )
    (pos,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (pos["stopLoss"], pos["takeProfit"], pos["leverage"]) == ("64000.00", "67000.00", "20")
    wrong = error_of(
        s.set_trading_stop,
        category="linear",
        symbol="BTCUSDT",
        tpslMode="Full",
        positionIdx=0,
        stopLoss="66000",
    )
    assert wrong.status_code == 10001 and "should lower than base_price" in wrong.message
    stops = s.get_open_orders(category="linear", symbol="BTCUSDT", orderFilter="tpslOrder")["result"]["list"]
    assert sorted(o["stopOrderType"] for o in stops) == ["StopLoss", "TakeProfit"]
    paper.admin.set_prices({"BTCUSDT": "63950"})
    assert s.get_positions(category="linear", settleCoin="USDT")["result"]["list"] == []


def test_partial_trading_stop_in_hedge_mode(paper: PaperHandle) -> None:
    s = session(paper, hedge=True)
    s.place_order(
        category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.010", positionIdx=2
    )
    s.set_trading_stop(
        category="linear",
        symbol="BTCUSDT",
        tpslMode="Partial",
        positionIdx=2,
        takeProfit="62000",
        tpSize="0.004",
        tpOrderType="Limit",
        tpLimitPrice="61900",
        stopLoss="66000",
        slSize="0.004",
        slTriggerBy="MarkPrice",
    )
    legs = s.get_open_orders(category="linear", symbol="BTCUSDT", orderFilter="tpslOrder")["result"]["list"]
    by_type = {o["stopOrderType"]: o for o in legs}
    assert set(by_type) == {"PartialTakeProfit", "PartialStopLoss"}
    tp, sl = by_type["PartialTakeProfit"], by_type["PartialStopLoss"]
    assert (tp["orderType"], tp["price"], tp["qty"], tp["tpslMode"], tp["side"]) == (
        "Limit",
        "61900.00",
        "0.004",
        "Partial",
        "Buy",
    )
    assert (sl["triggerBy"], sl["triggerDirection"], sl["positionIdx"]) == ("MarkPrice", 1, 2)
    wrong_idx = error_of(
        s.set_trading_stop,
        category="linear",
        symbol="BTCUSDT",
        tpslMode="Full",
        positionIdx=0,
        stopLoss="66000",
    )
    assert (wrong_idx.status_code, wrong_idx.message) == (10001, "position idx not match position mode")
    limit_in_full = error_of(
        s.set_trading_stop,
        category="linear",
        symbol="BTCUSDT",
        tpslMode="Full",
        positionIdx=2,
        takeProfit="62000",
        tpOrderType="Limit",
    )
    assert limit_in_full.status_code == 10001 and "tpOrderType" in limit_in_full.message
    paper.admin.set_prices({"BTCUSDT": "65000"}, mark_prices={"BTCUSDT": "66000"})  # the SL follows the mark
    (short,) = [
        p
        for p in s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
        if p["positionIdx"] == 2
    ]
    assert short["size"] == "0.006"


def test_account_key_and_coin_info(paper: PaperHandle) -> None:
    s = session(paper)
    key = s.get_api_key_information()["result"]
    assert key["uta"] == 1 and key["readOnly"] == 0 and key["apiKey"] == s.api_key and key["secret"] == ""
    assert key["permissions"]["ContractTrade"] == ["Order", "Position"] and isinstance(key["userID"], int)
    info = s.get_account_info()["result"]
    assert (info["unifiedMarginStatus"], info["marginMode"]) == (6, "REGULAR_MARGIN")
    (usdt,) = s.get_coin_info(coin="USDT")["result"]["rows"]
    assert usdt["coin"] == "USDT" and usdt["chains"] == []
    assert s.get_instruments_info(category="spot")["result"]["list"] == []  # valid, none listed here
    assert s.get_tickers(category="inverse")["result"]["list"] == []


def test_bad_signature(paper: PaperHandle) -> None:
    s = session(paper, secret="not-the-secret")
    err = error_of(s.get_positions, category="linear", settleCoin="USDT")
    assert err.status_code == 10004 and err.message.startswith("error sign! origin_string[")
    assert "not-the-secret" not in err.message


def test_expired_timestamp_is_retried_three_times_then_fails(paper: PaperHandle) -> None:
    s = session(paper)
    paper.admin.set_clock_offset(60_000)  # the server runs a minute ahead: every request is too old
    before = paper.admin.stats()["by_endpoint"].get("/v5/position/list", 0)
    with pytest.raises(FailedRequestError) as err:
        s.get_positions(category="linear", settleCoin="USDT")
    assert err.value.status_code == 400 and "Retries exceeded" in err.value.message
    assert paper.admin.stats()["by_endpoint"]["/v5/position/list"] - before == 3


def test_unknown_api_key(paper: PaperHandle) -> None:
    s = HTTP(api_key="nobody-here", api_secret="x" * 16, retry_delay=0.05)
    s.endpoint = paper.base_url
    assert error_of(s.get_wallet_balance, accountType="UNIFIED").status_code == 10003
