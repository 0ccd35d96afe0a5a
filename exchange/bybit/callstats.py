"""Exchange calls counted for the whole fleet: per minute, per account and endpoint, in Redis.

Every worker process adds to the same per-minute hash (`<prefix>:calls:<minute>`, field
`<account>|<path>` and `<account>|<path>|err`), kept two hours; the dashboard, /metrics and the
benchmark read calls per minute from it. Without Redis, counts stay in the process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from config import keys

KEEP_S = 7200


class CallStats:
    def __init__(
        self, redis: Any = None, *, prefix: str = keys.PREFIX, clock: Callable[[], float] = time.time
    ):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._local: dict[int, Counter[str]] = {}
        self._lock = threading.Lock()

    def _key(self, minute: int) -> str:
        return keys.calls(self.prefix, minute)

    def record(self, account_id: str | None, path: str, ok: bool) -> None:
        minute = int(self.clock() // 60)
        field = f"{account_id or '-'}|{path}"
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hincrby(self._key(minute), field, 1)
                if not ok:
                    pipe.hincrby(self._key(minute), field + "|err", 1)
                pipe.expire(self._key(minute), KEEP_S)
                pipe.execute()
                return
            except Exception:  # counting must never break a call
                pass
        with self._lock:
            c = self._local.setdefault(minute, Counter())
            c[field] += 1
            if not ok:
                c[field + "|err"] += 1
            for old in [m for m in self._local if m < minute - KEEP_S // 60]:
                del self._local[old]

    def minute(self, minute: int) -> dict[str, int]:
        """{"<account>|<path>": calls, "<account>|<path>|err": errors} of one minute."""
        return self.minutes([minute])[0]

    def minutes(self, minutes: Iterable[int]) -> list[dict[str, int]]:
        """`minute` of each of these minutes, in order: one round trip."""
        span = list(minutes)
        if self.redis is not None:
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
