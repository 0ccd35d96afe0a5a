"""Pooled HTTP sessions: one `requests.Session` per process and exchange host.

- `HTTPAdapter` with `pool_maxsize = settings.pool_per_host` (blocking: a thread waits for a free
  connection, at most the connect timeout, rather than opening an extra one that would be thrown away),
  and a process-wide cap of `settings.pool_total` open connections across all hosts
  (`ConnectionBudget`: when it is reached, an idle connection of any host is closed first).
- Keep-alive: a connection idle longer than `settings.keepalive_s` is closed before reuse (last use is
  stamped when a connection goes back to the pool), and the periodic health check closes the ones
  that sit idle past it.
- Timeouts: connect 8 s / read 18 s per attempt, and a 25 s budget per call, retries included: each
  attempt's timeout is cut to what is left of the budget, and no retry starts without enough left.
- TCP_NODELAY and SO_KEEPALIVE on every socket (socket options of the adapter's pool manager).
- urllib3 `Retry` for GETs only: connection errors, read errors and 502/503/504, with a short
  backoff. A POST is sent at most once by the transport, whatever happens; an order is retried only
  by the caller, through its orderLinkId.
- After `settings.session_recreate_after` consecutive transport failures the session is rebuilt
  (new pools, new connections); a health check runs every `settings.session_health_check_s`.
- Statistics per host: calls, attempts, new vs reused connections (new ones are counted where
  urllib3 opens a socket), idle expiries, errors by kind, a latency histogram.

The process registry (`get_session_pool()`) is created lazily, never at import time: urllib3 pools
are not fork-safe. Celery creates it in `worker_process_init`; a forked child that did not call
`reset_for_fork()` gets a fresh registry anyway (the pid is checked).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import EmptyPoolError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from config.settings import Settings
from exchange.bybit.errors import transport_kind

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
LATENCY_BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
MIN_ATTEMPT_S = 0.5  # no retry starts with less of the call's budget left than this

_call = threading.local()  # the running call's deadline (time.monotonic), read by retries/timeouts


def _remaining() -> float | None:
    deadline = getattr(_call, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


# ------------------------------------------------------------------------------------- retries


class BudgetRetry(Retry):
    """urllib3 Retry that (1) never retries anything but the allowed methods (GET) — not even a
    connection error of a POST — and (2) stops when the call's total budget cannot fit another attempt."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if method is None or method.upper() not in (self.allowed_methods or ()):
            if error is not None:
                if self._is_read_error(error):
                    raise error
                raise MaxRetryError(_pool, url, error) from error  # type: ignore[arg-type]
            raise MaxRetryError(_pool, url, None)  # type: ignore[arg-type]
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        left = _remaining()
        if left is not None and left - new.get_backoff_time() < MIN_ATTEMPT_S:
            reason = error or Exception("call budget spent")
            raise MaxRetryError(_pool, url, reason) from error  # type: ignore[arg-type]
        return new


def default_retry() -> BudgetRetry:
    return BudgetRetry(
        total=2,
        connect=2,
        read=1,
        status=2,
        other=0,
        redirect=0,
        backoff_factor=0.05,
        backoff_max=1.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        raise_on_redirect=False,
        respect_retry_after_header=False,
    )


# -------------------------------------------------------------------------------------- stats


class LatencyHistogram:
    """Fixed buckets (ms); percentiles are read as the upper bound of the bucket they fall in."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS_MS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum_ms = 0.0

    def add(self, ms: float) -> None:
        i = 0
        while i < len(self.bounds) and ms > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.count += 1
        self.sum_ms += ms

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def as_dict(self) -> dict[str, Any]:
        buckets = {f"le_{b:g}": c for b, c in zip(self.bounds, self.counts, strict=False)}
        buckets["le_inf"] = self.counts[-1]
        return {
            "count": self.count,
            "sum_ms": round(self.sum_ms, 3),
            "mean_ms": round(self.sum_ms / self.count, 3) if self.count else None,
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
            "buckets": buckets,
        }


class SessionStats:
    """Counters of one host's session (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0  # PooledSession.request calls
        self.attempts = 0  # HTTP exchanges sent (a retried GET counts each attempt)
        self.new_connections = 0  # sockets opened
        self.expired_idle = 0  # connections closed for idling past keep-alive
        self.recreations = 0
        self.consecutive_failures = 0
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def observe_latency(self, ms: float) -> None:
        with self._lock:
            self.latency.add(ms)

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures = 0

    def failed(self, kind: str) -> int:
        """Count a transport failure; returns the number of consecutive ones."""
        with self._lock:
            self.errors[kind] += 1
            self.consecutive_failures += 1
            return self.consecutive_failures

    def recreated(self) -> None:
        with self._lock:
            self.recreations += 1
            self.consecutive_failures = 0

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            reused = max(self.attempts - self.new_connections, 0)
            return {
                "calls": self.calls,
                "attempts": self.attempts,
                "new_connections": self.new_connections,
                "reused_connections": reused,
                "reuse_rate": round(reused / self.attempts, 4) if self.attempts else None,
                "expired_idle": self.expired_idle,
                "recreations": self.recreations,
                "consecutive_failures": self.consecutive_failures,
                "errors": dict(self.errors),
                "latency": self.latency.as_dict(),
            }


