"""`build_client`: a BybitClient on the process's shared pooled session, instrument cache and
rate limiter. Cheap to call per check; the first call in a process creates the registry."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from core.ports import Clock
from exchange.bybit.cache import InstrumentCache
from exchange.bybit.callstats import CallStats
from exchange.bybit.client import BybitClient
from exchange.bybit.options import BybitOptions
from exchange.bybit.ratelimit import LocalTokenBucket, RateLimiter, RedisTokenBucket
from exchange.bybit.session import SessionPool, get_session_pool


def build_client(
    account_base_url: str,
    settings: BybitOptions,
    redis: Any = None,
    clock: Clock = time.time,
    *,
    pool: SessionPool | None = None,
    sleep: Any = time.sleep,
) -> BybitClient:
    """A client for one exchange host. `redis`: a redis-py client for the fleet-wide rate limiter
    (None: an in-process bucket shared by this process's clients). `pool`: defaults to the
    process registry (`get_session_pool(settings)`)."""
    pool = pool or get_session_pool(settings)
    base = account_base_url.rstrip("/")
    session = pool.session(base)
    instruments = pool.shared(base, "instruments", lambda: InstrumentCache(settings.instruments_cache_s))
    limiter: RateLimiter
    if redis is not None:
        limiter = pool.shared(
            "",
            f"redis-limiter:{id(redis)}",
            lambda: RedisTokenBucket(redis, settings, clock=clock, sleep=sleep),
        )
    else:
        limiter = pool.shared(
            "", "local-limiter", lambda: LocalTokenBucket(settings, clock=clock, sleep=sleep)
        )
    calls = pool.shared("", f"calls:{id(redis)}", lambda: CallStats(redis, clock=clock))
    singles = pool.shared(
        base,
        "singles",
        # stop calls without a batch form (stop amends, trading-stops) side by side, per host and
        # process (TPSL_STOP_CALLS_IN_FLIGHT, below the pooled connections per host)
        lambda: ThreadPoolExecutor(
            max_workers=settings.stop_calls_in_flight, thread_name_prefix="bybit-single"
        ),
    )
    return BybitClient(
        base,
        settings,
        session=session,
        limiter=limiter,
        instruments=instruments,
        clock=clock,
        calls=calls,
        singles=singles,
    )
