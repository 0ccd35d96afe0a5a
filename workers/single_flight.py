"""Single-flight loading of a value cached in Redis, across processes: the one loop behind the
dashboard's cache (workers/ttl_cache.py) and the market data cache (workers/market_cache.py).

On a miss, one caller takes a short Redis lock (`keys.loading(key)`) and runs the loader; the others
poll for the value it writes (every `poll_s`, at most `wait_s`), then load it themselves rather than
wait behind a loader that hangs or died. A loader that raises frees the lock at once, so a waiter
takes over without waiting for the lock to expire; nothing is stored for an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis

from config import keys
from workers.locks import lock as redis_lock
from workers.locks import release_quietly

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Flight:
    """How long to wait for another loader, how long its lock lives, how often to look; the clock
    (monotonic) and the sleep are injectable."""

    wait_s: float
    lock_ttl_s: float
    poll_s: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]


def load_once(
    redis: Redis,
    key: str,
    flight: Flight,
    *,
    found: Callable[[Any], T],
    load: Callable[[], T],
) -> tuple[T, bool]:
    """(value, loaded here): the value stored at `key` meanwhile (`found(raw)`), else `load()`'s,
    which stores it itself. Call it after a miss."""
    lock = redis_lock(redis, keys.loading(key), flight.lock_ttl_s)
    deadline = flight.clock() + flight.wait_s
    while True:
        if lock.acquire(blocking=False):
            try:
                cached = redis.get(key)  # written between our miss and our lock
                if cached is not None:
                    return found(cached), False
                return load(), True
            finally:
                release_quietly(lock)
        flight.sleep(flight.poll_s)
        cached = redis.get(key)
        if cached is not None:
            return found(cached), False
        if flight.clock() >= deadline:
            log.warning("cache %s: another loader took over %.1f s; loading here", key, flight.wait_s)
            return load(), True
