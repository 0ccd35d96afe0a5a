"""Reducing orders never open or flip a position; what is left of them goes when it closes."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from core.models import Side
from exchange.paper.errors import REDUCE_ONLY, PaperError
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


def test_reduce_only_without_a_position_is_refused(ex: Exchange) -> None:
    a = ex.account()
    with pytest.raises(PaperError) as err:
        ex.place(a, "Sell", "0.010", price="66000", reduce_only=True)
    assert err.value.code == REDUCE_ONLY
    assert err.value.message == "current position is zero, cannot fix reduce-only order qty"


def test_reduce_only_on_the_position_side_is_refused(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    with pytest.raises(PaperError) as err:
        ex.place(a, "Buy", "0.010", price="64000", reduce_only=True)
    assert (err.value.code, err.value.message) == (REDUCE_ONLY, "Reduce-only rule not satisfied")


def test_oversize_reduce_only_rests_and_is_capped_at_execution(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    tp = ex.place(a, "Sell", "0.030", price="66000", reduce_only=True)
    assert tp.status is St.NEW and tp.qty == D("0.030")  # bigger than the position: accepted
    (fill,) = ex.walk("66000")
    assert fill.qty == D("0.010")
    assert tp.cum_qty == D("0.010") < tp.qty  # a partial fill …
    assert tp.status is St.CANCELLED and tp.cancel_type == "CancelByReduceOnly"  # … then cancelled
    pos = ex.position(a)
    assert pos.size == 0 and pos.side is None  # never flipped short


def test_when_the_position_closes_its_reducing_orders_go(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.020")
    tp1 = ex.place(a, "Sell", "0.010", price="66000", reduce_only=True)
    tp2 = ex.place(a, "Sell", "0.010", price="67000", reduce_only=True)
    sl = ex.place(a, "Sell", "0.020", trigger="64000", direction=2, reduce_only=True, close_on_trigger=True)
    entry = ex.place(a, "Buy", "0.010", price="60000")
    other = ex.place(a, "Sell", "1", symbol="ETHUSDT", price="4000")

    ex.place(a, "Sell", "0.020")  # closed by hand (a plain market order)

    assert ex.size(a) == 0
    assert (tp1.status, tp1.cancel_type) == (St.CANCELLED, "CancelByReduceOnly")
    assert (tp2.status, tp2.cancel_type) == (St.CANCELLED, "CancelByReduceOnly")
    assert (sl.status, sl.cancel_type) == (St.DEACTIVATED, "CancelByReduceOnly")
    assert entry.status is St.NEW and other.status is St.NEW  # not reducing: kept
    assert [f.order_id for f in ex.walk("60000", "67000")] == [entry.order_id]  # only the entry fills
    assert entry.status is St.FILLED


def test_two_take_profits_crossed_together_close_exactly_the_position(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    tp1 = ex.place(a, "Sell", "0.006", price="65500", reduce_only=True)
    tp2 = ex.place(a, "Sell", "0.006", price="65600", reduce_only=True)
    fills = ex.walk("65700")
    assert [(f.price, f.qty) for f in fills] == [(D(65500), D("0.006")), (D(65600), D("0.004"))]
    assert tp1.status is St.FILLED
    assert tp2.status is St.CANCELLED and tp2.cum_qty == D("0.004")
    assert ex.size(a) == 0


def test_close_on_trigger_stop_closes_and_never_flips(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stop = ex.place(a, "Sell", "0.050", trigger="64000", direction=2, close_on_trigger=True)
    assert stop.reducing
    (fill,) = ex.walk("64000")
    assert fill.qty == D("0.010") and fill.closed_size == D("0.010")
    assert ex.size(a) == 0


def test_qty_zero_close_all_stop_closes_the_whole_position(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    ex.place(a, "Buy", "0.015")
    stop = ex.place(a, "Sell", "0", trigger="64000", direction=2, reduce_only=True, close_on_trigger=True)
    assert stop.qty == D("500.000")  # Bybit: qty becomes the max market qty
    (fill,) = ex.walk("63990")
    assert fill.qty == D("0.025")
    assert stop.status is St.FILLED and stop.qty == stop.cum_qty == D("0.025")


def test_a_plain_order_may_flip_a_one_way_position_and_cancels_what_would_now_add(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    tp = ex.place(a, "Sell", "0.010", price="66000", reduce_only=True)
    ex.place(a, "Sell", "0.030")
    pos = ex.position(a)
    assert (pos.side, pos.size, pos.avg) == (Side.SELL, D("0.020"), D(65000))
    assert tp.status is St.CANCELLED and tp.cancel_type == "CancelByReduceOnly"


def test_reduce_only_resting_order_survives_a_partial_reduction(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.020")
    tp = ex.place(a, "Sell", "0.020", price="67000", reduce_only=True)
    ex.place(a, "Sell", "0.015", reduce_only=True)  # market, partial close
    assert ex.size(a) == D("0.005")
    assert tp.status is St.NEW and tp.qty == D("0.020")  # left alone until it executes
    (fill,) = ex.walk("67000")
    assert fill.qty == D("0.005")
