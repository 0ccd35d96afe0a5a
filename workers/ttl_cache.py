"""The dashboard's read cache in Redis: per-component TTLs, fleet-wide hit/miss counts, single-flight.

    cache = TTLCache(rt.redis, rt.settings, prefix="tpsl")
    positions = cache.get_or_load("positions", "main", load_positions, account="main")

Components and their TTLs (settings, seconds): account 60, positions 15, orders 15, stats 300,
market 180, insights 1800; more can be named with `extra_ttls` (the dashboard adds `history`).

- A hit is one round trip: a Lua script GETs the value and counts the hit in the same call.
- A miss is single-flight across processes (workers/single_flight.py): one caller runs the loader,
  the others wait for its value at most `wait_s`; an error is never cached.
- Counts live in the hash `<p>:cache:stats` (fields `<component>:hit|miss|wait`), so every web
  process adds to the same figures. miss = the loader ran; wait = served after waiting for another
  caller's loader (counted as a hit too: the backend was not asked).
- `invalidate_account(id)` drops the account's `account`, `positions` and `orders` entries, every
  entry stored with `account=id`, and every fleet-wide entry (`account=FLEET`): the workers call it
  for each account that had a critical event (a fill, a stop move, a close changes all of those).
- `cache_enabled=False` (the rollback switch): every read goes to the loader and counts as a miss.
- At most once per `stats_period_s` (fleet-wide, through a Redis key) one process logs the hit rates.

Values are JSON (persistence.jsonable: Decimals written as strings) unless the caller passes
encode/decode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from redis import Redis

from config import keys
from config.settings import Settings
from persistence.jsonable import dumps_bytes
from workers.single_flight import Flight, load_once

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPONENTS: tuple[str, ...] = ("account", "positions", "orders", "stats", "market", "insights")
ACCOUNT_COMPONENTS: tuple[str, ...] = ("account", "positions", "orders")  # keyed by account id
FLEET = "*"  # tag of entries that any account's critical event makes stale (fleet-wide listings)

HIT, MISS, WAIT = "hit", "miss", "wait"

# GET the value and, when there is one, count the hit: one round trip for a hit.
_READ = """
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return v
"""

# DEL the fixed keys (ARGV[1] of them come first in KEYS), then every member of the index sets that
# follow, and the index sets themselves. Returns the number of keys deleted. (One Redis, no Cluster:
# the members are keys not declared in KEYS, like the registry's scripts assume.)
_INVALIDATE = """
local fixed = tonumber(ARGV[1])
local todo = {}
for i = 1, #KEYS do
  if i > fixed then
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
      table.insert(todo, member)
    end
  end
  table.insert(todo, KEYS[i])
