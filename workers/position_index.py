"""Which monitor guards which position, and the position size each monitor last stepped with.

Every check reads all positions of the account anyway; a fill always changes a position's size.
So a check compares the sizes it just read with the sizes each monitor last saw, and steps the
monitors whose position changed in the same pass even when they were not due — a fill is acted on
within one read of the account, whatever the monitor's tier, at no extra exchange call.

Keys (one pair of hashes per account, field `<symbol>|<positionIdx>`):
- `<p>:pos:<account>:mon`  → monitor id guarding that position
- `<p>:pos:<account>:size` → position size (string) when that monitor was last stepped
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from config import keys
from core.models import Monitor, Snapshot


def key_of(symbol: str, position_idx: int) -> str:
    return f"{symbol}|{position_idx}"


def parse_key(key: str) -> tuple[str, int] | None:
    """(symbol, positionIdx) of a `key_of` key; None for anything else."""
    symbol, sep, idx = key.partition("|")
    return (symbol, int(idx)) if sep and symbol and idx.isdigit() else None


class PositionIndex:
    def __init__(self, redis_client: Any, *, prefix: str = keys.PREFIX) -> None:
        self.redis = redis_client
        self.prefix = prefix

    def _mon(self, account: str) -> str:
        return keys.position_monitors(self.prefix, account)

    def _size(self, account: str) -> str:
        return keys.position_sizes(self.prefix, account)

    def bind(self, monitors: Iterable[Monitor]) -> None:
        """Record which monitor guards each position (creation, reconcile)."""
        pipe = self.redis.pipeline(transaction=False)
        n = 0
        for m in monitors:
            pipe.hset(self._mon(m.account), key_of(m.symbol, m.position_idx), m.id)
            pipe.hset(self._size(m.account), key_of(m.symbol, m.position_idx), str(m.position_size))
            n += 1
        if n:
            pipe.execute()

    def owner(self, account: str, symbol: str, position_idx: int) -> str | None:
        """The monitor guarding this position, if any (until it finishes)."""
        raw = self.redis.hget(self._mon(account), key_of(symbol, position_idx))
        return raw

    def owners(self, account: str, positions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The monitors guarding these positions (those guarded), in one read."""
        wanted = sorted(set(positions))
        if not wanted:
            return {}
        raw = self.redis.hmget(self._mon(account), [key_of(s, i) for s, i in wanted])
        return {p: mid for p, mid in zip(wanted, raw, strict=True) if mid is not None}

    def unbind(self, monitors: Iterable[Monitor]) -> None:
        """Forget finished monitors (only if the position still names them): two round trips
        whatever their number."""
        bound = [(m, key_of(m.symbol, m.position_idx)) for m in monitors]
        if not bound:
            return
        pipe = self.redis.pipeline(transaction=False)
        for m, key in bound:
            pipe.hget(self._mon(m.account), key)
        current = pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for (m, key), owner in zip(bound, current, strict=True):
            if owner == m.id:
                pipe.hdel(self._mon(m.account), key)
                pipe.hdel(self._size(m.account), key)
        if len(pipe):
            pipe.execute()

    def changed(self, snap: Snapshot, *, skip: Iterable[str] = ()) -> list[str]:
        """Monitors of the account (other than `skip`) whose position size in this read differs from
        the size they last stepped with."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._mon(snap.account))
        pipe.hgetall(self._size(snap.account))
        raw_mon, raw_size = pipe.execute()
        owners = dict(raw_mon)
        seen = {k: Decimal(v) for k, v in raw_size.items()}
        now = {key_of(sym, idx): p.size for (sym, idx), p in snap.positions.items()}
        skipped = set(skip)
        out = []
        for key, mid in owners.items():
            if mid in skipped:
                continue
            if now.get(key, Decimal(0)) != seen.get(key, Decimal(0)):
                out.append(mid)
        return out

    def remember(self, account: str, sizes: Mapping[str, Decimal]) -> None:
        """The sizes the monitors of these positions were stepped with."""
        if sizes:
            self.redis.hset(self._size(account), mapping={k: str(v) for k, v in sizes.items()})
