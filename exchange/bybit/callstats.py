"""Exchange calls counted for the whole fleet: per minute, per account and endpoint, in Redis.

Every worker process adds to the same per-minute hash (`<prefix>:calls:<minute>`, field
`<account>|<path>` and `<account>|<path>|err`), kept two hours; the dashboard, /metrics and the
benchmark read calls per minute from it. A process counts in memory and adds its counts to Redis
at most once every `FLUSH_S` (in the call that finds them that old, and when the process exits):
one round trip a second instead of one per exchange call, which a burst of stop calls would wait
on. So the fleet's figure is up to `FLUSH_S` behind. Without Redis, or while it fails, counts stay
in the process.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from config import keys

KEEP_S = 7200
FLUSH_S = 1.0  # a process adds its counts to Redis at most this often


class CallStats:
    def __init__(
        self, redis: Any = None, *, prefix: str = keys.PREFIX, clock: Callable[[], float] = time.time
    ):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._local: dict[int, Counter[str]] = {}  # minute → counts kept here (no Redis)
        self._pending: Counter[tuple[int, str]] = Counter()  # (minute, field) → not in Redis yet
        self._flushed_at: float | None = None  # the first count starts the first second
        self._lock = threading.Lock()
        self._flushed_at_exit = False  # hooked once this instance has counted something

    def _key(self, minute: int) -> str:
        return keys.calls(self.prefix, minute)

    def record(self, account_id: str | None, path: str, ok: bool) -> None:
        now = self.clock()
        minute = int(now // 60)
        field = f"{account_id or '-'}|{path}"
        counts = Counter({(minute, field): 1})
        if not ok:
            counts[(minute, field + "|err")] = 1
        with self._lock:
            if self.redis is None:
                self._keep(counts, minute)
                return
            self._pending.update(counts)
            if self._flushed_at is None:
                self._flushed_at = now
            if not self._flushed_at_exit:  # a worker's last second of calls; a reader (the
                self._flushed_at_exit = True  # dashboard's, one per request) never hooks itself
                atexit.register(self.flush)
            due = now - self._flushed_at >= FLUSH_S
        if due:
            self.flush()

    def flush(self) -> None:
        """Add the counts not in Redis yet to it (one round trip); if Redis fails they stay in the
        process. Counting must never break a call: nothing raises."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
            self._flushed_at = self.clock()
        if not pending or self.redis is None:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (minute, field), n in pending.items():
                pipe.hincrby(self._key(minute), field, n)
            for minute in {m for m, _ in pending}:
                pipe.expire(self._key(minute), KEEP_S)
            pipe.execute()
        except Exception:
            with self._lock:
                self._keep(pending, int(self.clock() // 60))

    def _keep(self, counts: Mapping[tuple[int, str], int], minute: int) -> None:
        """Counts kept in the process (no Redis, or it failed); the caller holds the lock."""
        for (m, field), n in counts.items():
            self._local.setdefault(m, Counter())[field] += n
        for old in [m for m in self._local if m < minute - KEEP_S // 60]:
            del self._local[old]

    def minute(self, minute: int) -> dict[str, int]:
        """{"<account>|<path>": calls, "<account>|<path>|err": errors} of one minute."""
        return self.minutes([minute])[0]

    def minutes(self, minutes: Iterable[int]) -> list[dict[str, int]]:
        """`minute` of each of these minutes, in order: one round trip."""
        span = list(minutes)
        if self.redis is not None:
            self.flush()  # this process's own counts are read back too
            pipe = self.redis.pipeline(transaction=False)
            for m in span:
                pipe.hgetall(self._key(m))
            return [{k: int(v) for k, v in raw.items()} for raw in pipe.execute()]
        with self._lock:
            return [dict(self._local.get(m, {})) for m in span]

    def per_minute(self, *, minutes: int = 5) -> list[tuple[int, int]]:
        """(minute, calls) for the last `minutes` complete minutes, oldest first (errors excluded)."""
        now = int(self.clock() // 60)
        out = []
        for m in range(now - minutes, now):
            out.append((m, sum(v for k, v in self.minute(m).items() if not k.endswith("|err"))))
        return out

    def totals(self, *, since_minute: int, until_minute: int | None = None) -> dict[str, int]:
        """Calls per "<account>|<path>" over [since, until] minutes (inclusive)."""
        until = until_minute if until_minute is not None else int(self.clock() // 60)
        total: Counter[str] = Counter()
        for m in range(since_minute, until + 1):
            total.update({k: v for k, v in self.minute(m).items() if not k.endswith("|err")})
        return dict(total)
