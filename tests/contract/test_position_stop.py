"""The position's own stop (stop mode "position") through both ports of the paper exchange: the Bybit
client over real HTTP (signing, /v5/position/trading-stop, error mapping, position/list parsing)
and the in-process PaperPort. The answers the core relies on: set → the position's stopLoss reads
back; the same value again is ok ("not modified"); a stop the price is through is TRIGGER_PASSED; a
flat position is NO_POSITION; a removed stop reads as unset; its fill is told apart in the
executions."""

from __future__ import annotations

from decimal import Decimal as D

from core import ids
from core.models import ErrorKind, SetPositionStop, Side

from .test_port_equivalence import place, port_and_prices  # noqa: F401 (the fixture)


def stop(account, trigger: str, idx: int = 0) -> SetPositionStop:
    return SetPositionStop(
        account=account.id,
        monitor_id="m000000001",
        link_id=ids.position_stop_id("m000000001"),
        symbol="BTCUSDT",
        trigger_price=D(trigger),
        trigger_by="LastPrice",
        position_idx=idx,
    )


def test_the_positions_stop_is_set_read_back_and_refused_as_the_core_expects(port_and_prices):  # noqa: F811
    port, account, set_price = port_and_prices
    set_price("BTCUSDT", "60000")
    (flat,) = port.set_position_stop(account, [stop(account, "58000")])
    assert not flat.ok and flat.error is ErrorKind.NO_POSITION

    entry = place(account, "p-entry", Side.BUY, "0.020", order_type="Market", time_in_force="IOC")
    assert port.place(account, [entry])[0].ok
    assert port.snapshot(account).position("BTCUSDT", 0).stop_loss is None  # unset reads as None

    (ok,) = port.set_position_stop(account, [stop(account, "58000")])
    assert ok.ok and ok.link_id == ids.position_stop_id("m000000001")
    assert port.snapshot(account).position("BTCUSDT", 0).stop_loss == D("58000")
    (same,) = port.set_position_stop(account, [stop(account, "58000")])
    assert same.ok  # not modified: already in the requested state

    # tightened, then a stop on the wrong side of the last price: refused as already breached
    assert port.set_position_stop(account, [stop(account, "59000")])[0].ok
    (breached,) = port.set_position_stop(account, [stop(account, "60500")])
    assert not breached.ok and breached.error is ErrorKind.TRIGGER_PASSED
    assert port.positions(account)[0].stop_loss == D("59000")  # the one it holds still protects

    # the exchange resizes it: a partial close leaves the stop on what is left
    close = place(
        account, "p-part", Side.SELL, "0.005", order_type="Market", time_in_force="IOC", reduce_only=True
    )
    assert port.place(account, [close])[0].ok
    p = port.snapshot(account).position("BTCUSDT", 0)
    assert p.size == D("0.015") and p.stop_loss == D("59000")

    # the price falls through it: the whole position is closed at market
    set_price("BTCUSDT", "58900")
    assert port.snapshot(account).position("BTCUSDT", 0) is None
    # its fill is in the account's executions as the position's own stop-loss (no orderLinkId of
    # ours): what the core judges such a close by (`workers.lookups.look_up_stop_fills`)
    fills = port.executions(account, since_ms=0, symbol="BTCUSDT")
    (fired,) = [e for e in fills if e.by_position_stop]
    assert fired.side is Side.SELL and fired.qty == D("0.015") and fired.link_id == ""
    assert not any(e.by_position_stop for e in fills if e.link_id)  # our own orders' fills are plain
    assert port.executions(account, since_ms=0, symbol="ETHUSDT") == []  # one symbol's only


def test_an_entrys_attached_stop_is_set_on_the_position_by_its_fill(port_and_prices):  # noqa: F811
    """Position mode places its entries with the plan's stop attached (`PlaceOrder.stop_loss`):
    each fill sets it as the position's own stop-loss, so the position is never open without it and
    no trading-stop call follows the fill. Each fill sets it again, replacing what the position held
    (the core puts back a tighter stop of its own: `core.step._replaced_by_entry`)."""
    port, account, set_price = port_and_prices
    set_price("BTCUSDT", "60000")
    entries = [
        place(account, "a-e1", Side.BUY, "0.010", price=D("59900"), stop_loss=D("58000")),
        place(account, "a-e2", Side.BUY, "0.010", price=D("59500"), stop_loss=D("58000")),
    ]
    assert all(r.ok for r in port.place(account, entries))
    assert port.snapshot(account).position("BTCUSDT", 0) is None  # resting: nothing set yet

    set_price("BTCUSDT", "59800")  # the first entry fills
    p = port.snapshot(account).position("BTCUSDT", 0)
    assert p.size == D("0.010") and p.stop_loss == D("58000")

    assert port.set_position_stop(account, [stop(account, "59000")])[0].ok  # tightened (by hand, say)
    set_price("BTCUSDT", "59400")  # the second entry fills: its attached stop replaces the tighter one
    p = port.snapshot(account).position("BTCUSDT", 0)
    assert p.size == D("0.020") and p.stop_loss == D("58000")

    # refused, naming the field: on an order that reduces, or on the wrong side of the order's price
    reduce = place(
        account, "a-bad1", Side.SELL, "0.010", price=D("61000"), reduce_only=True, stop_loss=D("62000")
    )
    wrong_side = place(account, "a-bad2", Side.BUY, "0.010", price=D("59000"), stop_loss=D("59100"))
    (refused,) = port.place(account, [wrong_side])  # as a trading-stop the price is through
    assert not refused.ok and refused.error is ErrorKind.TRIGGER_PASSED and "StopLoss" in refused.message
    (answer,) = port.place(account, [reduce])  # the Bybit client refuses it before sending it
    assert not answer.ok and ("stop_loss" in answer.message or "stopLoss" in answer.message)
    # the stop fires: the whole position closes at market
    set_price("BTCUSDT", "57900")
    assert port.snapshot(account).position("BTCUSDT", 0) is None
