"""Client-side rate limiting per (account, endpoint group), shared by every worker process.

Bybit limits each UID per endpoint over a rolling second (order create/amend/cancel 10/s each, the
batch endpoints 10 orders/s each counted per item, the private reads 50/s each). A fleet of worker
processes must stay under those limits together, so the budget lives in Redis: one token bucket per
(account, group), refilled continuously at `rate × rate_headroom` per second with one second's worth
of capacity, taken atomically by a Lua script. A batch takes one token per order item.

When the bucket is empty the caller waits, but only a short bounded time (`max_wait_s`, default
0.5 s, sleeping through the injected `sleep`); if the wait would be longer it gets
`BackOff(until=…)` at once and sends nothing. The same happens while a back-off is recorded: after a
10006 / HTTP 403 / 429 the client calls `back_off(account, path, until)` and every process stops
calling that (account, group) until the reset time, which is shared in Redis.

Every response's `X-Bapi-Limit-Status` (remaining) and `X-Bapi-Limit-Reset-Timestamp` are fed to
`observe`: the bucket never holds more tokens than Bybit says remain, and "0 remaining" records a
back-off until the reset.

`LocalTokenBucket` is the same bucket in process memory for code paths without Redis (CLI, tests).
If Redis fails, the Redis bucket lets the call through (logged): the exchange still enforces its own
limit, and a stop-loss amend must not wait for the rate-limit bookkeeping.

A Celery `rate_limit` is not this mechanism: it limits task starts per worker, not calls per account.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from config.settings import Settings
from core.errors import BackOff

logger = logging.getLogger(__name__)

READ, TRADE, BATCH = "read", "trade", "batch"


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


def rate_per_s(group: Group, settings: Settings) -> float:
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
    def acquire(self, account_id: str, path: str, cost: int = 1) -> None:
        """Take `cost` tokens of the (account, group) bucket, waiting at most a short bounded time;
        raises BackOff when the budget is exhausted or a back-off is recorded."""
        ...

    def observe(self, account_id: str, path: str, headers: Mapping[str, str]) -> None:
        """Feed the exchange's rate-limit headers of one response."""
        ...

    def back_off(self, account_id: str, path: str, until: float) -> None:
        """Send nothing to this (account, group) before `until` (epoch seconds), in every process."""
        ...


class _BucketLimiter:
    """The shared wait-or-BackOff policy; subclasses provide the atomic bucket primitives."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = 0.5,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.max_wait_s = max_wait_s

    # primitives -------------------------------------------------------------------------------
    def _take(self, key: str, rate_per_ms: float, cap: float, cost: int, now_ms: int) -> tuple[int, int]:
        """(1, 0) taken; (0, wait_ms) not enough tokens; (-1, wait_ms) backing off."""
        raise NotImplementedError

    def _observe(self, key: str, remaining: int, reset_ms: int, cap: float, rate_per_ms: float, now_ms: int):
        raise NotImplementedError

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        raise NotImplementedError

    # policy -----------------------------------------------------------------------------------
    @staticmethod
    def _key(account_id: str, group: Group) -> str:
        return f"{account_id}:{group.name}"

    def _spec(self, group: Group) -> tuple[float, float]:
        rate = rate_per_s(group, self._settings)
        return rate / 1000.0, max(1.0, rate)  # tokens per ms, capacity = one second's worth

    def acquire(self, account_id: str, path: str, cost: int = 1) -> None:
        group = group_for(path)
        if group is None:
            return
        if cost < 1:
            raise ValueError(f"cost must be ≥ 1 (got {cost})")
        rate_ms, cap = self._spec(group)
        key = self._key(account_id, group)
        waited = 0.0
        while True:
            now = self._clock()
            status, wait_ms = self._take(key, rate_ms, cap, cost, int(now * 1000))
            if status == 1:
                return
            wait = max(wait_ms, 1) / 1000.0
            if waited + wait > self.max_wait_s:
                why = "backing off after a rate-limit answer" if status == -1 else "rate budget used up"
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
        rate_ms, cap = self._spec(group)
        if remaining >= cap:
            # the bucket never holds more than `cap`, so there is nothing to lower, and only
            # "0 remaining" backs off: skip the store's round trip (most answers, when not busy)
            return
        self._observe(
            self._key(account_id, group), remaining, reset_ms or 0, cap, rate_ms, int(self._clock() * 1000)
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

_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local until_ms = tonumber(redis.call('GET', KEYS[2]) or '0')
if until_ms > now then
  return {-1, until_ms - now}
end
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) * rate)
  ts = now
end
local need = math.min(cost, cap)
local taken = 0
if tokens >= need then
  tokens = tokens - cost
  taken = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
if taken == 1 then
  return {1, 0}
end
return {0, math.max(1, math.ceil((need - tokens) / rate))}
"""

