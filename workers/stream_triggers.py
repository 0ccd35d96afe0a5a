"""What a pushed change means for the guard: which monitors it touches, and one coalesced check per
account for them.

A push on an account's private stream touches:
- `order` / `execution`: the monitor whose orderLinkId it carries (ours only: `core.ids`);
- `position`: the monitor that owns that (symbol, positionIdx) (`workers.position_index`).
A `gap` (the stream is subscribed again: at start, or after it was down) touches every monitor of the
account: what happened meanwhile is only in the REST API, and the check reads it there.

`CheckCoalescer` keeps at most one stream-triggered check queued per account. `note` adds monitor ids
to the account's pending set and answers whether the caller must enqueue a check (no check was
queued). The check `take`s the pending set and clears the flag before it reads the exchange, so
pushes that arrive while it runs queue exactly one more check, and nothing noted is ever dropped:
a check that cannot run (the account is busy) puts its ids back with `note`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from config import keys
from core.ids import parse_link_id

LINK_TOPICS = frozenset({"order", "execution", "execution.fast", "order.linear", "execution.linear"})
POSITION_TOPICS = frozenset({"position", "position.linear"})
QUEUED_TTL_S = 30  # a queued flag whose message was lost (expired, purged) frees itself


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

    def take(self, account: str) -> list[str]:
        """The monitors to check now; clears the queued flag (later pushes queue one more check)."""
        pending = keys.stream_pending(self.prefix, account)
        pipe = self.redis.pipeline(transaction=True)
        pipe.smembers(pending)
        pipe.delete(pending)
        pipe.delete(keys.stream_queued(self.prefix, account))
        members, _, _ = pipe.execute()
        return sorted(members)
