"""Positions: hedge mode both sides, average price, realised/unrealised PnL, fees, margin."""

from __future__ import annotations

import pytest

from core.models import ExchangeOrderStatus as St
from core.models import Side
from exchange.paper.errors import INSUFFICIENT_BALANCE, PARAMS, REDUCE_ONLY, PaperError
from exchange.paper.ledger import unrealised_pnl
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


# ----------------------------------------------------------------------------------- hedge mode


def test_hedge_mode_holds_a_long_and_a_short_on_one_symbol(ex: Exchange) -> None:
    a = ex.account(hedge=True)
    ex.place(a, "Buy", "0.010", idx=1)
    ex.place(a, "Sell", "0.020", idx=2)
    long, short = ex.position(a, idx=1), ex.position(a, idx=2)
    assert (long.side, long.size) == (Side.BUY, D("0.010"))
    assert (short.side, short.size) == (Side.SELL, D("0.020"))


def test_hedge_mode_closing_side_is_implicitly_reduce_only(ex: Exchange) -> None:
    a = ex.account(hedge=True)
    ex.place(a, "Buy", "0.010", idx=1)
    ex.place(a, "Sell", "0.020", idx=2)
    ex.place(a, "Sell", "0.004", idx=1)  # closes part of the long, leaves the short alone
    assert ex.size(a, idx=1) == D("0.006") and ex.size(a, idx=2) == D("0.020")
    big = ex.place(a, "Sell", "0.100", idx=1)  # capped: the long can never flip short
    assert big.cum_qty == D("0.006") and big.status is St.CANCELLED
    assert ex.size(a, idx=1) == 0 and ex.size(a, idx=2) == D("0.020")
    with pytest.raises(PaperError) as err:
        ex.place(a, "Sell", "0.001", idx=1)
    assert err.value.code == REDUCE_ONLY


def test_hedge_stop_on_one_side_does_not_touch_the_other(ex: Exchange) -> None:
    a = ex.account(hedge=True)
    ex.place(a, "Buy", "0.010", idx=1)
    ex.place(a, "Sell", "0.010", idx=2)
    long_sl = ex.place(a, "Sell", "0.010", idx=1, trigger="64000", direction=2, reduce_only=True)
    short_tp = ex.place(a, "Buy", "0.010", idx=2, price="63000", reduce_only=True)
    ex.walk("64000")
    assert long_sl.status is St.FILLED and ex.size(a, idx=1) == 0
    assert short_tp.status is St.NEW and ex.size(a, idx=2) == D("0.010")


@pytest.mark.parametrize(("hedge", "idx"), [(True, 0), (False, 1), (False, 2)])
def test_wrong_position_idx_for_the_mode(ex: Exchange, hedge: bool, idx: int) -> None:
    a = ex.account(hedge=hedge)
    with pytest.raises(PaperError) as err:
        ex.place(a, "Buy", "0.010", idx=idx)
    assert (err.value.code, err.value.message) == (PARAMS, "position idx not match position mode")


# ------------------------------------------------------------------------------------- ledger


def test_average_price_pnl_and_fees(ex: Exchange) -> None:
    a = ex.account(balance="100000")
    ex.place(a, "Buy", "0.010")  # taker at 65000, fee 0.3575
    ex.place(a, "Buy", "0.010", price="64000")
    ex.walk("64000")  # maker at 64000, fee 0.128
    pos = ex.position(a)
    assert (pos.size, pos.avg) == (D("0.020"), D(64500))
    ex.walk("66000")
    assert unrealised_pnl(pos, ex.engine.markets["BTCUSDT"].mark) == D(30)
    ex.place(a, "Sell", "0.010")  # taker at 66000: +15 realised, fee 0.363
    assert pos.size == D("0.010") and pos.avg == D(64500)
    fees = D("0.3575") + D("0.128") + D("0.363")
    assert pos.cur_realised == pos.cum_realised == D(15) - fees
    assert a.wallet == D(100000) + D(15) - fees
    assert pos.im == D("64.5")  # 0.010 × 64500 / 10


def test_reopened_position_starts_a_new_current_realised_pnl(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    ex.walk("66000")
    ex.place(a, "Sell", "0.010")
    pos = ex.position(a)
    closed_cum = pos.cum_realised
    assert closed_cum == D(10) - D("0.3575") - D("0.363")
    ex.place(a, "Buy", "0.010")
    assert pos.cur_realised == -D("0.363")  # only the new opening fee
    assert pos.cum_realised == closed_cum - D("0.363")


def test_short_pnl(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Sell", "1", symbol="ETHUSDT")  # 3500
    ex.walk("3400", symbol="ETHUSDT")
    pos = ex.position(a, "ETHUSDT")
    assert unrealised_pnl(pos, D(3400)) == D(100)
    ex.place(a, "Buy", "0.5", symbol="ETHUSDT", reduce_only=True)
    assert pos.cum_realised == D(50) - D("1.925") - D("0.935")


def test_insufficient_balance(ex: Exchange) -> None:
    a = ex.account(balance="100")
    with pytest.raises(PaperError) as err:
        ex.place(a, "Buy", "0.020")  # needs 130 at 10x
    assert (err.value.code, err.value.message) == (INSUFFICIENT_BALANCE, "ab not enough for new order")
    ex.place(a, "Buy", "0.010")  # 65: fine
    with pytest.raises(PaperError):
        ex.place(a, "Buy", "0.010", price="60000")  # 60 more: no
    ex.place(a, "Sell", "0.010", price="70000", reduce_only=True)  # reducing: no margin needed


def test_resting_orders_hold_margin_until_they_close(ex: Exchange) -> None:
    a = ex.account(balance="1000")
    o = ex.place(a, "Buy", "0.010", price="60000")
    assert a.order_im == D(60)
    ex.engine.cancel_order(a, "BTCUSDT", o.order_id)
    assert a.order_im == 0
    o = ex.place(a, "Buy", "0.010", price="60000")
    ex.walk("60000")
    assert a.order_im == 0 and a.pos_im == D(60)


def test_leverage_changes_the_margin(ex: Exchange) -> None:
    a = ex.account(balance="1000")
    ex.place(a, "Buy", "0.010")
    assert a.pos_im == D(65)
    ex.engine.set_leverage(a, "BTCUSDT", D(20), D(20))
    assert a.pos_im == D("32.5")
