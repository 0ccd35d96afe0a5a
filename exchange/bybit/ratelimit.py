"""Client-side rate limiting per (account, endpoint group), shared by every worker process.

Bybit limits each UID per endpoint over a rolling second (order create/amend/cancel 10/s each, the
batch endpoints 10 orders/s each counted per item, the private reads 50/s each). A fleet of worker
processes must stay under those limits together, so the budget lives in Redis: per (account, group)
a log of the grants of the last second, checked and appended atomically by a Lua script. At most
`rate × rate_headroom` units (8 order items of the 10) are granted in any rolling second (plus a
slack for unequal transit times): the rule the exchange applies. A token bucket cannot keep that
promise for bursts: a full bucket plus a second of refill lets twice its rate through in one second
(a burst of creations got 10006 answers). A batch takes one unit per order item; one larger than
the whole budget passes when the window is empty (the exchange judges it), and the client never
sends a batch larger than the budget.

When the window is full the caller waits, but only a bounded time (`max_wait_s`, default 1.25 s: a
full window empties within 1.2 s; sleeping through the injected `sleep`); if the wait would be
longer it gets `BackOff(until=…)` at once and sends nothing. A caller may ask for less patience per
call (`acquire(…, max_wait_s=0)`: the client does so for everything but stops, see
`exchange.bybit.client.patience`). The same happens while a back-off is
recorded: after a 10006 / HTTP 403 / 429 the client calls `back_off(account, path, until)` and
every process stops calling that (account, group) until the reset time, which is shared in Redis.

Every response's `X-Bapi-Limit-Status` (remaining) and `X-Bapi-Limit-Reset-Timestamp` are fed to
`observe`: the window never has more units free than Bybit says remain, and "0 remaining" records a
back-off until the reset.

`LocalTokenBucket` is the same window in process memory for code paths without Redis (CLI, tests).
If Redis fails, the Redis limiter lets the call through (logged): the exchange still enforces its
own limit, and a stop-loss amend must not wait for the rate-limit bookkeeping.

A Celery `rate_limit` is not this mechanism: it limits task starts per worker, not calls per account.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from config import keys
from core.errors import BackOff
from exchange.bybit.options import BybitOptions

logger = logging.getLogger(__name__)

READ, TRADE, BATCH = "read", "trade", "batch"
# Bybit counts over a rolling second of arrivals; a grant here is stamped before its request leaves,
# and requests take unequal times to arrive: a grant stays in the window this much longer, so two
# grants a second apart here never land within one second there
TRANSIT_SLACK_MS = 200
WINDOW_MS = 1000 + TRANSIT_SLACK_MS
# a caller waits at most this for the window (a full one empties within WINDOW_MS), then BackOff
MAX_WAIT_S = 1.25


@dataclass(frozen=True, slots=True)
class Group:
    """A rate-limited unit: Bybit counts each endpoint separately; `kind` picks the rate."""

    name: str
    kind: str  # READ | TRADE | BATCH


GROUPS: dict[str, Group] = {
    "/v5/position/list": Group("position", READ),
    "/v5/order/realtime": Group("realtime", READ),
    "/v5/order/history": Group("history", READ),
    "/v5/execution/list": Group("executions", READ),
    "/v5/account/wallet-balance": Group("wallet", READ),
    "/v5/order/create": Group("create", TRADE),
    "/v5/order/amend": Group("amend", TRADE),
    "/v5/order/cancel": Group("cancel", TRADE),
    "/v5/order/cancel-all": Group("cancel-all", TRADE),
    "/v5/position/trading-stop": Group("trading-stop", TRADE),
    "/v5/order/create-batch": Group("create-batch", BATCH),
    "/v5/order/amend-batch": Group("amend-batch", BATCH),
    "/v5/order/cancel-batch": Group("cancel-batch", BATCH),
}


def group_for(path: str) -> Group | None:
    """The group of a private endpoint; None for public market data (IP-limited only)."""
    return GROUPS.get(path)


def rate_per_s(group: Group, settings: BybitOptions) -> float:
    base = {
        READ: settings.rate_read_per_s,
        TRADE: settings.rate_trade_per_s,
        BATCH: settings.rate_batch_orders_per_s,
    }[group.kind]
    rate = base * settings.rate_headroom
    if rate <= 0:
        raise ValueError(f"rate for {group.kind} endpoints must be > 0 (rate × rate_headroom = {rate})")
    return rate


def parse_limit_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(remaining, reset time in ms) from X-Bapi-Limit-Status / X-Bapi-Limit-Reset-Timestamp."""

    def get(name: str) -> int | None:
        raw = headers.get(name)
        if raw is None:
            lower = name.lower()
            raw = next((v for k, v in headers.items() if k.lower() == lower), None)
        try:
            return int(str(raw).strip()) if raw not in (None, "") else None
        except ValueError:
            return None

    return get("X-Bapi-Limit-Status"), get("X-Bapi-Limit-Reset-Timestamp")


