"""The exchange the simulator's guard talks to: the paper engine in process, read without JSON (fast),
written through `PaperPort`'s own error mapping, with seeded faults in between.

What the adversary can do to one call (all decided by the world's seeded RNG):
- refuse a whole call as rate limited (nothing sent);
- answer a create, amend, cancel or trading-stop (the position's own stop) with a timeout although it
  was carried out, or was not, or will
  land later (a create still in the network: it lands within the exchange's receive window, never
  after);
- refuse a create outright (as a rejection);
- move the market between two calls of one batch, so an order fills between our read and our amend
  or cancel (the exchange then answers "not found" for real);
- answer a read whose look-ups of missing orders were cut short (bounded look-ups);
- answer a read whose open list is a second stale (the newest orders missing; look-ups find them).
The reads from the account's stream view, and its lost position pushes, are `pushes.SimView`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core import ids
from core.errors import BackOff, RetryLater
from core.models import (
    ZERO,
    Account,
    AmendOrder,
    CancelOrder,
    ErrorKind,
    ExchangeOrder,
    Execution,
    IntentResult,
    PlaceOrder,
    Position,
    SetPositionStop,
    Snapshot,
    Ticker,
)
from exchange.paper.port import PaperPort
from exchange.paper.records import PaperOrder

RECEIVE_WINDOW_S = 5.0  # a request older than this is refused by the exchange: it can never land later


@dataclass
class Faults:
    """Per-item probabilities of the adversary (all zero: a perfect exchange)."""

    backoff: float = 0.0  # whole call refused as rate limited
    timeout_done: float = 0.0  # carried out, answered with a timeout
    timeout_lost: float = 0.0  # not carried out, answered with a timeout
    timeout_late: float = 0.0  # a create answered with a timeout that lands later (within the window)
    reject: float = 0.0  # a create refused
    race: float = 0.0  # the market moves between two calls
    lookup_cut: float = 0.0  # a read's look-ups are bounded at a random small number
    list_lag: float = 0.0  # a read's open list lacks the orders created in the last second (stale)

    @classmethod
    def quiet(cls) -> Faults:
        return cls()


@dataclass
class Late:
    land_at: float
    account: Account
    order: PlaceOrder
    sent_at: float = 0.0


@dataclass
class Ledger:
    """What the adversary did, for the trace and for the invariants."""

    faulted_accounts: set[str] = field(default_factory=set)  # accounts whose writes were faulted this pass
    wrong_reuse: list[str] = field(default_factory=list)  # a create answered "ok" for another order
    late: list[Late] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    # the position stop orders the exchange created for our trading-stop calls: order id → monitor id
    position_stops: dict[str, str] = field(default_factory=dict)
    writes: Counter = field(default_factory=Counter)  # write items sent, by kind (for the figures)
    stops_unchanged: int = 0  # trading-stops answered "not modified" (for the figures)


class SimPort(PaperPort):
    def __init__(self, engine: Any, rng: Any, faults: Faults, race: Callable[[], None]) -> None:
        super().__init__(engine)
        self.rng = rng
        self.faults = faults
        self.race = race  # moves the market (called between calls when the adversary races)
        self.ledger = Ledger()
        self._instruments = super().instruments()

    # ------------------------------------------------------------------------------ fast reads

    def instruments(self) -> dict:
        return self._instruments

    def snapshot(self, account: Account, *, symbol: str | None = None) -> Snapshot:
        acct = self._acct(account)
        eng = self.engine
        positions = {}
        for (sym, idx), p in acct.positions.items():
            if p.size > 0 and (symbol is None or sym == symbol):
                positions[(sym, idx)] = Position(
                    symbol=sym,
                    position_idx=idx,
                    side=p.side,
                    size=p.size,
                    avg_price=p.avg,
                    mark_price=eng.markets[sym].mark,
                    stop_loss=p.stop_loss or None,
                )
        orders = {}
        lag_ms = 0
        if self.faults.list_lag and self.rng.random() < self.faults.list_lag:
            lag_ms = 1000  # the list is served from a copy a second old: the newest orders are missing
        now_ms = int(eng.clock() * 1000)
        for o in acct.open_orders.newest_first():
            if not o.link_id or (symbol is not None and o.spec.symbol != symbol):
                continue
            if o.created_ms > now_ms - lag_ms:
                self.ledger.faulted_accounts.add(account.id)  # a stale read: the exchange lagged
                continue
            orders[o.link_id] = order_view(o)
        return Snapshot(
            account=account.id,
            taken_at=eng.clock(),
            positions=positions,
            open_orders=orders,
            instruments=self._instruments,
        )

    def ticker_of(self, symbol: str) -> dict[str, Ticker]:
        m = self.engine.markets[symbol]
        return {symbol: Ticker(symbol, m.last, m.mark)}

    def lookup_orders(self, account: Account, link_ids: Iterable[str]) -> dict[str, ExchangeOrder]:
        acct = self._acct(account)
        out = {}
        for lid in link_ids:
            o = acct.orders_by_link.get(lid)
            if o is not None:
                out[lid] = order_view(o)
        return out

    def lookup_some(
        self, account: Account, link_ids: Iterable[str], *, max_single: int | None = 20
    ) -> tuple[dict[str, ExchangeOrder], frozenset[str]]:
        wanted = sorted(link_ids, key=ids.look_up_priority)
        if self.faults.lookup_cut and self.rng.random() < self.faults.lookup_cut:
            cut = wanted[: self.rng.randint(0, 2)]
            if len(cut) < len(wanted):  # the exchange did not answer all that was asked
                self.ledger.faulted_accounts.add(account.id)
            wanted = cut
        return self.lookup_orders(account, wanted), frozenset(wanted)

    def executions(self, account: Account, *, since_ms: int, symbol: str | None = None) -> list[Execution]:
        if self.faults.lookup_cut and self.rng.random() < self.faults.lookup_cut:
            self.ledger.faulted_accounts.add(account.id)  # the look-up failed: the price judges
            raise RetryLater("executions not answered (simulated)")
        return super().executions(account, since_ms=since_ms, symbol=symbol)

    # ---------------------------------------------------------------------------------- writes

    def _maybe_race(self) -> None:
        if self.faults.race and self.rng.random() < self.faults.race:
            self.race()

    def _maybe_backoff(self, account: Account, what: str) -> None:
        self._maybe_race()
        if self.faults.backoff and self.rng.random() < self.faults.backoff:
            self.ledger.faulted_accounts.add(account.id)
            self.ledger.log.append(f"  ! {what}: whole call rate limited")
            raise BackOff("rate limited (simulated)", until=self.engine.clock() + 1.0)

    def _draw(self, late_ok: bool, reject_ok: bool) -> str:
        f = self.faults
        r = self.rng.random()
        for name, p in (
            ("timeout_done", f.timeout_done),
            ("timeout_lost", f.timeout_lost),
            ("timeout_late", f.timeout_late if late_ok else 0.0),
            ("reject", f.reject if reject_ok else 0.0),
        ):
            if r < p:
                return name
            r -= p
        return "ok"

    def _each(
        self, account: Account, what: str, orders: Sequence[Any], one: Callable[[Any, str], IntentResult]
    ) -> list[IntentResult]:
        """One call of a batch: maybe rate limited whole; per item, maybe a race, then its fate."""
        self._maybe_backoff(account, what)
        self.ledger.writes[what] += len(orders)
        out = []
        creates = what == "place"
        for o in orders:
            self._maybe_race()
            fate = self._draw(late_ok=creates, reject_ok=creates)
            if fate != "ok":
                self.ledger.faulted_accounts.add(account.id)
                self.ledger.log.append(f"  ! {what} {o.link_id}: {fate}")
            if fate == "timeout_lost":
                out.append(_timeout(o.link_id))
            elif fate == "reject":
                out.append(IntentResult(o.link_id, False, ErrorKind.INVALID_ORDER, "rejected (simulated)"))
            elif fate == "timeout_late":
                sent = self.engine.clock()
                land = sent + self.rng.uniform(0.2, RECEIVE_WINDOW_S - 0.2)
                self.ledger.late.append(Late(land, account, o, sent))
                out.append(_timeout(o.link_id))
            else:
                res = one(o, fate)
                out.append(_timeout(o.link_id) if fate == "timeout_done" else res)
        return out

    def place(self, account: Account, orders: Sequence[PlaceOrder]) -> list[IntentResult]:
        return self._each(account, "place", orders, lambda o, _: self._place_checked(account, o))

    def amend(self, account: Account, orders: Sequence[AmendOrder]) -> list[IntentResult]:
        return self._each(account, "amend", orders, lambda o, _: PaperPort.amend(self, account, [o])[0])

    def cancel(self, account: Account, orders: Sequence[CancelOrder]) -> list[IntentResult]:
        return self._each(account, "cancel", orders, lambda o, _: PaperPort.cancel(self, account, [o])[0])

    def set_position_stop(self, account: Account, stops: Sequence[SetPositionStop]) -> list[IntentResult]:
        return self._each(account, "trading-stop", stops, lambda o, _: self._set_stop(account, o))

    def _set_stop(self, account: Account, o: SetPositionStop) -> IntentResult:
        held = self._acct(account).positions.get((o.symbol, o.position_idx))
        before = held.stop_loss if held is not None else None
        (res,) = PaperPort.set_position_stop(self, account, [o])
        if res.ok and before == o.trigger_price:
            self.ledger.stops_unchanged += 1  # answered "not modified": the call was not needed
        pos = self._acct(account).positions.get((o.symbol, o.position_idx))
        if pos is not None and pos.sl_order is not None:
            self.ledger.position_stops.setdefault(pos.sl_order.order_id, o.monitor_id)
        return res

    def position_stop_owners(self, acct: Any) -> dict[str, str]:
        """Order id → monitor id of every position stop-loss a monitor made: by its trading-stop
        calls, or by the stop-loss attached to its entries, set when they filled."""
        owners = dict(self.ledger.position_stops)
        for o in acct.orders_by_id.values():
            if o.attached_from and (parsed := ids.parse_link_id(o.attached_from)) is not None:
                owners.setdefault(o.order_id, parsed[0])
        return owners

    def _place_checked(self, account: Account, o: PlaceOrder) -> IntentResult:
        acct = self._acct(account)
        before = acct.orders_by_link.get(o.link_id)
        (res,) = PaperPort.place(self, account, [o])
        if res.ok and before is not None and not _same_order(before, o):
            self.ledger.wrong_reuse.append(
                f"{o.link_id}: answered ok for a {o.order_type} trigger={o.trigger_price} qty={o.qty} but "
                f"the exchange holds a {before.order_type} trigger={before.trigger_price} qty={before.qty}"
            )
        return res

    def land_late(self, now: float, set_clock: Callable[[float], None]) -> None:
        """Creates still in the network land now (if their time has come). A create lands within
        the receive window, never after: one whose window ended before `now` (the passes are
        seconds apart) lands at its own time, on the prices that held since the last pass, before
        those that land now; `set_clock` moves the exchange's clock there and back."""
        due = [x for x in self.ledger.late if x.land_at <= now]
        self.ledger.late = [x for x in self.ledger.late if x.land_at > now]

        def when(x: Late) -> float:
            return x.land_at if now > x.sent_at + RECEIVE_WINDOW_S else now

        for x in sorted(due, key=when):  # stable: those landing now keep their order
            set_clock(when(x))
            (res,) = PaperPort.place(self, x.account, [x.order])
            self.ledger.log.append(f"  ~ late create {x.order.link_id} landed: ok={res.ok} {res.message}")
        set_clock(now)


def _timeout(link_id: str) -> IntentResult:
    return IntentResult(link_id, False, ErrorKind.RETRY_LATER, "read timeout (simulated)")


def _same_order(held: PaperOrder, o: PlaceOrder) -> bool:
    conditional = bool(held.trigger_price)
    return (
        held.order_type == o.order_type
        and conditional == (o.trigger_price is not None)
        and held.side is o.side
        and held.reduce_only == o.reduce_only
    )


def order_view(o: PaperOrder) -> ExchangeOrder:
    return ExchangeOrder(
        order_id=o.order_id,
        link_id=o.link_id,
        symbol=o.spec.symbol,
        side=o.side,
        order_type=o.order_type,
        qty=o.qty,
        filled=o.cum_qty,
        status=o.status,
        price=o.price if o.price else None,
        trigger_price=o.trigger_price if o.trigger_price else None,
        reduce_only=o.reduce_only,
        position_idx=o.position_idx,
        avg_price=(o.cum_value / o.cum_qty) if o.cum_qty > 0 else None,
        created_ms=o.created_ms,
        updated_ms=o.updated_ms,
    )


__all__ = ["RECEIVE_WINDOW_S", "ZERO", "Decimal", "Faults", "SimPort", "order_view"]
