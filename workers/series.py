"""Small rolling time series in Redis for the page's plots: at most one point per `step_s`, the
last `points` kept, collected by beat (`tpsl.series`, every `COLLECT_EVERY_S`), so the history
exists whether or not anyone watches, and no GET writes:

- monitors per tier: `<p>:dash:series:tiers`, a point per `TIER_STEP_S`;
- price per symbol: `<p>:dash:series:px:<symbol>`, a point per `PRICE_STEP_S` from the last prices
  of the most urgent `PRICED_MONITORS` live monitors (the workers' fresh reads; the page's rows).

A point is a JSON object with an `"at"` (epoch s). Appending is one atomic script per series (the
check "is the last point older than the step" and the push happen together, so two beats
do not add two points for one step); several series are appended in one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from redis import Redis

from config import keys
from workers.registry import TIER_ORDER

if TYPE_CHECKING:
    from workers.runtime import Runtime

TIER_STEP_S = 10.0
TIER_POINTS = 360  # one hour at 10 s
PRICE_STEP_S = 5.0
PRICE_POINTS = 720  # one hour at 5 s
COLLECT_EVERY_S = PRICE_STEP_S  # beat's period of `tpsl.series`
PRICED_MONITORS = 500  # the live monitors whose symbols get a price series (the page shows as many)
PRICE_FIELDS = ("last_price", "updated_at")

_APPEND = """
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  local t = tonumber(string.match(last, '"at":([-%d%.eE+]+)'))
  if t and tonumber(ARGV[2]) - t < tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
"""


class RollingSeries:
    """`RollingSeries(redis, keys.tier_series(prefix), step_s=10, points=360)`."""

    def __init__(self, redis_client: Redis, *, step_s: float, points: int) -> None:
        if not (0 < step_s < math.inf) or points < 1:
            raise ValueError(f"step_s must be > 0 and points ≥ 1 (got {step_s!r}, {points!r})")
        self.redis = redis_client
        self.step_s = float(step_s)
        self.points = int(points)
        self._append = redis_client.register_script(_APPEND)

    @property
    def ttl_ms(self) -> int:
        return round(self.points * self.step_s * 2 * 1000)

    def append(self, key: str, point: Mapping[str, Any], *, now: float) -> bool:
        return self.append_many({key: point}, now=now)[key]

    def append_many(self, points: Mapping[str, Mapping[str, Any]], *, now: float) -> dict[str, bool]:
        """Append one point to each series (key → point), one round trip. True where appended."""
        if not points:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for key, point in points.items():
            body = orjson.dumps({"at": round(now, 3), **{k: v for k, v in point.items() if k != "at"}})
            self._append(
                keys=[key],
                args=[body, repr(float(now)), repr(self.step_s), self.points, self.ttl_ms],
                client=pipe,
            )
        return {key: bool(int(r)) for key, r in zip(points, pipe.execute(), strict=True)}

    def read(self, key: str) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in cast("list[str]", self.redis.lrange(key, 0, -1))]


def tiers_key(prefix: str) -> str:
    return keys.tier_series(prefix)


def price_key(prefix: str, symbol: str) -> str:
    return keys.price_series(prefix, symbol)


def tier_series(redis_client: Redis) -> RollingSeries:
    return RollingSeries(redis_client, step_s=TIER_STEP_S, points=TIER_POINTS)


def price_series(redis_client: Redis) -> RollingSeries:
    return RollingSeries(redis_client, step_s=PRICE_STEP_S, points=PRICE_POINTS)


def latest_prices(views: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Symbol → the last price of its most recently updated monitor (monitors without a price are
    left out)."""
    latest: dict[str, tuple[float, str]] = {}
    for v in views:
        px = v.get("last_price")
        if px is None:
            continue
        at = float(v.get("updated_at") or 0)
        if v["symbol"] not in latest or at > latest[v["symbol"]][0]:
            latest[v["symbol"]] = (at, px)
    return {symbol: px for symbol, (_, px) in latest.items()}


def read_prices(redis_client: Redis, prefix: str, symbol: str) -> list[tuple[float, float]]:
    """(epoch s, price) points of a symbol, oldest first; unreadable points are skipped."""
    out = []
    for p in price_series(redis_client).read(price_key(prefix, symbol)):
        try:
            out.append((float(p["at"]), float(p["px"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def collect(rt: Runtime, *, now: float) -> dict[str, int]:
    """One beat of the series (the task `tpsl.series`): a monitors-per-tier point and a price point
    per symbol of the most urgent live monitors. Returns the points appended of each kind."""
    registry = rt.registry
    counts = registry.counts_by_tier()
    by_tier = {t.value: n for t, n in counts.items()}
    tiers = tier_series(rt.redis).append(tiers_key(rt.prefix), by_tier, now=now)
    slices, left = [], PRICED_MONITORS
    for tier in TIER_ORDER:  # most urgent first, soonest due first: the page's order
        n = min(counts.get(tier, 0), left)
        if n:
            slices.append((tier, 0, n - 1))
            left -= n
    ids = [mid for entries in registry.due_entries(slices) for _, mid, _ in entries]
    views = []
    for _, state_json in registry.states(ids).values():
        try:
            state = orjson.loads(state_json)
            views.append({"symbol": state["plan"]["symbol"], **{k: state.get(k) for k in PRICE_FIELDS}})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # an unreadable state has no price to plot (the checks quarantine it)
    prices = latest_prices(views)
    added = price_series(rt.redis).append_many(
        {price_key(rt.prefix, symbol): {"px": px} for symbol, px in prices.items()}, now=now
    )
    return {"tiers": int(tiers), "prices": sum(added.values())}
