"""The dispatcher: claim due monitors, group them by account, one check message per account.

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
from typing import Any

from core.models import Tier
from workers.registry import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckOrder:
    account: str
    tier: Tier  # the most urgent tier among the monitors: decides the queue
    monitor_ids: tuple[str, ...]
    oldest_due: float


def group_claims(claimed: Sequence[Claimed]) -> list[CheckOrder]:
    by_account: dict[str, list[Claimed]] = {}
    for c in claimed:
        by_account.setdefault(c.account, []).append(c)
    out = []
    for account, items in sorted(by_account.items()):
        tier = min((c.tier for c in items), key=lambda t: t.rank)
        out.append(
            CheckOrder(account, tier, tuple(c.monitor_id for c in items), min(c.due_at for c in items))
        )
    return out


def dispatch_once(rt: Any, publish: Callable[[list[CheckOrder]], None]) -> list[CheckOrder]:
    """One tick: claim (atomic across dispatchers), record check lag, publish."""
    now = rt.clock()
    claimed = rt.registry.claim(now, lookahead=rt.settings.claim_lookahead_s, cap=rt.settings.claim_cap)
    if not claimed:
        return []
    rt.latency.record_lags(claimed, now=now)  # check lag per tier (ride-alongs were early: skipped)
    orders = group_claims(claimed)
    publish(orders)
    return orders


def run_loop(rt: Any, publish: Callable[[list[CheckOrder]], None], stop: threading.Event) -> None:
    """`tpsl dispatch`: the dispatcher as a plain loop (instead of, or beside, beat's ticks)."""
    tick = rt.settings.dispatch_tick_s
    while not stop.is_set():
        started = time.monotonic()
        try:
            dispatch_once(rt, publish)
        except Exception:
            log.exception("dispatch tick failed; next tick in %.1f s", tick)
        stop.wait(max(0.0, tick - (time.monotonic() - started)))