end
local n = 0
for i = 1, #todo, 500 do
  n = n + redis.call('DEL', unpack(todo, i, math.min(i + 499, #todo)))
end
return n
"""


def component_ttls(settings: Settings) -> dict[str, float]:
    """The TTL of each settings component, seconds."""
    return {
        "account": settings.cache_ttl_account_s,
        "positions": settings.cache_ttl_positions_s,
        "orders": settings.cache_ttl_orders_s,
        "stats": settings.cache_ttl_stats_s,
        "market": settings.cache_ttl_market_s,
        "insights": settings.cache_ttl_insights_s,
    }


def _seconds(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ValueError(f"{field}: must be a finite number of seconds > 0 (got {value!r})")
    return float(value)


def _name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c == ":" for c in value):
        raise ValueError(f"{field}: must be a non-empty string without spaces or ':' (got {value!r})")
    return value


def _key_part(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"key: must be a non-empty string without spaces (got {value!r})")
    return value


class TTLCache:
    """See the module docstring. Safe to share between threads; each process builds its own.

    `wait_s`: longest a caller waits for another caller's loader; `lock_ttl_s`: lifetime of the
    loader lock (a loader that died frees it after this); `poll_s`: how often a waiter looks.
    `clock` (monotonic, for waiting) and `wall_clock` (epoch, for the log period) and `sleep` are
    injectable for tests."""

    def __init__(
        self,
        redis_client: Redis,
        settings: Settings,
        prefix: str = keys.PREFIX,
        *,
        extra_ttls: Mapping[str, float] | None = None,
        wait_s: float = 2.0,
        lock_ttl_s: float = 5.0,
        poll_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.prefix = _name("prefix", prefix)
        ttls = component_ttls(settings)
        for component, ttl in (extra_ttls or {}).items():
            ttls[_name("component", component)] = ttl
        self._ttls = {c: _seconds(f"ttl of {c}", t) for c, t in ttls.items()}
        self._index_ttl_ms = round(max(self._ttls.values()) * 1000) + 60_000
        self.wait_s = _seconds("wait_s", wait_s)
        self.lock_ttl_s = _seconds("lock_ttl_s", lock_ttl_s)
        self.poll_s = _seconds("poll_s", poll_s)
        self._flight = Flight(self.wait_s, self.lock_ttl_s, self.poll_s, clock, sleep)
        self._wall = wall_clock
        self._last_log = wall_clock()
        self._read = redis_client.register_script(_READ)
        self._invalidate = redis_client.register_script(_INVALIDATE)

    # ------------------------------------------------------------------------------------- keys

    @property
    def enabled(self) -> bool:
        return self.settings.cache_enabled

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self._ttls)

    def ttl_for(self, component: str) -> float:
        try:
            return self._ttls[component]
        except KeyError:
            known = ", ".join(self._ttls)
            raise ValueError(f"component: {component!r} is not one of {known}") from None

    def key(self, component: str, key: str) -> str:
        return keys.cache(self.prefix, _name("component", component), _key_part(key))

    def index_key(self, account: str) -> str:
        return keys.cache_index(self.prefix, _key_part(account))

    @property
    def stats_key(self) -> str:
        return keys.cache_stats(self.prefix)

    # ------------------------------------------------------------------------------------- read

    def get_or_load(
        self,
        component: str,
        key: str,
        loader: Callable[[], T],
        ttl_s: float | None = None,
        *,
        account: str | None = None,
        encode: Callable[[T], bytes | str] = dumps_bytes,
        decode: Callable[[bytes | str], T] = orjson.loads,
    ) -> T:
        """The cached value, else the loader's (stored for `ttl_s`, default the component's TTL).
        `account`: tag the entry so `invalidate_account(account)` drops it (FLEET: any account).
        Loader errors propagate to the caller; nothing is stored for them."""
        ttl = self.ttl_for(component) if ttl_s is None else _seconds("ttl_s", ttl_s)
        vkey = self.key(component, key)
        if account is not None:
            _key_part(account)
        if not self.settings.cache_enabled:
            self._count(component, MISS)
            return decode(encode(loader()))
        cached = self._read(keys=[vkey, self.stats_key], args=[f"{component}:{HIT}"])
        if cached is not None:
            self._maybe_log()
            return decode(cached)
        value = self._single_flight(component, vkey, loader, ttl, account, encode, decode)
        self._maybe_log()
        return value

    def _single_flight(
        self,
        component: str,
        vkey: str,
        loader: Callable[[], T],
        ttl: float,
        account: str | None,
        encode: Callable[[T], bytes | str],
        decode: Callable[[bytes | str], T],
    ) -> T:
        def load() -> T:
            self._count(component, MISS)
            return self._load(vkey, loader, ttl, account, encode, decode)

        value, loaded = load_once(self.redis, vkey, self._flight, found=decode, load=load)
        if not loaded:
            self._count(component, HIT, WAIT)
        return value

    def _load(
        self,
        vkey: str,
        loader: Callable[[], T],
        ttl: float,
        account: str | None,
        encode: Callable[[T], bytes | str],
        decode: Callable[[bytes | str], T],
    ) -> T:
        data = encode(loader())
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(vkey, data, px=max(1, round(ttl * 1000)))
        if account is not None:
            idx = self.index_key(account)
            pipe.sadd(idx, vkey)
            pipe.pexpire(idx, self._index_ttl_ms)
        pipe.execute()
        return decode(data)  # what a hit would return: the same types on a miss and a hit

    # ------------------------------------------------------------------------------ invalidation

    def invalidate(self, component: str, key: str) -> bool:
        """Drop one entry. True if it was there."""
        return bool(self.redis.delete(self.key(component, key)))

    def invalidate_account(self, account_id: str) -> int:
        """Drop the account's account/positions/orders entries, every entry tagged with the account
        and every fleet-wide entry. One atomic round trip. Returns the keys deleted."""
        fixed = [self.key(c, account_id) for c in ACCOUNT_COMPONENTS]
        indexes = [self.index_key(account_id)]
        if account_id != FLEET:
            indexes.append(self.index_key(FLEET))
        return int(self._invalidate(keys=[*fixed, *indexes], args=[len(fixed)]))

    def invalidate_accounts(self, account_ids: Any) -> int:
        """`invalidate_account` for each distinct id."""
        return sum(self.invalidate_account(a) for a in sorted(set(account_ids)))

    # ------------------------------------------------------------------------------------ counts

    def _count(self, component: str, *what: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for w in what:
                pipe.hincrby(self.stats_key, f"{component}:{w}", 1)
            pipe.execute()
        except Exception as exc:  # counting must never fail a read
            log.warning("cache counters not updated: %s", type(exc).__name__)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per component (every configured one, and any other counted): hits, misses, waits, reads,
        hit_rate (None before the first read). Fleet-wide."""
        raw = cast("dict[str, str]", self.redis.hgetall(self.stats_key))  # decoded text
        counts: dict[str, dict[str, int]] = {c: {HIT: 0, MISS: 0, WAIT: 0} for c in self._ttls}
        for field, value in raw.items():
            component, _, what = field.rpartition(":")
            if component and what in (HIT, MISS, WAIT):
                counts.setdefault(component, {HIT: 0, MISS: 0, WAIT: 0})[what] = int(value)
        out: dict[str, dict[str, Any]] = {}
        for component, c in counts.items():
            reads = c[HIT] + c[MISS]
            out[component] = {
                "hits": c[HIT],
                "misses": c[MISS],
                "waits": c[WAIT],
                "reads": reads,
                "hit_rate": round(c[HIT] / reads, 4) if reads else None,
                "ttl_s": self._ttls.get(component),
            }
        return out

    def reset_stats(self) -> None:
        self.redis.delete(self.stats_key)

    def summary_line(self) -> str:
        parts = []
        for component, s in self.stats().items():
            if s["reads"]:
                parts.append(f"{component} {s['hit_rate'] * 100:.1f}% ({s['hits']}/{s['reads']})")
        state = "" if self.settings.cache_enabled else " [disabled: reading through]"
        return "cache hit rate: " + (", ".join(parts) if parts else "no reads yet") + state

    def _maybe_log(self) -> None:
        """The periodic statistics line: at most once per `stats_period_s` in the whole fleet."""
        now = self._wall()
        period = self.settings.stats_period_s
        if now - self._last_log < period:
            return
        self._last_log = now
        try:
            logged = keys.cache_logged(self.prefix)
            if self.redis.set(logged, "1", nx=True, px=max(1, round(period * 1000))):
                log.info("%s", self.summary_line())
        except Exception as exc:
            log.warning("cache statistics line skipped: %s", type(exc).__name__)


def invalidate_accounts_quietly(rt: Runtime, account_ids: Any) -> None:
    """What the workers call after critical events: drop those accounts' dashboard entries. Never
    raises (the events are safe already; a stale dashboard entry expires by its TTL anyway)."""
    ids = sorted({a for a in account_ids if a})
    if not ids:
        return
    try:
        TTLCache(rt.redis, rt.settings, prefix=getattr(rt, "prefix", "tpsl")).invalidate_accounts(ids)
    except Exception as exc:
        log.warning("dashboard cache not invalidated for %s: %s", ", ".join(ids), type(exc).__name__)
