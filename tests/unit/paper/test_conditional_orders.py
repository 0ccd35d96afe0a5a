"""Conditional orders along price paths: trigger direction, LastPrice vs MarkPrice, stop-market and
stop-limit, the direction check at placement, the per-symbol cap, cancel = Deactivated."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from exchange.paper.errors import EXPECT_FALLING, EXPECT_RISING, TOO_MANY_CONDITIONAL, PaperError
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


def test_stop_market_falls_to_its_trigger_then_fills_at_last_as_taker(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    sl = ex.place(a, "Sell", "0.010", trigger="64000", direction=2, reduce_only=True, close_on_trigger=True)
    assert sl.status is St.UNTRIGGERED and sl.stop_order_type == "Stop"
    assert sl.create_type == "CreateByStopOrder"
    assert ex.walk("64500", "64000.1") == []
    (fill,) = ex.walk("63900")  # gapped below the trigger: fills at the last price
    assert (fill.price, fill.is_maker) == (D(63900), False)
    assert sl.status is St.FILLED and ex.size(a) == 0
    assert ex.position(a).cum_realised == D("-11") - D("0.3575") - D("0.351450")


def test_stop_market_rises_to_its_trigger(ex: Exchange) -> None:
    a = ex.account()
    breakout = ex.place(a, "Buy", "0.010", trigger="66000", direction=1)
    assert ex.walk("65999.9") == []
    (fill,) = ex.walk("66000")
    assert fill.price == D(66000) and breakout.status is St.FILLED
    assert ex.size(a) == D("0.010")


def test_mark_price_trigger_ignores_the_last_price(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    sl = ex.place(a, "Sell", "0.010", trigger="64000", direction=2, trigger_by="MarkPrice", reduce_only=True)
    assert ex.walk("63500", mark="64200") == []  # last crossed, mark did not
    assert sl.status is St.UNTRIGGERED
    (fill,) = ex.mark("63999")
    assert fill.price == D(63500)  # triggered by the mark, filled at the last price
    assert sl.status is St.FILLED


def test_last_price_trigger_ignores_the_mark(ex: Exchange) -> None:
    a = ex.account()
    stop = ex.place(a, "Buy", "0.010", trigger="66000", direction=1)
    assert ex.mark("67000") == []
    assert stop.status is St.UNTRIGGERED
    assert len(ex.walk("66000")) == 1


def test_stop_limit_marketable_at_trigger_takes(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="66200", trigger="66000", direction=1)
    (fill,) = ex.walk("66100")
    assert (fill.price, fill.is_maker) == (D(66100), False)
    assert o.status is St.FILLED


def test_stop_limit_not_marketable_at_trigger_rests_then_fills_as_maker(ex: Exchange) -> None:
    a = ex.account()
    o = ex.place(a, "Buy", "0.010", price="65800", trigger="66000", direction=1)
    assert ex.walk("66000") == []
    assert o.status is St.NEW and o.ladder is not None
    (fill,) = ex.walk("65800")
    assert (fill.price, fill.is_maker) == (D(65800), True)


def test_direction_already_met_is_refused(ex: Exchange) -> None:
    a = ex.account()
    with pytest.raises(PaperError) as rising:
        ex.place(a, "Buy", "0.010", trigger="64000", direction=1)
    assert rising.value.code == EXPECT_RISING
    assert rising.value.message == (
        "expect Rising, but trigger_price[6400000000000] <= current[6500000000000]??LastPrice"
    )
    with pytest.raises(PaperError) as falling:
        ex.place(a, "Sell", "0.010", trigger="65000", direction=2)
    assert falling.value.code == EXPECT_FALLING
    assert "expect Falling" in falling.value.message and "??LastPrice" in falling.value.message


def test_direction_check_uses_the_mark_for_mark_triggers(ex: Exchange) -> None:
    a = ex.account()
    ex.mark("64000")  # last 65000, mark 64000
    with pytest.raises(PaperError) as err:
        ex.place(a, "Buy", "0.010", trigger="63500", direction=1, trigger_by="MarkPrice")
    assert err.value.code == EXPECT_RISING and err.value.message.endswith("??MarkPrice")
    ex.place(a, "Buy", "0.010", trigger="64500", direction=1, trigger_by="MarkPrice")


def test_ten_conditional_orders_per_symbol(ex: Exchange) -> None:
    a = ex.account()
    stops = [ex.place(a, "Buy", "0.001", trigger=str(66000 + i), direction=1) for i in range(10)]
    with pytest.raises(PaperError) as err:
        ex.place(a, "Buy", "0.001", trigger="67000", direction=1)
    assert err.value.code == TOO_MANY_CONDITIONAL
    ex.place(a, "Buy", "1", symbol="ETHUSDT", trigger="4000", direction=1)  # another symbol: fine
    ex.place(ex.account(), "Buy", "0.001", trigger="67000", direction=1)  # another account: fine
    ex.engine.cancel_order(a, "BTCUSDT", stops[0].order_id)
    ex.place(a, "Buy", "0.001", trigger="67000", direction=1)


def test_cancelled_untriggered_order_is_deactivated(ex: Exchange) -> None:
    a = ex.account()
    stop = ex.place(a, "Buy", "0.001", trigger="66000", direction=1)
    ex.engine.cancel_order(a, "BTCUSDT", stop.order_id)
    assert stop.status is St.DEACTIVATED and stop.cancel_type == "CancelByUser"
    assert ex.walk("66500") == []


def test_triggers_crossed_together_fire_nearest_first(ex: Exchange) -> None:
    a = ex.account()
    far = ex.place(a, "Buy", "0.001", trigger="66500", direction=1, link="far")
    near = ex.place(a, "Buy", "0.001", trigger="66100", direction=1, link="near")
    mid = ex.place(a, "Buy", "0.001", trigger="66300", direction=1, link="mid")
    fills = ex.walk("67000")
    assert [f.link_id for f in fills] == ["near", "mid", "far"]
    assert all(o.status is St.FILLED for o in (far, near, mid))


def test_triggered_opening_order_without_margin_is_rejected(ex: Exchange) -> None:
    a = ex.account(balance="100")
    o = ex.place(a, "Buy", "0.100", trigger="66000", direction=1)  # no margin held while waiting
    assert ex.walk("66000") == []
    assert o.status is St.REJECTED and o.reject_reason == "EC_InsufficientMargin"


def test_a_jump_meets_limits_and_triggers_in_price_order(ex: Exchange) -> None:
    """From 59990 to 57900 the price passes the entries at 59500 and 59000 before the stop at
    58000: the entries fill first, then the stop closes the whole position (no re-opening)."""
    a = ex.account()
    ex.walk("60500")
    ex.place(a, "Buy", "0.010", price="59990", link="E1")
    ex.walk("59990")
    ex.place(a, "Buy", "0.010", price="59500", link="E2")
    ex.place(a, "Buy", "0.010", price="59000", link="E3")
    ex.place(
        a, "Sell", "0.030", trigger="58000", direction=2, reduce_only=True, close_on_trigger=True, link="SL"
    )
    fills = ex.walk("57900")
    assert [(f.link_id, f.qty) for f in fills] == [("E2", D("0.010")), ("E3", D("0.010")), ("SL", D("0.030"))]
    assert ex.size(a) == 0
