"""The account's stream view, as the simulator's reads see it: reads from the view, and position pushes
that can be lost.

A seed draws the share of the guard's reads the view serves (none, half, most, all; a worker reads
the view while the account's stream is healthy). A read from the view is a Snapshot marked `pushed`
with the view's read margin (`taken_at` half a second back, as `workers.stream_view` does), so the
core's rules for pushed reads run: among them, a pushed read never confirms a size change our fills
do not explain. The worker's rule that answers it is kept too: a check of a monitor whose change a
read from the view could not confirm for `UNEXPLAINED_WAIT_S` reads REST
(`workers.checker.unexplained_by_view`), and so is the first read after `reconcile_s` (the view's
background reconciliation). Its positions and orders are pushed:

Every change of a position on the paper engine is one push (the engine hands each operation's
changes to its listeners, as the paper exchange's streams do). A push that moves the position (its
side, size or entry price) always comes: the view's `positions_behind` rule sends a read whose fill
has no position push yet to REST, so such a loss costs a REST read, not a stale row. A push that
changes only the stop-loss (a trading-stop, ours or by hand) is lost with probability `lost`, and
the row keeps what the last push that came delivered until the position changes again or a REST
read reconciles the view.

Every change of one of our orders is one push too. A push that changes the order's status or fills
always comes (a lost fill is the stream's gap rule's: a REST read); a push that changes only its
trigger or quantity (an amend, ours or by hand) is lost at a seed's rate drawn from an RNG of its
own, and the row keeps the order as the last push that came delivered it, `updated_ms` included.

A row's `seen_at` is when its push came (`Snapshot.position_seen_at`). The pass's clock does not
move between the read and the guard's calls, so a change before an account's read is pushed a
moment before it and a change after it (the guard's own calls, a race) a moment after.

While a row read from the view misses a push the exchange has failed the guard (the account is
faulted for the invariants, as for a stale open list): a stop removed by hand is seen only with the
next push or a REST read. Everything here draws from its own RNG, so a seed's scenario, market,
adversary and person are the same as without it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from core.models import ExchangeOrder, Monitor, Side, Snapshot
from workers.checker import unexplained_by_view

EPSILON_S = 0.001  # a push comes this long before the read that shows it, or after the call that made it
READ_MARGIN_S = 0.5  # the view's read margin (TPSL_STREAM_READ_MARGIN_S)


@dataclass
class Row:
    side: Side | None
    size: Decimal
    avg: Decimal
    stop_loss: Decimal | None
    seen_at: float
    stale: bool = False  # a push lost since this row came changed the stop


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One of our orders as its last push that came delivered it."""

    status: Any
    filled: Decimal
    qty: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    updated_ms: int

    @staticmethod
    def of(o: Any) -> OrderRow:
        return OrderRow(o.status, o.cum_qty, o.qty, o.price or None, o.trigger_price or None, o.updated_ms)

    def misses_an_amend_of(self, ex: ExchangeOrder) -> bool:
        """The order changed since this row (its `updated_ms`), in nothing a push always brings."""
        return self.updated_ms != ex.updated_ms and (self.status, self.filled) == (ex.status, ex.filled)

    def over(self, ex: ExchangeOrder) -> ExchangeOrder:
        """`ex` as this row holds it: trigger, price and quantity from before the lost amend."""
        return replace(
            ex, qty=self.qty, price=self.price, trigger_price=self.trigger_price, updated_ms=self.updated_ms
        )