# --------------------------------------------------------------------------- connection budget


class ConnectionBudget:
    """At most `limit` open connections in the whole process, across every host's pool."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"pool_total must be ≥ 1 (got {limit})")
        self.limit = limit
        self._cond = threading.Condition(threading.RLock())
        self._held: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def register_pool(self, pool: Any) -> None:
        with self._cond:
            self._pools.add(pool)

    @property
    def open_connections(self) -> int:
        with self._cond:
            return len(self._held)

    def acquire(self, conn: Any, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                if conn in self._held or len(self._held) < self.limit:
                    self._held.add(conn)
                    return
                if self._evict_one_idle():
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NewConnectionError(
                        conn, f"connection budget of {self.limit} open connections exhausted"
                    )
                self._cond.wait(left)

    def release(self, conn: Any) -> None:
        with self._cond:
            if conn in self._held:
                self._held.discard(conn)
                self._cond.notify()

    def _evict_one_idle(self) -> bool:
        """Close one idle pooled connection (of any host) to make room. Holding the pool queue's
        mutex while closing means no thread can take that connection meanwhile; a later taker
        sees it dropped and reconnects."""
        for pool in list(self._pools):
            q = getattr(pool, "pool", None)
            if q is None:
                continue
            with q.mutex:
                for conn in q.queue:
                    if conn is not None and getattr(conn, "sock", None) is not None:
                        conn.close()  # releases its slot (re-entrant lock)
                        return True
        return False

    def close_idle(self, older_than_s: float, now: float, owner: Any = None) -> int:
        """Close pooled connections idle for longer than `older_than_s` (health check); only those
        of pools reporting to `owner` (a SessionStats) when given."""
        closed = 0
        for pool in list(self._pools):
            q = getattr(pool, "pool", None)
            if q is None or (owner is not None and pool.tracker.stats is not owner):
                continue
            with q.mutex:
                for conn in q.queue:
                    last = getattr(conn, "_tpsl_last_used", None)
                    idle = conn is not None and conn.sock is not None and last is not None
                    if idle and now - last > older_than_s:
                        conn.close()
                        closed += 1
        return closed


# ------------------------------------------------------------------------ tracked connections


class _Tracker:
    """What a host's pools and connections report to (one per PooledSession generation)."""

    def __init__(
        self,
        stats: SessionStats,
        budget: ConnectionBudget,
        *,
        keepalive_s: float,
        pool_timeout_s: float,
        idle_clock: Callable[[], float],
    ) -> None:
        self.stats = stats
        self.budget = budget
        self.keepalive_s = keepalive_s
        self.pool_timeout_s = pool_timeout_s
        self.idle_clock = idle_clock


class _TrackedConnectionMixin:
    _tpsl_tracker: _Tracker | None = None
    _tpsl_last_used: float | None = None
    timeout: Any
    sock: Any

    def _new_conn(self) -> socket.socket:  # the one place a socket is opened (HTTP and HTTPS)
        tracker = self._tpsl_tracker
        if tracker is None:
            return super()._new_conn()  # type: ignore[misc]
        wait = self.timeout if isinstance(self.timeout, int | float) else tracker.pool_timeout_s
        tracker.budget.acquire(self, wait)
        try:
            sock = super()._new_conn()  # type: ignore[misc]
        except BaseException:
            tracker.budget.release(self)
            raise
        tracker.stats.add(new_connections=1)
        return sock

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            if self._tpsl_tracker is not None:
                self._tpsl_tracker.budget.release(self)


