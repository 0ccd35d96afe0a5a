"""The engine's change journal (what the streams push): each operation hands its changes, in engine
order, to every listener once, when the outermost operation ends; no listener, no journal."""

from __future__ import annotations

import pytest

from exchange.paper.commands import AmendRequest, TradingStopRequest
from exchange.paper.engine import Change
from exchange.paper.errors import PaperError
from tests.unit.paper.harness import D, Exchange


@pytest.fixture
def ex() -> Exchange:
    return Exchange()


class Listener:
    def __init__(self) -> None:
        self.calls: list[list[Change]] = []

    def __call__(self, changes: list[Change]) -> None:
        self.calls.append(list(changes))

    def kinds(self, call: int = -1) -> list[str]:
        return [kind for kind, _ in self.calls[call]]


@pytest.fixture
def heard(ex: Exchange) -> Listener:
    listener = Listener()
    ex.engine.listeners.append(listener)
    return listener


def test_market_fill_in_engine_order(ex: Exchange, heard: Listener) -> None:
    a = ex.account()
    order = ex.place(a, "Buy", "0.010")
    assert len(heard.calls) == 1
    assert heard.kinds() == ["order", "execution", "order", "position", "wallet", "order"]
    assert all(record is order for kind, record in heard.calls[0] if kind == "order")
    (execution,) = [r for k, r in heard.calls[0] if k == "execution"]
    assert execution.order_id == order.order_id and execution.pnl == 0


def test_resting_limit_amend_cancel(ex: Exchange, heard: Listener) -> None:
    a = ex.account()
    order = ex.place(a, "Buy", "0.010", price="64000")
    assert heard.kinds() == ["order", "wallet"]  # created; its margin is reserved
    ex.engine.amend_order(a, AmendRequest(symbol="BTCUSDT", order_id=order.order_id, price=D(63000)))
    assert heard.kinds() == ["order", "wallet"]
    ex.engine.cancel_order(a, "BTCUSDT", order.order_id)
    assert heard.kinds() == ["order", "wallet"] and len(heard.calls) == 3


def test_price_update_with_trigger_and_fill(ex: Exchange, heard: Listener) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    stop = ex.place(a, "Sell", "0.010", trigger="64000", direction=2, reduce_only=True, close_on_trigger=True)
    assert heard.kinds() == ["order", "position"]  # an order of an open position: the position too
    ex.walk("63900")
    kinds = heard.kinds()
    assert kinds[0] == "ticker" and kinds[1:3] == ["order_state", "execution"]  # triggered, then filled
    (state,) = [row for kind, (_, row) in [c for c in heard.calls[-1] if c[0] == "order_state"]]
    assert (state["orderId"], state["orderStatus"]) == (stop.order_id, "Triggered")
    assert kinds.count("position") >= 1 and kinds[-1] in ("order", "wallet", "position")
    (execution,) = [r for k, r in heard.calls[-1] if k == "execution"]
    assert execution.order_id == stop.order_id and execution.pnl == D("-11.0")


def test_trading_stop_and_leverage(ex: Exchange, heard: Listener) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    ex.engine.set_trading_stop(a, TradingStopRequest(symbol="BTCUSDT", position_idx=0, stop_loss=D(64000)))
    assert "order" in heard.kinds() and heard.kinds()[-1] == "position"
    ex.engine.set_leverage(a, "BTCUSDT", D(20), D(20))
    assert heard.kinds() == ["position", "wallet"]


def test_refused_operation_reports_nothing(ex: Exchange, heard: Listener) -> None:
    a = ex.account()
    with pytest.raises(PaperError):
        ex.place(a, "Buy", "0.0001")  # below the minimum qty
    assert heard.calls == []


def test_no_listener_no_journal(ex: Exchange) -> None:
    a = ex.account()
    ex.place(a, "Buy", "0.010")
    assert ex.engine._journal is None and ex.engine._depth == 0
