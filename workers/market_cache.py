"""Market data shared by every account and worker process: the tickers (≈1 s). Instrument filters
are the exchange client's own in-process cache (exchange/bybit/cache.py).

`get_or_load` is single-flight across processes (workers/single_flight.py): on a miss one caller
runs the loader, the others wait for its value at most `wait_s`, then load it themselves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar, cast

from redis import Redis

from config import keys
from config.settings import Settings
from workers.single_flight import Flight, load_once

log = logging.getLogger(__name__)

T = TypeVar("T")

Encoded = bytes | str


def _seconds(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ValueError(f"{field}: must be a finite number of seconds > 0 (got {value!r})")
    return float(value)


class MarketCache:
    """`MarketCache(redis, settings).tickers(load, encode, decode)`.

    `wait_s`: longest a caller waits for another process's loader before loading itself.
    `lock_ttl_s`: lifetime of the loader lock (a loader that died frees it after this).
    `poll_s`: how often a waiter looks for the value. `clock`/`sleep` are injectable for tests.
    """

    def __init__(
        self,
        redis_client: Redis,
        settings: Settings,
        *,
        prefix: str = keys.PREFIX,
        wait_s: float = 2.0,
        lock_ttl_s: float = 5.0,
        poll_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.prefix = prefix
        self.wait_s = _seconds("wait_s", wait_s)
        self.lock_ttl_s = _seconds("lock_ttl_s", lock_ttl_s)
        self.poll_s = _seconds("poll_s", poll_s)
        self._flight = Flight(self.wait_s, self.lock_ttl_s, self.poll_s, clock, sleep)

    def value_key(self, name: str) -> str:
        return keys.market(self.prefix, name)

    def lock_key(self, name: str) -> str:
        return keys.loading(keys.market(self.prefix, name))

    # ----------------------------------------------------------------------------------- typed use

    def tickers(
        self,
        loader: Callable[[], T],
        encode: Callable[[T], Encoded],
        decode: Callable[[Encoded], T],
        *,
        category: str = "linear",
    ) -> T:
        """Every ticker of a category, shared for `settings.ticker_cache_s`."""
        return self.get_or_load(
            f"tickers:{category}", loader, encode, decode, ttl_s=self.settings.ticker_cache_s
        )

    # ------------------------------------------------------------------------------------- engine

    def get_or_load(
        self,
        name: str,
        loader: Callable[[], T],
        encode: Callable[[T], Encoded],
        decode: Callable[[Encoded], T],
        *,
        ttl_s: float,
    ) -> T:
        """The cached value of `name`, else the loader's (stored for `ttl_s`); one loader at a time
        across processes, waiters bounded by `wait_s`. Loader errors propagate to its caller."""
        if not name:
            raise ValueError("name: must be a non-empty string")
        ttl_ms = max(1, round(_seconds("ttl_s", ttl_s) * 1000))
        key = self.value_key(name)
        cached = self.redis.get(key)
        if cached is not None:
            return decode(cast("bytes | str", cached))

        value, _ = load_once(
            self.redis,
            key,
            self._flight,
            found=decode,
            load=lambda: self._load(key, loader, encode, ttl_ms),
        )
        return value

    def _load(self, key: str, loader: Callable[[], T], encode: Callable[[T], Encoded], ttl_ms: int) -> T:
        value = loader()
        self.redis.set(key, encode(value), px=ttl_ms)
        return value

    def invalidate(self, name: str) -> None:
        self.redis.delete(self.value_key(name))