class TrackedHTTPConnection(_TrackedConnectionMixin, HTTPConnection):
    pass


class TrackedHTTPSConnection(_TrackedConnectionMixin, HTTPSConnection):
    pass


class _TrackedPoolMixin:
    tracker: _Tracker  # set on the per-session subclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker.budget.register_pool(self)

    def _new_conn(self) -> Any:
        conn = super()._new_conn()  # type: ignore[misc]
        conn._tpsl_tracker = self.tracker
        return conn

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout=self.tracker.pool_timeout_s if timeout is None else timeout)  # type: ignore[misc]
        last = getattr(conn, "_tpsl_last_used", None)
        idle_s = self.tracker.idle_clock() - last if last is not None else 0.0
        if conn.sock is not None and idle_s > self.tracker.keepalive_s:
            conn.close()  # idle past keep-alive: the server may drop it any moment; reconnect
            self.tracker.stats.add(expired_idle=1)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn._tpsl_last_used = self.tracker.idle_clock()
        super()._put_conn(conn)  # type: ignore[misc]

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.tracker.stats.add(attempts=1)
        left = _remaining()
        timeout = kwargs.get("timeout")
        if left is not None and isinstance(timeout, Timeout):
            total = timeout.total if isinstance(timeout.total, int | float) else left
            kwargs["timeout"] = Timeout(
                connect=timeout.connect_timeout, read=timeout.read_timeout, total=max(min(total, left), 0.001)
            )
        return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]


class TrackedHTTPConnectionPool(_TrackedPoolMixin, HTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class TrackedHTTPSConnectionPool(_TrackedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection


SOCKET_OPTIONS = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # small requests go out at once (no Nagle delay)
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),  # the kernel notices a dead peer on an idle socket
]


class PooledAdapter(HTTPAdapter):
    """HTTPAdapter whose pool manager builds tracked pools and sets the socket options."""

    def __init__(self, tracker: _Tracker, *, maxsize: int, retry: Retry) -> None:
        self._tracker = tracker
        super().__init__(pool_connections=4, pool_maxsize=maxsize, pool_block=True, max_retries=retry)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = True, **pool_kwargs: Any
    ) -> None:
        pool_kwargs.setdefault("socket_options", SOCKET_OPTIONS)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        tracker = self._tracker
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("HostHTTPPool", (TrackedHTTPConnectionPool,), {"tracker": tracker}),
            "https": type("HostHTTPSPool", (TrackedHTTPSConnectionPool,), {"tracker": tracker}),
        }


# ------------------------------------------------------------------------------------ session