@runtime_checkable
class RateLimiter(Protocol):
    def acquire(self, account_id: str, path: str, cost: int = 1, *, max_wait_s: float | None = None) -> None:
        """Take `cost` tokens of the (account, group) bucket, waiting at most a short bounded time
        (`max_wait_s`, the limiter's own bound when None; 0: not at all); raises BackOff when the
        budget is exhausted or a back-off is recorded."""
        ...

    def observe(self, account_id: str, path: str, headers: Mapping[str, str]) -> None:
        """Feed the exchange's rate-limit headers of one response."""
        ...

    def budget(self, path: str) -> int | None:
        """Units granted per rolling second on this endpoint (None: not limited): the largest batch
        worth sending in one request."""
        ...

    def back_off(self, account_id: str, path: str, until: float) -> None:
        """Send nothing to this (account, group) before `until` (epoch seconds), in every process."""
        ...


class _BucketLimiter:
    """The shared wait-or-BackOff policy; subclasses provide the atomic bucket primitives."""

    def __init__(
        self,
        settings: BybitOptions,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.max_wait_s = max_wait_s

    # primitives -------------------------------------------------------------------------------
    def _take(self, key: str, limit: int, cost: int, now_ms: int) -> tuple[int, int]:
        """(1, 0) granted; (0, wait_ms) the window is full; (-1, wait_ms) backing off."""
        raise NotImplementedError

    def _observe(self, key: str, remaining: int, reset_ms: int, limit: int, now_ms: int) -> None:
        raise NotImplementedError

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        raise NotImplementedError

    # policy -----------------------------------------------------------------------------------
    @staticmethod
    def _key(account_id: str, group: Group) -> str:
        return keys.rate_limit_bucket(account_id, group.name)

    def _limit(self, group: Group) -> int:
        """Units granted in any rolling second: the exchange's limit × headroom, rounded down."""
        return max(1, math.floor(rate_per_s(group, self._settings) + 1e-9))

    def budget(self, path: str) -> int | None:
        group = group_for(path)
        return None if group is None else self._limit(group)

    def acquire(self, account_id: str, path: str, cost: int = 1, *, max_wait_s: float | None = None) -> None:
        group = group_for(path)
        if group is None:
            return
        if cost < 1:
            raise ValueError(f"cost must be ≥ 1 (got {cost})")
        limit = self._limit(group)
        key = self._key(account_id, group)
        patience = self.max_wait_s if max_wait_s is None else max(0.0, max_wait_s)
        waited = 0.0
        while True:
            now = self._clock()
            status, wait_ms = self._take(key, limit, cost, int(now * 1000))
            if status == 1:
                return
            wait = max(wait_ms, 1) / 1000.0
            if waited + wait > patience:
                why = "backing off after a rate-limit answer" if status == -1 else "rate window full"
                raise BackOff(f"{group.name} of account {account_id}: {why}", until=now + wait)
            self._sleep(wait)
            waited += wait

    def observe(self, account_id: str, path: str, headers: Mapping[str, str]) -> None:
        group = group_for(path)
        if group is None:
            return
        remaining, reset_ms = parse_limit_headers(headers)
        if remaining is None:
            return
        limit = self._limit(group)
        if remaining >= limit:
            # the window never has more than `limit` free, so there is nothing to lower, and only
            # "0 remaining" backs off: skip the store's round trip (most answers, when not busy)
            return
        self._observe(
            self._key(account_id, group), remaining, reset_ms or 0, limit, int(self._clock() * 1000)
        )

    def back_off(self, account_id: str, path: str, until: float) -> None:
        group = group_for(path)
        if group is None:
            return
        now_ms = int(self._clock() * 1000)
        until_ms = math.ceil(until * 1000)
        if until_ms > now_ms:
            logger.warning(
                "rate limited: %s of account %s paused for %.2f s",
                group.name,
                account_id,
                (until_ms - now_ms) / 1000.0,
            )
            self._set_back_off(self._key(account_id, group), until_ms, now_ms)


# ------------------------------------------------------------------------------------------ Redis

# KEYS: [1] the grants of the window (zset, score = ms, member "<ms>:<seq>:<units>"), [2] the back-off
# (until, ms), [3] a hash: `seq` (member uniqueness) and `t` (units left at the last use: metrics)
_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local until_ms = tonumber(redis.call('GET', KEYS[2]) or '0')
if until_ms > now then
  return {-1, until_ms - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local grants = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #grants, 2 do
  used = used + tonumber(string.match(grants[i], ':(%d+)$'))
end
if used + cost <= limit or used == 0 then
  local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
  redis.call('ZADD', KEYS[1], now, now .. ':' .. seq .. ':' .. cost)
  redis.call('HSET', KEYS[3], 't', tostring(math.max(0, limit - used - cost)))
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  redis.call('PEXPIRE', KEYS[3], window + 1000)
  return {1, 0}
end
local need = math.min(cost, limit)
local free = limit - used
for i = 1, #grants, 2 do
  free = free + tonumber(string.match(grants[i], ':(%d+)$'))
  if free >= need then
    return {0, math.max(1, tonumber(grants[i + 1]) + window - now)}
  end
end
return {0, math.max(1, tonumber(grants[#grants]) + window - now)}
"""

# the exchange says fewer units remain than the window has free: take the difference now
_OBSERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local remaining = tonumber(ARGV[4])
local reset = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local grants = redis.call('ZRANGE', KEYS[1], 0, -1)
local used = 0
for i = 1, #grants do
  used = used + tonumber(string.match(grants[i], ':(%d+)$'))
end
local extra = limit - used - math.max(0, remaining)
if extra > 0 then
  -- stamped to leave the window when the exchange's own window resets
  local at = now
  if reset > now then
    at = math.min(now, reset - window)
  end
  local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
  redis.call('ZADD', KEYS[1], at, at .. ':' .. seq .. ':' .. extra)
  redis.call('HSET', KEYS[3], 't', tostring(math.max(0, remaining)))
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  redis.call('PEXPIRE', KEYS[3], window + 1000)
end
if remaining <= 0 and reset > now then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  if reset > cur then
    redis.call('SET', KEYS[2], tostring(reset), 'PX', reset - now)
  end
end
return 1
"""

_BACK_OFF = """
local until_ms = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > cur and until_ms > now then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', until_ms - now)
end
return 1
"""


class RedisTokenBucket(_BucketLimiter):
    """The fleet-wide bucket: state in Redis, every change in one atomic Lua script."""

    def __init__(
        self,
        redis: Any,
        settings: BybitOptions,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = MAX_WAIT_S,
        prefix: str = keys.PREFIX,
    ) -> None:
        super().__init__(settings, clock=clock, sleep=sleep, max_wait_s=max_wait_s)
        self._redis = redis
        self._prefix = prefix
        self._take_script = redis.register_script(_TAKE)
        self._observe_script = redis.register_script(_OBSERVE)
        self._back_off_script = redis.register_script(_BACK_OFF)

    def _keys(self, key: str) -> list[str]:
        return list(keys.rate_limit(self._prefix, key))

    def _take(self, key: str, limit: int, cost: int, now_ms: int) -> tuple[int, int]:
        try:
            status, wait = self._take_script(keys=self._keys(key), args=[now_ms, WINDOW_MS, limit, cost])
        except Exception as exc:  # redis down: let the call through, the exchange still limits
            logger.warning("rate limiter unavailable (%s): call not throttled", type(exc).__name__)
            return 1, 0
        return int(status), int(wait)

    def _observe(self, key: str, remaining: int, reset_ms: int, limit: int, now_ms: int) -> None:
        try:
            self._observe_script(keys=self._keys(key), args=[now_ms, WINDOW_MS, limit, remaining, reset_ms])
        except Exception as exc:
            logger.warning("rate limiter unavailable (%s): headers not recorded", type(exc).__name__)

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        try:
            self._back_off_script(keys=[self._keys(key)[1]], args=[until_ms, now_ms])
        except Exception as exc:
            logger.warning("rate limiter unavailable (%s): back-off not shared", type(exc).__name__)


class BucketLevel(NamedTuple):
    """One (account, group) bucket as /metrics shows it."""

    account: str
    group: str
    units_left: float | None  # units free in the window at its last use (None: not used lately)
    backoff_s: float | None  # seconds left of a back-off (None: none recorded)


def bucket_levels(
    redis: Any, accounts: Iterable[str], *, now: float, prefix: str = keys.PREFIX
) -> list[BucketLevel]:
    """The level of every (account, group) bucket of these accounts, one round trip: the read side
    of `RedisTokenBucket` (whose Lua scripts write these keys)."""
    groups = sorted({g.name for g in GROUPS.values()})
    pairs = [(a, g) for a in sorted(accounts) for g in groups]
    if not pairs:
        return []
    pipe = redis.pipeline(transaction=False)
    for account, group in pairs:
        bucket = keys.rate_limit(prefix, keys.rate_limit_bucket(account, group))
        pipe.hget(bucket.level, "t")
        pipe.get(bucket.until)
    replies = iter(pipe.execute())
    now_ms = now * 1000
    out = []
    for account, group in pairs:
        level, until = next(replies), next(replies)
        try:
            units = None if level is None else float(level)
        except ValueError:
            units = None
        backoff = None if until is None else max(0.0, (float(until) - now_ms) / 1000)
        out.append(BucketLevel(account, group, units, backoff))
    return out


# ----------------------------------------------------------------------------------- in process


class LocalTokenBucket(_BucketLimiter):
    """The same rolling windows in process memory (one process only: the CLI, or a Redis-less run)."""

    def __init__(
        self,
        settings: BybitOptions,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        super().__init__(settings, clock=clock, sleep=sleep, max_wait_s=max_wait_s)
        self._lock = threading.Lock()
        self._grants: dict[str, deque[tuple[int, int]]] = {}  # key → (ms, units), oldest first
        self._until: dict[str, int] = {}

    def _window(self, key: str, now_ms: int) -> tuple[deque[tuple[int, int]], int]:
        grants = self._grants.setdefault(key, deque())
        while grants and grants[0][0] <= now_ms - WINDOW_MS:
            grants.popleft()
        return grants, sum(units for _, units in grants)

    def _take(self, key: str, limit: int, cost: int, now_ms: int) -> tuple[int, int]:
        with self._lock:
            until = self._until.get(key, 0)
            if until > now_ms:
                return -1, until - now_ms
            grants, used = self._window(key, now_ms)
            if used + cost <= limit or used == 0:
                grants.append((now_ms, cost))
                return 1, 0
            need, free = min(cost, limit), limit - used
            for at, units in grants:
                free += units
                if free >= need:
                    return 0, max(1, at + WINDOW_MS - now_ms)
            return 0, max(1, grants[-1][0] + WINDOW_MS - now_ms)

    def _observe(self, key: str, remaining: int, reset_ms: int, limit: int, now_ms: int) -> None:
        with self._lock:
            grants, used = self._window(key, now_ms)
            extra = limit - used - max(0, remaining)
            if extra > 0:
                # stamped to leave the window when the exchange's own window resets
                at = min(now_ms, reset_ms - WINDOW_MS) if reset_ms > now_ms else now_ms
                self._grants[key] = deque(sorted([*grants, (at, extra)]))
            if remaining <= 0 and reset_ms > now_ms:
                self._until[key] = max(self._until.get(key, 0), reset_ms)

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        with self._lock:
            self._until[key] = max(self._until.get(key, 0), until_ms)
