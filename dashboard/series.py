"""Small rolling time series in Redis for the page's plots: at most one point per `step_s`, the
last `points` kept, written as the figures are computed (no extra process).

- monitors per tier: `<p>:dash:series:tiers`, a point per /api/stats or operations-panel refresh;
- price per symbol: `<p>:dash:series:px:<symbol>`, from the monitors' last prices (the workers'
  fresh reads) each time the monitors are shown.

A point is a JSON object with an `"at"` (epoch s). Appending is one atomic script per series (the
check "is the last point older than the step" and the push happen together, so two web processes
do not add two points for one step); several series are appended in one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from redis import Redis

from config import keys

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
        return [orjson.loads(x) for x in self.redis.lrange(key, 0, -1)]


def tiers_key(prefix: str) -> str:
    return keys.tier_series(prefix)


def price_key(prefix: str, symbol: str) -> str:
    return keys.price_series(prefix, symbol)
