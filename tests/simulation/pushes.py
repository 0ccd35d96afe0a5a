"""The stream view's position rows, as the simulator's reads show them: position pushes can be lost.

Every change of a position on the paper engine is one push (the engine hands each operation's
changes to its listeners, as the paper exchange's streams do). A push that moves the position (its
side, size or entry price) always comes: the view's `positions_behind` rule sends a read whose fill
has no position push yet to REST, so such a loss costs a REST read, not a stale row. A push that
changes only the stop-loss (a trading-stop, ours or by hand) is lost with probability `lost`, and
the row keeps what the last push that came delivered until the position changes again or the view
is reconciled by REST (every `reconcile_s`).

A row's `seen_at` is when its push came (`Snapshot.position_seen_at`). The pass's clock does not
move between the read and the guard's calls, so a change before an account's read is pushed a
moment before it and a change after it (the guard's own calls, a race) a moment after.

While a row of an account misses a push the exchange has failed the guard (the account is faulted
for the invariants, as for a stale open list): a stop removed by hand is seen only with the next
push or the reconciliation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.models import Side

EPSILON_S = 0.001  # a push comes this long before the read that shows it, or after the call that made it


@dataclass
class Row:
    side: Side | None
    size: Decimal
    avg: Decimal
    stop_loss: Decimal | None
    seen_at: float
    stale: bool = False  # a push lost since this row came changed the stop


class PositionPushes:
    def __init__(self, engine: Any, seed: int) -> None:
        # its own RNG: the seed's scenario, market, adversary and person are the same with or
        # without lost pushes
        self.rng = random.Random(f"position-pushes:{seed}")
        self.lost = self.rng.choice((0.0, 0.0, 0.1, 0.3, 0.6))
        self.reconcile_s = self.rng.choice((15.0, 30.0, 60.0))
        self.engine = engine
        self.rows: dict[tuple[str, str, int], Row] = {}  # (account, symbol, positionIdx)
        self.stops: dict[tuple[str, str, int], Decimal | None] = {}  # the truth's, at the last push
        self.reconciled_at: dict[str, float] = {}
        self.read: set[str] = set()  # accounts read since the guard's checks of this pass began
        self.pushes = 0
        self.lost_pushes = 0
        engine.listeners.append(self._on_changes)

    def quiet(self) -> None:
        """No push lost from now on, and every view reconciled by its next read."""
        self.lost = 0.0
        self.reconciled_at.clear()

    def new_pass(self) -> None:
        self.read.clear()

    def _on_changes(self, changes: list[tuple[str, object]]) -> None:
        now = self.engine.clock()
        for kind, rec in changes:
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

    def view(
        self, account: str, positions: Mapping[tuple[str, int], Any], now: float
    ) -> tuple[dict[tuple[str, int], Decimal | None], dict[tuple[str, int], float], bool]:
        """For a read of `account` at `now` whose positions (the truth) are `positions`: each row's
        stop-loss as the view holds it, when each row's push came, and whether a row misses a push.
        A read past `reconcile_s` since the last is also the view's reconciliation by REST."""
        self.read.add(account)
        if now - self.reconciled_at.get(account, -1e18) >= self.reconcile_s:
            self.reconciled_at[account] = now
            for key in [k for k in self.rows if k[0] == account]:
                del self.rows[key]
            for (symbol, idx), p in positions.items():
                self.rows[(account, symbol, idx)] = Row(
                    p.side, p.size, p.avg, p.stop_loss or None, now - EPSILON_S
                )
        stops: dict[tuple[str, int], Decimal | None] = {}
        seen: dict[tuple[str, int], float] = {}
        stale = False
        for symbol, idx in positions:
            row = self.rows.get((account, symbol, idx))
            if row is None:
                continue
            stops[(symbol, idx)] = row.stop_loss
            seen[(symbol, idx)] = row.seen_at
            stale = stale or row.stale
        return stops, seen, stale
