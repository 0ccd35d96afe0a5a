"""Order validation (filters, orderLinkId, notional), amend and cancel rules."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from exchange.paper.commands import AmendRequest
from exchange.paper.errors import (
    DUPLICATE_LINK_ID,
    EXPECT_FALLING,
    MIN_NOTIONAL,
    ORDER_NOT_FOUND,
    PARAMS,
    PaperError,
)
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


def refused(fn, *args, **kwargs) -> PaperError:
    with pytest.raises(PaperError) as err:
        fn(*args, **kwargs)
    return err.value


# --------------------------------------------------------------------------------- validation


def test_qty_filters(ex: Exchange) -> None:
    a = ex.account()
    low = refused(ex.place, a, "Buy", "0.0001", price="60000")
    assert (low.code, low.message) == (PARAMS, "The number of contracts exceeds minimum limit allowed")
    high = refused(ex.place, a, "Buy", "1191", price="60000")
    assert high.code == PARAMS
    assert high.message == (
        "The number of contracts exceeds maximum limit allowed: too large, "
        "order_qty:119100000000 > max_qty:119000000000"
    )
    market_high = refused(ex.place, a, "Buy", "600")  # above maxMktOrderQty (500)
    assert "max_qty:50000000000" in market_high.message
    step = refused(ex.place, a, "Buy", "0.0015", price="60000")
    assert step.code == PARAMS and step.message.startswith("Qty invalid")


def test_price_filters(ex: Exchange) -> None:
    a = ex.account()
    tick = refused(ex.place, a, "Buy", "0.001", price="60000.05")
    assert tick.code == PARAMS and "tickSize 0.10" in tick.message and "price" in tick.message
    trig = refused(ex.place, a, "Buy", "0.001", trigger="66000.05", direction=1)
    assert trig.code == PARAMS and "triggerPrice" in trig.message
    assert refused(ex.place, a, "Buy", "0.001", price="9999999999").code == 110003


def test_duplicate_order_link_id_even_after_the_order_closed(ex: Exchange) -> None:
    a, b = ex.account(), ex.account()
    ex.place(a, "Buy", "0.001", link="tgabc-E1-1")  # filled at once
    dup = refused(ex.place, a, "Buy", "0.001", price="60000", link="tgabc-E1-1")
    assert (dup.code, dup.message) == (DUPLICATE_LINK_ID, "OrderLinkedID is duplicate")
    ex.place(b, "Buy", "0.001", price="60000", link="tgabc-E1-1")  # another account: its own ids


def test_a_refused_order_does_not_use_up_its_link_id(ex: Exchange) -> None:
    a = ex.account()
    refused(ex.place, a, "Buy", "0.0001", price="60000", link="x1")
    ex.place(a, "Buy", "0.001", price="60000", link="x1")


def test_minimum_notional(ex: Exchange) -> None:
    a = ex.account()
    err = refused(ex.place, a, "Buy", "1", symbol="XRPUSDT")  # 0.55 USDT
    assert err.code == MIN_NOTIONAL
    ex.place(a, "Buy", "10", symbol="XRPUSDT")


def test_unknown_symbol(ex: Exchange) -> None:
    err = refused(ex.place, ex.account(), "Buy", "1", symbol="NOPEUSDT")
    assert (err.code, err.message) == (PARAMS, "params error: symbol invalid")


# ------------------------------------------------------------------------------------- amend


def amend(ex: Exchange, acct, link: str, **kw) -> None:
    kw = {k: (None if v is None else D(v)) if k != "trigger_by" else v for k, v in kw.items()}
    ex.engine.amend_order(acct, AmendRequest(symbol="BTCUSDT", link_id=link, **kw))


def test_amend_price_and_qty(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64000", link="e1")
    amend(ex, a, "e1", price="64100", qty="0.020")
    assert (o.price, o.qty, o.status) == (D(64100), D("0.020"), St.NEW)
    assert a.order_im == D("128.2")
    (fill,) = ex.walk("64100")
    assert fill.qty == D("0.020")


def test_amend_that_changes_nothing(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010", price="64000", link="e1")
    err = refused(amend, ex, a, "e1", price="64000", qty="0.010")
    assert err.code == PARAMS
    assert err.message == "The order remains unchanged as the parameters entered match the existing ones."


def test_amend_to_a_marketable_price_takes(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64000", link="e1")
    amend(ex, a, "e1", price="65500")
    assert o.status is St.FILLED
    assert next(a.executions.newest_first()).price == D(65000)


def test_amend_of_a_closed_or_unknown_order(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010", link="done")
    for link in ("done", "never"):
        err = refused(amend, ex, a, link, qty="0.020")
        assert (err.code, err.message) == (ORDER_NOT_FOUND, "order not exists or too late to replace")


def test_amend_stop_trigger_keeps_the_direction_rule(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    sl = ex.place(a, "Sell", "0.010", trigger="63000", direction=2, reduce_only=True, link="sl")
    amend(ex, a, "sl", trigger_price="64000", qty="0.008")
    assert (sl.trigger_price, sl.qty) == (D(64000), D("0.008"))
    assert refused(amend, ex, a, "sl", trigger_price="65500").code == EXPECT_FALLING
    assert ex.walk("64000")[0].qty == D("0.008")


def test_amend_batch_refuses_conditional_orders(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010", trigger="66000", direction=1, link="st")
    with pytest.raises(PaperError) as err:
        ex.engine.amend_order(
            a, AmendRequest(symbol="BTCUSDT", link_id="st", qty=D("0.02")), allow_conditional=False
        )
    assert err.value.code == PARAMS and "conditional" in err.value.message


def test_a_price_amend_loses_queue_priority(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.001", price="64000", link="first")
    ex.place(a, "Buy", "0.001", price="64000", link="second")
    amend(ex, a, "first", price="63900")
    amend(ex, a, "first", price="64000")
    assert [f.link_id for f in ex.walk("64000")] == ["second", "first"]


# ------------------------------------------------------------------------------------ cancel


def test_cancel(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64000", link="e1")
    ex.engine.cancel_order(a, "BTCUSDT", link_id="e1")
    assert (o.status, o.cancel_type) == (St.CANCELLED, "CancelByUser")
    again = refused(ex.engine.cancel_order, a, "BTCUSDT", link_id="e1")
    assert (again.code, again.message) == (ORDER_NOT_FOUND, "order not exists or too late to cancel")
    assert refused(ex.engine.cancel_order, a, "BTCUSDT", order_id="nope").code == ORDER_NOT_FOUND
    o2 = ex.place(a, "Buy", "1", symbol="ETHUSDT", price="3000")
    assert refused(ex.engine.cancel_order, a, "BTCUSDT", o2.order_id).code == ORDER_NOT_FOUND
    assert refused(ex.engine.cancel_order, a, "BTCUSDT").code == PARAMS  # neither id


def test_order_id_wins_over_order_link_id(ex: Exchange) -> None:
    a = ex.account()
    x = ex.place(a, "Buy", "0.001", price="64000", link="x")
    y = ex.place(a, "Buy", "0.001", price="64000", link="y")
    ex.engine.cancel_order(a, "BTCUSDT", order_id=y.order_id, link_id="x")
    assert y.status is St.CANCELLED and x.status is St.NEW


def test_cancel_all_filters(ex: Exchange) -> None:
    a = ex.account()
    limit = ex.place(a, "Buy", "0.001", price="64000")
    stop = ex.place(a, "Buy", "0.001", trigger="66000", direction=1)
    eth = ex.place(a, "Buy", "1", symbol="ETHUSDT", price="3000")
    assert ex.engine.cancel_all(a, symbol="BTCUSDT", order_filter="StopOrder") == [stop]
    assert stop.status is St.DEACTIVATED and limit.status is St.NEW
    assert ex.engine.cancel_all(a, settle_coin="USDT") == [eth, limit]
    assert eth.status is St.CANCELLED
    with pytest.raises(PaperError):
        ex.engine.cancel_all(a)
