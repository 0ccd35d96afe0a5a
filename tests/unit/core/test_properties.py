"""Properties of the state machine over random price paths through the paper engine (pure)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import OrderRole, PlaceOrder, Side
from core.step import step

from .walk import Walk

BTC = "BTCUSDT"


def plan_for(side: str, kind: str) -> dict:
    if side == "Buy":
        entries = [
            {"price": "60000", "qty": "0.010"},
            {"price": "59500", "qty": "0.010"},
            {"price": "59000", "qty": "0.010"},
        ]
        tps = [("62000", "0.85"), ("63000", "0.05"), ("64000", "0.05"), ("65000", "0.05")]
        sl = "58000"
    else:
        entries = [
            {"price": "60000", "qty": "0.010"},
            {"price": "60500", "qty": "0.010"},
            {"price": "61000", "qty": "0.010"},
        ]
        tps = [("58000", "0.85"), ("57000", "0.05"), ("56000", "0.05"), ("55000", "0.05")]
        sl = "62000"
    if kind == "fast":
        return {
            "account": "main",
            "symbol": BTC,
            "side": side,
            "preset": "fast",
            "entries": {"type": "market", "qty": "0.030"},
            "take_profits": [{"price": tps[0][0]}],
            "stop_loss": sl,
        }
    return {
        "account": "main",
        "symbol": BTC,
        "side": side,
        "preset": "conservative",
        "entries": entries,
        "take_profits": [{"price": p, "fraction": f} for p, f in tps],
        "stop_loss": sl,
    }


paths = st.lists(st.integers(min_value=-1500, max_value=1500), min_size=5, max_size=25)


class Checked(Walk):
    """A walk that checks the invariants on every decision it makes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.link_ids: set[str] = set()
        self.stops: list[D] = []
        self.tp_filled = False

    def _finish(self, d):
        for intent in d.intents:
            if isinstance(intent, PlaceOrder):
                assert len(intent.link_id) <= 36
                assert intent.link_id not in self.link_ids, f"orderLinkId reused: {intent.link_id}"
                self.link_ids.add(intent.link_id)
                if self.tp_filled:
                    assert intent.reduce_only, f"exposure added after a take-profit filled: {intent}"
        m = super()._finish(d)
        if m.filled_of(OrderRole.TP) > 0:
            self.tp_filled = True
        return m


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(side=st.sampled_from(["Buy", "Sell"]), kind=st.sampled_from(["conservative", "fast"]), path=paths)
def test_invariants_along_random_paths(side, kind, path):
    w = Checked()
    w.engine.set_prices({BTC: D("60300") if side == "Buy" else D("59700")})
    m = w.open(plan_for(side, kind), "propwalk01")
    price = w.engine.markets[BTC].last
    last_trigger = None
    for move in path:
        price = max(D("1000"), price + D(move))
        w.tick()
        w.engine.set_prices({BTC: price})
        w.check()
        mm = w.m(m.id)
        # the take-profit ladder never exceeds the position
        pos = w.position(BTC)
        assert sum(q for _, q in w.ladder_on_exchange(BTC)) <= pos
        # a long's stop only moves up, a short's only down
        # (the stop order's trigger, or the position's own stop-loss: TPSL_TEST_STOP_MODE)
        trigger = w.stop_trigger(BTC)
        if trigger is not None and mm.phase.is_open:
            if last_trigger is not None:
                if side == "Buy":
                    assert trigger >= last_trigger
                else:
                    assert trigger <= last_trigger
            last_trigger = trigger
            if not w.on_position:  # the position's own stop closes whatever is open
                stop = w.stop_on_exchange(BTC)
                assert stop.side is (Side.SELL if side == "Buy" else Side.BUY)
                assert stop.qty >= pos  # the stop always covers the position


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(side=st.sampled_from(["Buy", "Sell"]), path=paths)
def test_the_same_read_twice_yields_no_new_intents_and_no_events(side, path):
    w = Walk()
    w.engine.set_prices({BTC: D("60300") if side == "Buy" else D("59700")})
    m = w.open(plan_for(side, "conservative"), "idemwalk01")
    price = w.engine.markets[BTC].last
    for move in path:
        price = max(D("1000"), price + D(move))
        w.tick()
        w.engine.set_prices({BTC: price})
        snap = w.read([w.m(m.id)])
        # a step runs after its read, as a worker's does: a read taken at the instant of an intent
        # would count as made after it (a create it does not show is sent again, harmlessly)
        now = w.t + 0.001
        first = step(w.m(m.id), snap, now, w.policy)
        second = step(first.monitor, snap, now, w.policy)
        assert second.intents == () and second.events == () and second.monitor == first.monitor
        w._finish(first)
