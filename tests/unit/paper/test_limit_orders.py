"""Market and limit orders along price paths: when they fill, at what price, maker or taker, in
which order, and that a price update only touches the orders it crosses."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from exchange.paper.errors import AMEND_BELOW_FILLED, PaperError
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


def test_market_order_fills_at_last_price_as_taker(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010")
    assert o.status is St.FILLED and o.cum_qty == D("0.010")
    (fill,) = list(a.executions.newest_first())
    assert (fill.price, fill.qty, fill.is_maker) == (D(65000), D("0.010"), False)
    assert fill.fee == D("0.3575")  # 650 × 0.00055
    assert o.tif == "IOC"


def test_resting_buy_fills_at_its_limit_when_the_price_falls_to_it(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64000")
    assert o.status is St.NEW
    assert ex.walk("64500", "64000.1") == []
    assert o.status is St.NEW
    (fill,) = ex.walk("63000")  # gapped through: still the limit price, maker
    assert (fill.price, fill.is_maker, fill.fee) == (D(64000), True, D("0.128"))
    assert o.status is St.FILLED
    assert ex.size(a) == D("0.010")


def test_resting_sell_fills_when_the_price_rises_to_it(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Sell", "0.010", price="66000")
    assert ex.walk("65999.9") == []
    (fill,) = ex.walk("66000")
    assert fill.price == D(66000) and fill.is_maker
    assert o.status is St.FILLED
    assert ex.position(a).side.value == "Sell"


def test_marketable_limit_fills_at_once_as_taker_at_the_last_price(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="65500")
    assert o.status is St.FILLED
    (fill,) = list(a.executions.newest_first())
    assert (fill.price, fill.is_maker) == (D(65000), False)


def test_post_only_that_would_take_is_cancelled(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="65000", tif="PostOnly")
    assert o.status is St.CANCELLED
    assert o.reject_reason == "EC_PostOnlyWillTakeLiquidity"
    assert o.cum_qty == 0 and ex.size(a) == 0


def test_post_only_that_rests_fills_as_maker(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64900", tif="PostOnly")
    assert o.status is St.NEW
    (fill,) = ex.walk("64900")
    assert fill.is_maker and o.status is St.FILLED


def test_ioc(ex: Exchange) -> None:
    a = ex.account()
    missed = ex.place(a, "Buy", "0.010", price="64000", tif="IOC")
    assert missed.status is St.CANCELLED and missed.reject_reason == "EC_NoImmediateQtyToFill"
    hit = ex.place(a, "Buy", "0.010", price="65100", tif="IOC")
    assert hit.status is St.FILLED and hit.cum_qty == D("0.010")
    assert missed.order_id not in [o.order_id for o in a.open_orders.newest_first()]


def test_fok(ex: Exchange) -> None:
    a = ex.account()
    missed = ex.place(a, "Buy", "0.010", price="64000", tif="FOK")
    assert missed.status is St.CANCELLED and missed.reject_reason == "EC_CancelForNoFullFill"
    hit = ex.place(a, "Buy", "0.010", price="65100", tif="FOK")
    assert hit.status is St.FILLED


def test_reduce_only_fok_larger_than_the_position_is_cancelled_unfilled(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    fok = ex.place(a, "Sell", "0.020", price="64000", tif="FOK", reduce_only=True)
    assert fok.status is St.CANCELLED and fok.reject_reason == "EC_CancelForNoFullFill"
    assert fok.cum_qty == 0 and ex.size(a) == D("0.010")


def test_reduce_only_ioc_larger_than_the_position_fills_what_it_may(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    ioc = ex.place(a, "Sell", "0.020", price="64000", tif="IOC", reduce_only=True)
    assert ioc.status is St.CANCELLED and ioc.cum_qty == D("0.010")
    assert ex.size(a) == 0


def test_crossed_orders_fill_nearest_price_first_then_in_creation_order(ex: Exchange) -> None:
    a, b = ex.account(), ex.account()
    o1 = ex.place(a, "Buy", "0.001", price="64000", link="o1")
    o2 = ex.place(b, "Buy", "0.001", price="64500", link="o2")
    o3 = ex.place(a, "Buy", "0.001", price="64500", link="o3")
    o4 = ex.place(b, "Buy", "0.001", price="63000", link="o4")
    ex.place(a, "Buy", "0.001", price="62000", link="o5")  # not reached
    fills = ex.walk("63000")
    assert [f.link_id for f in fills] == ["o2", "o3", "o1", "o4"]
    assert [f.price for f in fills] == [D(64500), D(64500), D(64000), D(63000)]
    assert all(o.status is St.FILLED for o in (o1, o2, o3, o4))


def test_same_path_same_fills_with_the_same_seed() -> None:
    def run() -> list[tuple[str, str, str]]:
        ex = Exchange(seed=7)
        a = ex.account()
        for i in range(5):
            ex.place(a, "Buy", "0.001", price=str(64000 - 100 * i))
        fills = ex.walk("64100", "63500", "63000")
        return [(f.exec_id, f.order_id, str(f.price)) for f in fills]

    assert run() == run()


def test_a_price_update_examines_only_the_orders_it_crosses(ex: Exchange) -> None:
    """O(crossed): 1,000 resting orders and 100 stops far away are never looked at."""
    accounts = [ex.account() for _ in range(10)]
    for i in range(1000):
        ex.place(accounts[i % 10], "Buy", "0.001", price=str(40000 + (i % 500)))
        if i < 100:
            ex.place(accounts[i % 10], "Buy", "0.001", trigger=str(90000 + i), direction=1)
    near = [ex.place(accounts[0], "Buy", "0.001", price=p) for p in ("64900", "64800", "64700")]

    before = ex.engine.examined
    ex.walk("64750")
    assert ex.engine.examined - before == 2
    ex.walk("64600")
    assert ex.engine.examined - before == 3
    ex.walk("65000", "64950")  # crosses nothing
    assert ex.engine.examined - before == 3
    assert all(o.status is St.FILLED for o in near)


def test_thin_liquidity_partial_fills_keep_the_order_resting(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="64000", link="thin")
    ex.clock.advance(1)
    fills = ex.engine.set_prices({"BTCUSDT": D(64000)}, max_fill={"BTCUSDT": D("0.004")})
    assert [f.qty for f in fills] == [D("0.004")]
    assert o.status is St.PARTIALLY_FILLED and o.leaves == D("0.006")
    assert o.ladder is not None  # still in the book

    with pytest.raises(PaperError) as err:
        from exchange.paper.commands import AmendRequest

        ex.engine.amend_order(a, AmendRequest(symbol="BTCUSDT", link_id="thin", qty=D("0.004")))
    assert err.value.code == AMEND_BELOW_FILLED

    ex.clock.advance(1)
    ex.engine.set_prices({"BTCUSDT": D("63990")}, max_fill={"BTCUSDT": D("0.004")})
    ex.clock.advance(1)
    fills = ex.engine.set_prices({"BTCUSDT": D("63980")}, max_fill={"BTCUSDT": D("0.004")})
    assert [f.qty for f in fills] == [D("0.002")]
    assert o.status is St.FILLED and o.cum_qty == D("0.010")
    assert ex.size(a) == D("0.010")
