"""Position take-profit / stop-loss (trading-stop, Full and Partial mode), position mode and leverage."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from exchange.paper.commands import TradingStopRequest
from exchange.paper.errors import (
    LEVERAGE_NOT_MODIFIED,
    MODE_NOT_MODIFIED,
    NOT_MODIFIED,
    ORDERS_EXIST,
    PARAMS,
    POSITION_EXISTS,
    PaperError,
)
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


DECIMALS = ("take_profit", "stop_loss", "tp_size", "sl_size", "tp_limit_price", "sl_limit_price")


def stops(ex: Exchange, acct, idx: int = 0, **kw) -> None:
    values = {k: D(v) if k in DECIMALS else v for k, v in kw.items()}
    ex.engine.set_trading_stop(acct, TradingStopRequest(symbol="BTCUSDT", position_idx=idx, **values))


def refused(fn, *args, **kwargs) -> PaperError:
    with pytest.raises(PaperError) as err:
        fn(*args, **kwargs)
    return err.value


def test_trading_stop_needs_a_position(ex: Exchange) -> None:
    err = refused(stops, ex, ex.account(), stop_loss="60000")
    assert (err.code, err.message) == (PARAMS, "can not set tp/sl/ts for zero position")


def test_full_mode_take_profit_and_stop_loss(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stops(ex, a, take_profit="67000", stop_loss="64000")
    pos = ex.position(a)
    assert (pos.take_profit, pos.stop_loss) == (D(67000), D(64000))
    tp, sl = pos.tp_order, pos.sl_order
    assert (tp.stop_order_type, tp.create_type, tp.trigger_direction) == (
        "TakeProfit",
        "CreateByTakeProfit",
        1,
    )
    assert (sl.stop_order_type, sl.create_type, sl.trigger_direction) == ("StopLoss", "CreateByStopLoss", 2)
    assert refused(stops, ex, a, take_profit="67000", stop_loss="64000").code == NOT_MODIFIED

    ex.place(a, "Buy", "0.005")  # the position grows: Full mode follows it
    (fill,) = ex.walk("64000")
    assert fill.qty == D("0.015")
    assert sl.status is St.FILLED and ex.size(a) == 0
    assert (tp.status, tp.cancel_type) == (St.DEACTIVATED, "CancelByTpSlTsClear")
    assert pos.take_profit == 0 and pos.stop_loss == 0


def test_stop_loss_on_the_wrong_side(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    err = refused(stops, ex, a, stop_loss="66000")
    assert err.code == PARAMS
    assert err.message == (
        "StopLoss:6600000000000 set for Buy position should lower than base_price:6500000000000??LastPrice"
    )
    err = refused(stops, ex, a, take_profit="64000")
    assert err.message.startswith("TakeProfit:6400000000000 set for Buy position should higher than")


def test_short_position_stops(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Sell", "0.010")
    stops(ex, a, take_profit="60000", stop_loss="66000")
    (fill,) = ex.walk("60000")
    assert fill.side.value == "Buy" and ex.size(a) == 0


def test_clearing_a_stop(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stops(ex, a, stop_loss="64000")
    sl = ex.position(a).sl_order
    stops(ex, a, stop_loss="0")
    assert sl.status is St.DEACTIVATED and ex.position(a).stop_loss == 0
    assert ex.walk("63000") == []


def partial_orders(ex: Exchange, a) -> list:
    return [o for o in ex.position(a).reducing_orders.values() if o.stop_order_type.startswith("Partial")]


def test_partial_mode_adds_fixed_size_orders(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stops(
        ex, a, tpsl_mode="Partial", take_profit="67000", stop_loss="64000", tp_size="0.004", sl_size="0.004"
    )
    stops(ex, a, tpsl_mode="Partial", stop_loss="63000", sl_size="0.006", sl_trigger_by="MarkPrice")
    legs = partial_orders(ex, a)
    assert [(o.stop_order_type, o.create_type, o.qty, o.trigger_direction) for o in legs] == [
        ("PartialTakeProfit", "CreateByPartialTakeProfit", D("0.004"), 1),
        ("PartialStopLoss", "CreateByPartialStopLoss", D("0.004"), 2),
        ("PartialStopLoss", "CreateByPartialStopLoss", D("0.006"), 2),
    ]
    assert legs[2].trigger_by == "MarkPrice"
    pos = ex.position(a)
    assert pos.take_profit == 0 and pos.stop_loss == 0  # the position's fields show Full mode only
    (fill,) = ex.walk("64000")  # only the first stop: a fixed size, the position stays
    assert fill.qty == D("0.004") and ex.size(a) == D("0.006")
    assert ex.mark("62900")[0].qty == D("0.006") and ex.size(a) == 0
    assert (legs[0].status, legs[0].cancel_type) == (St.DEACTIVATED, "CancelByTpSlTsClear")


def test_partial_limit_take_profit(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stops(
        ex, a, tpsl_mode="Partial", take_profit="66000", tp_size="0.010", tp_order_type="Limit",
        tp_limit_price="66500",
    )  # fmt: skip
    (tp,) = partial_orders(ex, a)
    assert (tp.order_type, tp.price) == ("Limit", D(66500))
    assert ex.walk("66000") == []  # triggered: now a resting limit at 66,500
    assert tp.status is St.NEW
    (fill,) = ex.walk("66500")
    assert fill.price == D(66500) and fill.is_maker and ex.size(a) == 0


def test_partial_mode_refusals(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    err = refused(stops, ex, a, tpsl_mode="Partial", stop_loss="64000")
    assert (err.code, err.message) == (PARAMS, "params error: slSize is required in Partial mode")
    err = refused(stops, ex, a, tpsl_mode="Partial", stop_loss="64000", sl_size="0.020")
    assert "must not exceed the position size" in err.message
    err = refused(stops, ex, a, tpsl_mode="Partial", take_profit="64000", tp_size="0.005")
    assert err.message.startswith("TakeProfit:6400000000000 set for Buy position should higher than")
    err = refused(
        stops,
        ex,
        a,
        tpsl_mode="Partial",
        take_profit="67000",
        stop_loss="64000",
        tp_size="0.005",
        sl_size="0.004",
    )
    assert "slSize" in err.message
    err = refused(
        stops, ex, a, tpsl_mode="Partial", take_profit="67000", tp_size="0.005", tp_order_type="Limit"
    )
    assert "tpLimitPrice" in err.message
    for _ in range(20):
        stops(ex, a, tpsl_mode="Partial", stop_loss="64000", sl_size="0.001")
    err = refused(stops, ex, a, tpsl_mode="Partial", stop_loss="64000", sl_size="0.001")
    assert err.message == "the number of Partial TP/SL orders exceeds 20"


def test_switch_mode(ex: Exchange) -> None:
    a = ex.account()
    err = refused(ex.engine.switch_mode, a, symbol="BTCUSDT", coin=None, mode=0)
    assert (err.code, err.message) == (MODE_NOT_MODIFIED, "Position mode is not modified")
    ex.place(a, "Buy", "0.010")
    assert refused(ex.engine.switch_mode, a, symbol="BTCUSDT", coin=None, mode=3).code == POSITION_EXISTS
    ex.place(a, "Buy", "1", symbol="ETHUSDT", price="3000")
    assert refused(ex.engine.switch_mode, a, symbol="ETHUSDT", coin=None, mode=3).code == ORDERS_EXIST
    ex.engine.switch_mode(a, symbol="SOLUSDT", coin=None, mode=3)
    assert a.hedge("SOLUSDT") and not a.hedge("BTCUSDT")
    ex.place(a, "Buy", "1", symbol="SOLUSDT", idx=1)
    assert refused(ex.engine.switch_mode, a, symbol=None, coin="USDT", mode=3).code == POSITION_EXISTS
    assert refused(ex.engine.switch_mode, a, symbol="BTCUSDT", coin=None, mode=1).code == PARAMS


def test_set_leverage(ex: Exchange) -> None:
    a = ex.account()
    ex.engine.set_leverage(a, "BTCUSDT", D(25), D(25))
    err = refused(ex.engine.set_leverage, a, "BTCUSDT", D(25), D(25))
    assert (err.code, err.message) == (LEVERAGE_NOT_MODIFIED, "leverage not modified")
    assert refused(ex.engine.set_leverage, a, "BTCUSDT", D(0), D(0)).code == PARAMS
    assert refused(ex.engine.set_leverage, a, "BTCUSDT", D(101), D(101)).code == PARAMS
    assert refused(ex.engine.set_leverage, a, "BTCUSDT", D(10), D(20)).code == PARAMS  # one-way
    h = ex.account(hedge=True)
    ex.engine.set_leverage(h, "BTCUSDT", D(10), D(20))
    assert ex.engine.leverage_of(h, "BTCUSDT", 2) == D(20)