class PooledSession:
    """The session of one exchange host in this process. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        settings: Settings,
        budget: ConnectionBudget,
        *,
        idle_clock: Callable[[], float] = time.monotonic,
        retry: Retry | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: must start with http:// or https:// (got {base_url!r})")
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.stats = SessionStats()
        self._budget = budget
        self._idle_clock = idle_clock
        self._retry = retry or default_retry()
        self._lock = threading.Lock()
        self._last_health_check = idle_clock()
        self._session = self._build()

    def _build(self) -> requests.Session:
        tracker = _Tracker(
            self.stats,
            self._budget,
            keepalive_s=self.settings.keepalive_s,
            pool_timeout_s=self.settings.connect_timeout_s,
            idle_clock=self._idle_clock,
        )
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc surprises from the environment
        session.headers.update({"Accept": "application/json", "Connection": "keep-alive"})
        adapter = PooledAdapter(tracker, maxsize=self.settings.pool_per_host, retry=self._retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def timeout(self) -> Timeout:
        s = self.settings
        return Timeout(connect=s.connect_timeout_s, read=s.read_timeout_s, total=s.total_timeout_s)

    def request(
        self, method: str, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """Send one call (`path` includes the query string) and read the whole answer. Raises
        requests' exceptions for transport failures; counts them toward a session re-creation."""
        self.maybe_health_check()
        self.stats.add(calls=1)
        session = self._session
        _call.deadline = time.monotonic() + self.settings.total_timeout_s
        t0 = time.perf_counter()
        try:
            resp = session.request(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=self.timeout(),
                allow_redirects=False,
            )
            _ = resp.content  # read it all: the connection goes back to the pool
        except EmptyPoolError as exc:  # urllib3 lets this one through requests unwrapped
            self.stats.error("pool_exhausted")
            raise requests.exceptions.ConnectionError(
                f"{self.base_url}: all {self.settings.pool_per_host} pooled connections stayed busy"
            ) from exc
        except requests.RequestException as exc:
            self.stats.observe_latency((time.perf_counter() - t0) * 1000)
            self._transport_failure(exc)
            raise
        finally:
            _call.deadline = None
        self.stats.observe_latency((time.perf_counter() - t0) * 1000)
        self.stats.succeeded()
        return resp

    def _transport_failure(self, exc: BaseException) -> None:
        kind = transport_kind(exc)
        failures = self.stats.failed(kind)
        if failures >= self.settings.session_recreate_after:
            logger.warning(
                "%s: %d consecutive transport failures (last: %s): rebuilding the session",
                self.base_url,
                failures,
                kind,
            )
            self.recreate()

    def recreate(self) -> None:
        """Throw away every pooled connection and start a new session (in-flight calls finish on
        the old one, whose connections are closed as they come back)."""
        with self._lock:
            old, self._session = self._session, self._build()
        self.stats.recreated()
        old.close()

    def maybe_health_check(self) -> None:
        if self._idle_clock() - self._last_health_check >= self.settings.session_health_check_s:
            self.health_check()

    def health_check(self) -> dict[str, Any]:
        """Close connections idle past keep-alive; rebuild the session if it keeps failing."""
        now = self._idle_clock()
        self._last_health_check = now
        closed = self._budget.close_idle(self.settings.keepalive_s, now, owner=self.stats)
        if closed:
            self.stats.add(expired_idle=closed)
        if self.stats.consecutive_failures >= self.settings.session_recreate_after:
            self.recreate()
        return self.stats.as_dict()

    def close(self) -> None:
        self._session.close()


# ----------------------------------------------------------------------------- process registry


class SessionPool:
    """Every exchange host's session (and per-host caches) of this process."""

    def __init__(self, settings: Settings, *, idle_clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.budget = ConnectionBudget(settings.pool_total)
        self._idle_clock = idle_clock
        self._lock = threading.Lock()
        self._sessions: dict[str, PooledSession] = {}
        self._shared: dict[tuple[str, str], Any] = {}

    def session(self, base_url: str) -> PooledSession:
        key = base_url.rstrip("/")
        with self._lock:
            s = self._sessions.get(key)
            if s is None:
                s = PooledSession(key, self.settings, self.budget, idle_clock=self._idle_clock)
                self._sessions[key] = s
            return s

    def shared(self, base_url: str, name: str, factory: Callable[[], Any]) -> Any:
        """A per-process, per-host object (e.g. the instrument cache), created once."""
        key = (base_url.rstrip("/"), name)
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            sessions = dict(self._sessions)
        hosts = {url: s.stats.as_dict() for url, s in sessions.items()}
        attempts = sum(h["attempts"] for h in hosts.values())
        new = sum(h["new_connections"] for h in hosts.values())
        return {
            "hosts": hosts,
            "open_connections": self.budget.open_connections,
            "attempts": attempts,
            "new_connections": new,
            "reuse_rate": round((attempts - new) / attempts, 4) if attempts else None,
        }

    def health_check(self) -> dict[str, Any]:
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.health_check()
        return self.stats()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
            self._shared.clear()
        for s in sessions:
            s.close()


_registry: SessionPool | None = None
_registry_lock = threading.Lock()


def get_session_pool(settings: Settings | None = None) -> SessionPool:
    """The process's SessionPool, created on first use (settings: the first caller's, else
    `config.settings.get_settings()`)."""
    global _registry
    with _registry_lock:
        if _registry is None or _registry.pid != os.getpid():
            if settings is None:
                from config.settings import get_settings

                settings = get_settings()
            _registry = SessionPool(settings)
        return _registry


def reset_for_fork() -> None:
    """Forget the inherited registry without touching its sockets (they belong to the parent).
    Call it in Celery's `worker_process_init`; it also runs by itself after os.fork()."""
    global _registry, _registry_lock
    _registry = None
    _registry_lock = threading.Lock()  # a lock held by another thread at fork time stays held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_for_fork)
