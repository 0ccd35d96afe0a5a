"""What a read of an account needs beyond its positions and open orders, looked up on the exchange:
- the final state of owned orders that left the open list (by orderLinkId; bounded per read: those
  not looked up this time stay "unknown" and are looked up next read);
- in position mode, the fills of a position's own stop-loss, when a read finds the position flat or
  smaller than our own fills explain, or open without the stop a read showed, and no push brought
  such a fill (`core.step.stop_fills_to_look_up`): one `execution/list` call of that symbol. A
  look-up that fails is made again by the next read; a flat position waits for it up to
  `Policy.stop_fill_wait_s`, then the price judges (docs/protection.md, Stop modes).

One implementation for the workers' checks, the seeded simulator and the core's walk tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from core.errors import TpslError
from core.models import Account, Monitor, Side, Snapshot
from core.policy import Policy
from core.ports import ExchangePort
from core.step import links_to_look_up, stop_fills_to_look_up

log = logging.getLogger(__name__)

LOOKUPS_PER_PASS = 20  # one-by-one order look-ups per account read, beyond the history pages


def look_up(
    account: Account, client: ExchangePort, snap: Snapshot, monitors: Iterable[Monitor], policy: Policy
) -> Snapshot:
    """`snap` with the look-ups its monitors' next steps need."""
    monitors = list(monitors)
    need: set[str] = set()
    for m in monitors:
        need |= links_to_look_up(m, snap)
    need -= snap.looked_up  # a stream view answers for the final orders it holds
    if need:
        found, looked = client.lookup_some(account, need, max_single=LOOKUPS_PER_PASS)
        snap = replace(snap, closed_orders={**snap.closed_orders, **found}, looked_up=snap.looked_up | looked)
    return look_up_stop_fills(account, client, snap, monitors, policy)


def look_up_stop_fills(
    account: Account, client: ExchangePort, snap: Snapshot, monitors: Iterable[Monitor], policy: Policy
) -> Snapshot:
    """`snap` with the fills of the positions' own stop-losses on the symbols whose monitors need
    them (`Snapshot.stop_fills`, `stop_fills_read`): since the earliest of those monitors was
    created, the latest execTime per (symbol, side of the execution)."""
    since: dict[str, float] = {}
    for m in monitors:
        for symbol in stop_fills_to_look_up(m, snap, policy):
            since[symbol] = min(m.created_at, since.get(symbol, m.created_at))
    if not since:
        return snap
    fills = dict(snap.stop_fills)
    read = set(snap.stop_fills_read)
    for symbol, created_at in sorted(since.items()):
        try:
            executions = client.executions(account, since_ms=int(created_at * 1000), symbol=symbol)
        except TpslError as err:
            log.warning("account %s: executions of %s not read (%s); judged later", account.id, symbol, err)
            continue
        for ex in executions:
            if ex.by_position_stop and ex.symbol == symbol:
                key: tuple[str, Side] = (symbol, ex.side)
                fills[key] = max(ex.exec_time_ms, fills.get(key, 0))
        read.add(symbol)
    return replace(snap, stop_fills=fills, stop_fills_read=frozenset(read))
