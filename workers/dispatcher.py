"""The dispatcher: claim due monitors, group them by account, one check message per account.

It runs in beat's process, on a thread of its own (tasks/dispatch.py), or as `tpsl dispatch`; either
way it imports nothing heavy: the database is loaded only to rebuild a lost registry (and beat has
even that done by a child process).

An account's check is routed to the queue of its most urgent claimed monitor, expires after that
tier's interval (a newer one is due by then) and carries every monitor of the account that is due
or due within `claim_lookahead_s`: one read of the account serves all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.models import Tier
from workers.lag import CHECK_LAG
from workers.registry import Claimed

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckOrder:
    account: str
    tier: Tier  # the most urgent tier among the monitors: decides the queue
    monitor_ids: tuple[str, ...]
    due_at: float  # the earliest due time among the account's due monitors: when the check should start


def group_claims(claimed: Sequence[Claimed]) -> list[CheckOrder]:
    by_account: dict[str, list[Claimed]] = {}
    for c in claimed:
        by_account.setdefault(c.account, []).append(c)
    out = []
    for account, items in sorted(by_account.items()):
        tier = min((c.tier for c in items), key=lambda t: t.rank)
        due = [c.due_at for c in items if not c.ride_along] or [c.due_at for c in items]
        out.append(CheckOrder(account, tier, tuple(c.monitor_id for c in items), min(due)))
    return out


Rebuild = Callable[["Runtime"], object]


def rebuild_here(rt: Runtime) -> object:
    """Rebuild a lost registry from the database in this process (workers/reconcile.py)."""
    from workers.reconcile import reconcile  # the database's layer: loaded only for a rebuild

    return reconcile(rt)  # logs and alerts when it restores monitors; another one may be at it


def dispatch_once(
    rt: Runtime, publish: Callable[[list[CheckOrder]], None], rebuild: Rebuild = rebuild_here
) -> list[CheckOrder]:
    """One tick: claim what is due before the next tick (atomic across dispatchers), record check
    lag, publish. A check claimed ahead of its due time is published to start at that time, so a
    monitor is checked when it is due, not up to a tick later.

    First, one EXISTS: a registry whose epoch key is gone was lost (Redis flushed, replaced or
    restarted without persistence); it is rebuilt from the database at once (`rebuild`), before
    claiming."""
    if not rt.registry.present():
        rebuild(rt)
    now = rt.clock()
    ahead = rt.settings.dispatch_tick_s
    claimed = rt.registry.claim(
        now + ahead, lookahead=rt.settings.claim_lookahead_s, cap=rt.settings.claim_cap
    )
    if not claimed:
        return []
    # claim time − due time of due monitors (claimed ahead: 0); ride-alongs were early by design
    rt.latency.record_many(
        CHECK_LAG, [(c.tier.value, max(0.0, now - c.due_at)) for c in claimed if not c.ride_along], now=now
    )
    orders = group_claims(claimed)
    publish(orders)
    return orders


def run_loop(
    rt: Runtime,
    publish: Callable[[list[CheckOrder]], None],
    stop: threading.Event,
    rebuild: Rebuild = rebuild_here,
) -> None:
    """The dispatcher as a plain loop, every `dispatch_tick_s`, until `stop` is set: beat's
    dispatcher thread (tasks/dispatch.py) and `tpsl dispatch` (a second dispatcher beside beat)."""
    tick = rt.settings.dispatch_tick_s
    while not stop.is_set():
        started = time.monotonic()
        try:
            dispatch_once(rt, publish, rebuild)
        except Exception:
            log.exception("dispatch tick failed; next tick in %.1f s", tick)
        stop.wait(max(0.0, tick - (time.monotonic() - started)))