_OBSERVE = """
local now = tonumber(ARGV[1])
local remaining = tonumber(ARGV[2])
local reset = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) * rate)
  ts = now
end
if remaining < tokens then
  tokens = remaining
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
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
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = 0.5,
        prefix: str = "tpsl:rl:",
    ) -> None:
        super().__init__(settings, clock=clock, sleep=sleep, max_wait_s=max_wait_s)
        self._redis = redis
        self._prefix = prefix
        self._take_script = redis.register_script(_TAKE)
        self._observe_script = redis.register_script(_OBSERVE)
        self._back_off_script = redis.register_script(_BACK_OFF)

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}{key}", f"{self._prefix}{key}:until"]

    def _take(self, key: str, rate_per_ms: float, cap: float, cost: int, now_ms: int) -> tuple[int, int]:
        try:
            status, wait = self._take_script(keys=self._keys(key), args=[now_ms, rate_per_ms, cap, cost])
        except Exception as exc:  # redis down: let the call through, the exchange still limits
            logger.warning("rate limiter unavailable (%s): call not throttled", type(exc).__name__)
            return 1, 0
        return int(status), int(wait)

    def _observe(self, key: str, remaining: int, reset_ms: int, cap: float, rate_per_ms: float, now_ms: int):
        try:
            self._observe_script(keys=self._keys(key), args=[now_ms, remaining, reset_ms, cap, rate_per_ms])
        except Exception as exc:
            logger.warning("rate limiter unavailable (%s): headers not recorded", type(exc).__name__)

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        try:
            self._back_off_script(keys=self._keys(key)[1:], args=[until_ms, now_ms])
        except Exception as exc:
            logger.warning("rate limiter unavailable (%s): back-off not shared", type(exc).__name__)


# ----------------------------------------------------------------------------------- in process


class LocalTokenBucket(_BucketLimiter):
    """The same buckets in process memory (one process only: the CLI, or a Redis-less run)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = 0.5,
    ) -> None:
        super().__init__(settings, clock=clock, sleep=sleep, max_wait_s=max_wait_s)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, int]] = {}  # key → (tokens, ts_ms)
        self._until: dict[str, int] = {}

    def _refill(self, key: str, cap: float, rate_per_ms: float, now_ms: int) -> tuple[float, int]:
        tokens, ts = self._buckets.get(key, (cap, now_ms))
        if now_ms > ts:
            tokens, ts = min(cap, tokens + (now_ms - ts) * rate_per_ms), now_ms
        return tokens, ts

    def _take(self, key: str, rate_per_ms: float, cap: float, cost: int, now_ms: int) -> tuple[int, int]:
        with self._lock:
            until = self._until.get(key, 0)
            if until > now_ms:
                return -1, until - now_ms
            tokens, ts = self._refill(key, cap, rate_per_ms, now_ms)
            need = min(cost, cap)
            if tokens >= need:
                self._buckets[key] = (tokens - cost, ts)
                return 1, 0
            self._buckets[key] = (tokens, ts)
            return 0, max(1, math.ceil((need - tokens) / rate_per_ms))

    def _observe(self, key: str, remaining: int, reset_ms: int, cap: float, rate_per_ms: float, now_ms: int):
        with self._lock:
            tokens, ts = self._refill(key, cap, rate_per_ms, now_ms)
            self._buckets[key] = (min(tokens, float(remaining)), ts)
            if remaining <= 0 and reset_ms > now_ms:
                self._until[key] = max(self._until.get(key, 0), reset_ms)

    def _set_back_off(self, key: str, until_ms: int, now_ms: int) -> None:
        with self._lock:
            self._until[key] = max(self._until.get(key, 0), until_ms)
