"""What a pushed change means for the guard: which monitors it touches, and one coalesced check per
account for them.

A push on an account's private stream touches:
- `order` / `execution`: the monitor whose orderLinkId it carries (ours only: `core.ids`);
- `position`: the monitor that owns that (symbol, positionIdx) (`workers.position_index`).
A `gap` (the stream is subscribed again: at start, or after it was down) touches every monitor of the
account: what happened meanwhile is only in the REST API, and the check reads it there. So does a
stream that stays down for a moment (`tasks.stream.DOWN_CHECK_AFTER_S`): its check reads REST (the
view is unread while the stream is down), and so the tiers poll the account at once, not at each
monitor's next tier check.

A push on a public `tickers.{SYMBOL}` stream touches the monitors of that symbol whose proximity band
its mark price enters (`BandWatch`; each target has its band): the core's own rule (`core.urgency.near` over
`core.urgency.proximity_targets`, the classifier's "price near the next TP, the stop or a working
entry"), evaluated only on the monitors of that symbol, whose targets are precomputed. Entering
only: a price that stays inside the band touches nothing more until it has left it, so a price
hovering near a target does not keep the critical queue busy (the check the entry called moves the
monitor to the critical tier, which then polls it).

`CheckCoalescer` keeps at most one stream-triggered check queued per account. `note` adds monitor ids
to the account's pending set and answers whether the caller must enqueue a check (no check was
queued). The check `take`s the pending set and clears the flag before it reads the exchange, so
pushes that arrive while it runs queue exactly one more check, and nothing noted is ever dropped:
a check that cannot run (the account is busy) puts its ids back with `note`. `join_queued` adds a
tier check's monitors to a check queued within `JOIN_AGE_S` (and answers False when there is none):
the tier check then leaves them to it rather than hold the account for a pass of its own just
before it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from redis import Redis

from config import keys
from core.ids import parse_link_id
from core.models import Monitor
from core.urgency import near, proximity_targets
from workers.lua import source

LINK_TOPICS = frozenset({"order", "execution", "execution.fast", "order.linear", "execution.linear"})
POSITION_TOPICS = frozenset({"position", "position.linear"})
QUEUED_TTL_S = 30  # a queued flag whose message was lost (expired, purged) frees itself
JOIN_AGE_S = 5.0  # a tier check joins a check queued at most this long ago (an older one may be lost)


@dataclass(frozen=True, slots=True)
class Touched:
    """Monitors a push names by orderLinkId, and positions it names by (symbol, positionIdx)."""

    monitor_ids: frozenset[str] = frozenset()
    positions: frozenset[tuple[str, int]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.monitor_ids or self.positions)


def touched(topic: str, data: Any) -> Touched:
    """What one private push touches. Rows that are not ours, or not well formed, touch nothing."""
    rows = data if isinstance(data, list) else [data]
    items = [r for r in rows if isinstance(r, Mapping)]
    if topic in LINK_TOPICS:
        ids = set()
        for r in items:
            parsed = parse_link_id(str(r.get("orderLinkId") or ""))
            if parsed is not None:
                ids.add(parsed[0])
        return Touched(monitor_ids=frozenset(ids))
    if topic in POSITION_TOPICS:
        positions = set()
        for r in items:
            symbol, idx = r.get("symbol"), r.get("positionIdx", 0)
            if isinstance(symbol, str) and symbol and str(idx).isdigit():
                positions.add((symbol, int(idx)))
        return Touched(positions=frozenset(positions))
    return Touched()


class CheckCoalescer:
    """At most one queued stream-triggered check per account, with the monitors it must check."""

    def __init__(self, redis_client: Redis, *, prefix: str = keys.PREFIX) -> None:
        self.redis = redis_client
        self.prefix = prefix

    def note(self, account: str, monitor_ids: Iterable[str]) -> bool:
        """Add monitors to the account's next check; True when the caller must enqueue that check
        (none was queued). Nothing to add: False."""
        ids = sorted(set(monitor_ids))
        if not ids:
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(keys.stream_pending(self.prefix, account), *ids)
        pipe.set(keys.stream_queued(self.prefix, account), "1", nx=True, ex=QUEUED_TTL_S)
        _, queued_now = pipe.execute()
        return bool(queued_now)

    def join_queued(self, account: str, monitor_ids: Iterable[str]) -> bool:
        """Add monitors to the account's queued check if one was queued within JOIN_AGE_S (it has
        not taken its set yet, so it checks them; an older flag may be one whose message was lost,
        and the tier check must not wait for it); False, nothing added, otherwise."""
        ids = sorted(set(monitor_ids))
        if not ids:
            return False
        pending, queued = keys.stream_pending(self.prefix, account), keys.stream_queued(self.prefix, account)
        least_ttl_ms = int((QUEUED_TTL_S - JOIN_AGE_S) * 1000)
        join = self.redis.register_script(source("join_queued"))  # only here: a coalescer is made per task
        return bool(join(keys=[queued, pending], args=[least_ttl_ms, *ids]))

    def take(self, account: str) -> list[str]:
        """The monitors to check now; clears the queued flag (later pushes queue one more check)."""
        pending = keys.stream_pending(self.prefix, account)
        pipe = self.redis.pipeline(transaction=True)
        pipe.smembers(pending)
        pipe.delete(pending)
        pipe.delete(keys.stream_queued(self.prefix, account))
        members, _, _ = pipe.execute()
        return sorted(members)


@dataclass(frozen=True, slots=True)
class Watched:
    """One monitor as the price trigger sees it: its account and its proximity targets."""

    monitor_id: str
    account: str
    targets: tuple[Decimal, ...]


class BandWatch:
    """Per symbol, the proximity targets of its monitors; which monitors a pushed price brings into
    their band. `update` (from the registry, every few seconds) and `entered` (per push) may run on
    different threads."""

    def __init__(self, band: Decimal) -> None:
        self.band = band
        self._by_symbol: dict[str, tuple[Watched, ...]] = {}
        self._watched: dict[str, tuple[str, Watched]] = {}  # monitor id → (symbol, watched)
        # monitor id → the targets whose band the last price seen was in
        self._inside: dict[str, frozenset[Decimal]] = {}
        self._lock = threading.Lock()

    def update(self, changed: Iterable[Monitor], gone: Iterable[str] = ()) -> None:
        """Monitors whose state changed (new ones included), and ids no longer in the registry. A
        monitor whose targets changed forgets whether it was inside: its next push decides."""
        with self._lock:
            touched: set[str] = set()
            for mid in gone:
                old = self._watched.pop(mid, None)
                self._inside.pop(mid, None)
                if old is not None:
                    touched.add(old[0])
            for m in changed:
                w = Watched(m.id, m.account, proximity_targets(m))
                old = self._watched.get(m.id)
                if old is not None and old[1] == w and old[0] == m.plan.symbol:
                    continue
                if old is not None:
                    touched.add(old[0])
                self._inside.pop(m.id, None)
                self._watched[m.id] = (m.plan.symbol, w)
                touched.add(m.plan.symbol)
            by_symbol: dict[str, list[Watched]] = defaultdict(list)
            for symbol, w in self._watched.values():
                if symbol in touched:
                    by_symbol[symbol].append(w)
            for symbol in touched:
                ws = tuple(w for w in by_symbol.get(symbol, ()) if w.targets)
                if ws:
                    self._by_symbol[symbol] = ws
                else:
                    self._by_symbol.pop(symbol, None)

    def symbols(self) -> set[str]:
        """The symbols of every monitor known (the tickers the stream process subscribes)."""
        with self._lock:
            return {symbol for symbol, _ in self._watched.values()}

    def monitor_ids(self) -> set[str]:
        with self._lock:
            return set(self._watched)

    def entered(self, symbol: str, price: Decimal) -> dict[str, set[str]]:
        """Account → the monitors of `symbol` with a target whose band `price` is in now and was
        not in at the last price seen (or not known). O(targets of the symbol's monitors)."""
        out: dict[str, set[str]] = defaultdict(set)
        with self._lock:
            for w in self._by_symbol.get(symbol, ()):
                inside = frozenset(t for t in w.targets if near(price, (t,), self.band))
                if inside - self._inside.get(w.monitor_id, frozenset()):
                    out[w.account].add(w.monitor_id)
                self._inside[w.monitor_id] = inside
        return dict(out)

    def forget(self, symbols: Iterable[str]) -> None:
        """Prices of these symbols were missed (their connection went down): whether their monitors
        are inside is unknown until the next push."""
        wanted = set(symbols)
        with self._lock:
            for symbol in wanted:
                for w in self._by_symbol.get(symbol, ()):
                    self._inside.pop(w.monitor_id, None)
