"""Walking monitors along price paths over the paper exchange's engine, in process (no I/O).

One `check()` is what a worker does for an account: read it (positions + open orders, then the final
state of owned orders that left the open list), step each monitor, send the intents, fold the answers
back. Time is a counter the test advances; nothing sleeps. The walk's policy follows the suite's stop
mode (TPSL_TEST_STOP_MODE); `stop_trigger` and `stop_covers` read the stop in either mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.models import Account, Decision, Monitor, Secret, Snapshot
from core.plan import parse_request
from core.policy import Policy
from core.step import open_monitor, step
from exchange.paper.engine import PaperEngine
from exchange.paper.port import PaperPort
from tests.plugins.stop_mode import policy as suite_policy
from workers.executor import send
from workers.lookups import look_up


@dataclass
class Walk:
    hedge: bool = False
    policy: Policy = field(default_factory=suite_policy)
    t: float = 1_800_000_000.0
    monitors: dict[str, Monitor] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = PaperEngine(clock=lambda: self.t)
        self.port = PaperPort(self.engine)
        self.engine.create_account("main-key", "main-secret", balance="10000000", hedge_mode=self.hedge)
        self.account = Account("main", "paper://", Secret("main-key"), Secret("main-secret"))
        self.paper_account = self.engine.account("main-key")

    # ---------------------------------------------------------------------------------- acting

    def tick(self, seconds: float = 1.0) -> None:
        self.t += seconds

    def price(self, symbol: str, price: str, *, max_fill: str | None = None) -> list[Any]:
        """Move the market (fills whatever the path crosses), then run one check."""
        self.tick()
        fills = self.engine.set_prices(
            {symbol: Decimal(price)}, max_fill={symbol: Decimal(max_fill)} if max_fill else None
        )
        self.check()
        return fills

    def open(self, request: dict[str, Any], mid: str) -> Monitor:
        insts = self.port.instruments()
        mark = self.engine.markets[request["symbol"]].mark
        req = parse_request(request, instruments=insts, mark_price=mark)
        snap = self.read([])
        d = open_monitor(mid, "main", req.plan, snap, self.t, self.policy)
        return self._finish(d)

    def read(self, monitors: list[Monitor]) -> Snapshot:
        snap = self.port.snapshot(self.account)
        snap = replace(snap, tickers=self.port.tickers())
        return look_up(self.account, self.port, snap, monitors, self.policy)  # as a worker's check does

    def check(self, **leaders: Monitor) -> Snapshot:
        """One worker pass over every monitor of the account. Returns the read it used."""
        self.tick(0.5)
        live = list(self.monitors.values())
        snap = self.read(live)
        self.tick(0.1)
        for m in live:
            leader = self.monitors.get(m.mirror_of) if m.mirror_of else None
            self._finish(step(m, snap, self.t, self.policy, leader=leaders.get(m.id, leader)))
        return snap

    def settle(self, passes: int = 4) -> None:
        for _ in range(passes):
            self.check()

    def _finish(self, d: Decision) -> Monitor:
        d, _ = send(self.port, self.account, d, lambda: self.t)
        final = d.monitor
        self.decisions.append(d)
        self.monitors[final.id] = final
        return final

    # ------------------------------------------------------------------------------- observing

    def m(self, mid: str) -> Monitor:
        return self.monitors[mid]

    def events(self, mid: str) -> list[str]:
        return [e.kind.value for d in self.decisions for e in d.events if e.monitor_id == mid]

    def position(self, symbol: str, idx: int = 0) -> Decimal:
        pos = self.paper_account.positions.get((symbol, idx))
        return pos.size if pos is not None else Decimal(0)

    def exchange_orders(self, symbol: str) -> dict[str, Any]:
        """Open orders on the exchange by orderLinkId."""
        return {o.link_id: o for o in self.port.open_orders(self.account, symbol=symbol)}

    def stop_on_exchange(self, symbol: str) -> Any:
        stops = [o for o in self.exchange_orders(symbol).values() if o.trigger_price]
        assert len(stops) <= 1, stops
        return stops[0] if stops else None

    @property
    def on_position(self) -> bool:
        return self.policy.stop_mode == "position"

    def stop_trigger(self, symbol: str, idx: int = 0) -> Decimal | None:
        """Where the stop rests: the trigger of our stop order (order mode), or the open position's
        own stop-loss (position mode); None when there is none."""
        if self.on_position:
            pos = self.paper_account.positions.get((symbol, idx))
            return pos.stop_loss if pos is not None and pos.size > 0 and pos.stop_loss else None
        stops = [
            o for o in self.exchange_orders(symbol).values() if o.trigger_price and o.position_idx == idx
        ]
        assert len(stops) <= 1, stops
        return stops[0].trigger_price if stops else None

    def stop_covers(self, symbol: str, qty: Decimal, idx: int = 0) -> bool:
        """The stop closes `qty` when it fires: our stop order is of that size (order mode); the
        position's own Full-mode stop closes whatever is open, so it only has to be set (position
        mode)."""
        if self.on_position:
            return self.stop_trigger(symbol, idx) is not None
        stops = [
            o for o in self.exchange_orders(symbol).values() if o.trigger_price and o.position_idx == idx
        ]
        return len(stops) == 1 and stops[0].qty == qty

    def remove_stop_by_hand(self, symbol: str) -> None:
        """Someone removes the stop: cancels our stop order, or clears the position's stop-loss."""
        if self.on_position:
            from exchange.paper.commands import TradingStopRequest

            self.engine.set_trading_stop(
                self.paper_account, TradingStopRequest(symbol, 0, stop_loss=Decimal(0))
            )
            return
        stop = self.stop_on_exchange(symbol)
        self.engine.cancel_order(self.paper_account, symbol, link_id=stop.link_id)

    def ladder_on_exchange(self, symbol: str) -> list[tuple[Decimal, Decimal]]:
        """(price, remaining qty) of resting reduce-only limits, nearest first."""
        out = [
            (o.price, o.qty - o.filled)
            for o in self.exchange_orders(symbol).values()
            if o.reduce_only and not o.trigger_price
        ]
        return sorted(out)