class SimView:
    def __init__(self, engine: Any, seed: int) -> None:
        self.rng = random.Random(f"stream-view:{seed}")
        self.share = self.rng.choice((0.0, 0.5, 0.9, 1.0))
        self.lost = self.rng.choice((0.0, 0.0, 0.1, 0.3, 0.6)) if self.share else 0.0
        self.reconcile_s = self.rng.choice((15.0, 30.0, 60.0))
        self.engine = engine
        self.rows: dict[tuple[str, str, int], Row] = {}  # (account, symbol, positionIdx)
        self.stops: dict[tuple[str, str, int], Decimal | None] = {}  # the truth's, at the last push
        self.reconciled_at: dict[str, float] = {}
        self.read: set[str] = set()  # accounts read since the guard's checks of this pass began
        self.pushes = 0
        self.lost_pushes = 0
        self.pushed_reads = 0
        self.reads = 0
        # order pushes: their losses draw from an RNG of their own (the draws above stay the seed's)
        self.order_rng = random.Random(f"stream-view-orders:{seed}")
        self.orders_lost = self.order_rng.choice((0.0, 0.0, 0.1, 0.3, 0.6)) if self.share else 0.0
        self.order_rows: dict[tuple[str, str], OrderRow] = {}  # (account, orderLinkId)
        self.order_pushes = 0
        self.lost_order_pushes = 0
        engine.listeners.append(self._on_changes)

    def quiet(self) -> None:
        """No push lost from now on, and every view reconciled by its next read."""
        self.lost = 0.0
        self.orders_lost = 0.0
        self.reconciled_at.clear()

    def new_pass(self) -> None:
        self.read.clear()

    def _on_changes(self, changes: list[tuple[str, object]]) -> None:
        now = self.engine.clock()
        for kind, rec in changes:
            if kind == "order":
                self._on_order(rec)
            if kind != "position":
                continue
            p: Any = rec
            key = (p.account.id, p.spec.symbol, p.idx)
            seen = now + EPSILON_S if p.account.id in self.read else now - EPSILON_S
            row = self.rows.get(key)
            stop = p.stop_loss or None
            changed_stop = stop != self.stops.get(key)
            self.stops[key] = stop
            self.pushes += 1
            moved = row is None or (row.side, row.size, row.avg) != (p.side, p.size, p.avg)
            if not moved and self.lost and self.rng.random() < self.lost:
                self.lost_pushes += 1
                assert row is not None
                row.stale = row.stale or changed_stop  # the row misses a change of the stop
                continue
            self.rows[key] = Row(p.side, p.size, p.avg, stop, seen)

    def _on_order(self, o: Any) -> None:
        if not o.link_id:
            return
        key = (o.account.id, o.link_id)
        row = self.order_rows.get(key)
        self.order_pushes += 1
        moved = row is None or (row.status, row.filled) != (o.status, o.cum_qty)
        if not moved and self.orders_lost and self.order_rng.random() < self.orders_lost:
            self.lost_order_pushes += 1
            return
        self.order_rows[key] = OrderRow.of(o)

    def serves(self, account: str, monitors: list[Monitor], now: float) -> bool:
        """Whether this read of `account` for `monitors` comes from the view (else from REST)."""
        self.reads += 1
        self.read.add(account)
        if not self.share or now - self.reconciled_at.get(account, -1e18) >= self.reconcile_s:
            return False
        if unexplained_by_view(monitors, now):
            return False
        if self.rng.random() >= self.share:
            return False
        self.pushed_reads += 1
        return True

    def reconcile(self, account: str, paper: Any, now: float) -> None:
        """A REST read of the account: the view's rows become what it showed."""
        self.read.add(account)
        self.reconciled_at[account] = now
        for key in [k for k in self.rows if k[0] == account]:
            del self.rows[key]
        for (symbol, idx), p in paper.positions.items():
            self.rows[(account, symbol, idx)] = Row(
                p.side, p.size, p.avg, p.stop_loss or None, now - EPSILON_S
            )
        for key in [k for k in self.order_rows if k[0] == account]:
            del self.order_rows[key]
        for o in paper.open_orders.newest_first():
            if o.link_id:
                self.order_rows[(account, o.link_id)] = OrderRow.of(o)

    def pushed(self, snap: Snapshot, now: float) -> tuple[Snapshot, bool]:
        """`snap` (the exchange's truth) as the view holds it: its positions' stops as last pushed,
        with when each row came, the read margin; and whether a row misses a push of its stop."""
        positions = {}
        seen: dict[tuple[str, int], float] = {}
        stale = False
        for (symbol, idx), p in snap.positions.items():
            row = self.rows.get((snap.account, symbol, idx))
            if row is None:
                positions[(symbol, idx)] = p
                continue
            positions[(symbol, idx)] = replace(p, stop_loss=row.stop_loss)
            seen[(symbol, idx)] = row.seen_at
            stale = stale or row.stale
        orders = dict(snap.open_orders)
        for link_id, ex in snap.open_orders.items():
            row = self.order_rows.get((snap.account, link_id))
            if row is not None and row.misses_an_amend_of(ex):
                orders[link_id] = row.over(ex)
                stale = True
        out = replace(
            snap,
            taken_at=now - READ_MARGIN_S,
            positions=positions,
            open_orders=orders,
            pushed=True,
            position_seen_at=seen,
        )
        return out, stale
