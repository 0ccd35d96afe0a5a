"""urllib3 connection tracking under the pooled sessions (exchange/bybit/session.py).

- `ConnectionBudget`: at most `pool_total` open connections in the whole process, across every
  host's pool; when it is reached, an idle connection of any host is closed first.
- Tracked connections and pools: a socket is counted where urllib3 opens it (`_new_conn`, HTTP and
  HTTPS alike), a connection idle past keep-alive is closed before reuse (its last use is stamped
  when it goes back to the pool), and with pooling off (`reuse=False`) every connection is closed
  as it comes back, so the next call opens a new one.
- The call budget: `start_call(budget_s)` / `end_call()` bound one call, retries included; each
  attempt's timeout is cut to what is left, and `BudgetRetry` starts no retry without enough left.
- `BudgetRetry`: urllib3 Retry for GETs only (a POST is sent at most once by the transport).
- `PooledAdapter`: requests' HTTPAdapter building tracked pools, with TCP_NODELAY and SO_KEEPALIVE.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from exchange.bybit.session_stats import SessionStats

RETRY_STATUSES = frozenset({502, 503, 504})
MIN_ATTEMPT_S = 0.5  # no retry starts with less of the call's budget left than this

_call = threading.local()  # the running call's deadline (time.monotonic), read by retries/timeouts


def start_call(budget_s: float) -> None:
    """The calling thread's call may take `budget_s` seconds from now, retries included."""
    _call.deadline = time.monotonic() + budget_s


def end_call() -> None:
    _call.deadline = None


def remaining() -> float | None:
    """Seconds left of the running call's budget (None: no call running on this thread)."""
    deadline: float | None = getattr(_call, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


# ------------------------------------------------------------------------------------- retries


class BudgetRetry(Retry):
    """urllib3 Retry that (1) never retries anything but the allowed methods (GET) — not even a
    connection error of a POST — and (2) stops when the call's total budget cannot fit another attempt."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if method is None or method.upper() not in (self.allowed_methods or ()):
            if error is not None:
                if self._is_read_error(error):
                    raise error
                # _pool may be None: urllib3's own Retry.increment raises it so (with the same ignore)
                raise MaxRetryError(_pool, url, error) from error  # type: ignore[arg-type]
            raise MaxRetryError(_pool, url, None)  # type: ignore[arg-type]
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        left = remaining()
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


# --------------------------------------------------------------------------- connection budget


class ConnectionBudget:
    """At most `limit` open connections in the whole process, across every host's pool."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"pool_total must be ≥ 1 (got {limit})")
        self.limit = limit
        self._cond = threading.Condition(threading.RLock())
        self._held: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._pools: weakref.WeakSet[TrackedPool] = weakref.WeakSet()

    def register_pool(self, pool: TrackedPool) -> None:
        with self._cond:
            self._pools.add(pool)

    @property
    def open_connections(self) -> int:
        with self._cond:
            return len(self._held)

    def acquire(self, conn: HTTPConnection, timeout: float) -> None:
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

    def release(self, conn: HTTPConnection) -> None:
        with self._cond:
            if conn in self._held:
                self._held.discard(conn)
                self._cond.notify()

    def _evict_one_idle(self) -> bool:
        """Close one idle pooled connection (of any host) to make room. Holding the pool queue's
        mutex while closing means no thread can take that connection meanwhile; a later taker
        sees it dropped and reconnects."""
        for pool in list(self._pools):
            q = pool.pool
            if q is None:
                continue
            with q.mutex:
                for conn in q.queue:
                    if conn is not None and conn.sock is not None:
                        conn.close()  # releases its slot (re-entrant lock)
                        return True
        return False

    def close_idle(self, older_than_s: float, now: float, owner: SessionStats | None = None) -> int:
        """Close pooled connections idle for longer than `older_than_s` (health check); only those
        of pools reporting to `owner` (a SessionStats) when given."""
        closed = 0
        for pool in list(self._pools):
            q = pool.pool
            if q is None or (owner is not None and pool.tracker.stats is not owner):
                continue
            with q.mutex:
                for conn in q.queue:
                    if conn is None or conn.sock is None:
                        continue
                    last = cast(TrackedConnection, conn)._tpsl_last_used
                    if last is not None and now - last > older_than_s:
                        conn.close()
                        closed += 1
        return closed


# ------------------------------------------------------------------------ tracked connections


class Tracker:
    """What a host's pools and connections report to (one per PooledSession generation).
    `reuse=False`: pooling off, every connection is closed when its call is done."""

    def __init__(
        self,
        stats: SessionStats,
        budget: ConnectionBudget,
        *,
        keepalive_s: float,
        pool_timeout_s: float,
        idle_clock: Callable[[], float],
        reuse: bool = True,
    ) -> None:
        self.stats = stats
        self.budget = budget
        self.keepalive_s = keepalive_s
        self.pool_timeout_s = pool_timeout_s
        self.idle_clock = idle_clock
        self.reuse = reuse


if TYPE_CHECKING:
    _ConnectionBase = HTTPConnection
    _PoolBase = HTTPConnectionPool
else:  # the mixins go before urllib3's classes in the MRO; typed as their subclasses
    _ConnectionBase = object
    _PoolBase = object


class TrackedConnection(_ConnectionBase):
    """Mixin of the tracked HTTP and HTTPS connections: counts every socket it opens against the
    process's budget and the host's statistics."""

    _tpsl_tracker: Tracker | None = None
    _tpsl_last_used: float | None = None

    def _new_conn(self) -> socket.socket:  # the one place a socket is opened (HTTP and HTTPS)
        tracker = self._tpsl_tracker
        if tracker is None:
            return super()._new_conn()
        wait = self.timeout if isinstance(self.timeout, int | float) else tracker.pool_timeout_s
        tracker.budget.acquire(self, wait)
        try:
            sock = super()._new_conn()
        except BaseException:
            tracker.budget.release(self)
            raise
        tracker.stats.add(new_connections=1)
        return sock

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._tpsl_tracker is not None:
                self._tpsl_tracker.budget.release(self)


class TrackedHTTPConnection(TrackedConnection, HTTPConnection):
    pass


class TrackedHTTPSConnection(TrackedConnection, HTTPSConnection):
    pass


class TrackedPool(_PoolBase):
    """Mixin of the tracked HTTP and HTTPS pools: keep-alive expiry, the call budget on each
    attempt's timeout, and (pooling off) a connection closed as it comes back."""

    tracker: Tracker  # set on the per-session subclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker.budget.register_pool(self)

    def _new_conn(self) -> TrackedConnection:
        conn = cast(TrackedConnection, super()._new_conn())  # ConnectionCls is a tracked class
        conn._tpsl_tracker = self.tracker
        return conn

    def _get_conn(self, timeout: float | None = None) -> TrackedConnection:
        wait = self.tracker.pool_timeout_s if timeout is None else timeout
        conn = cast(TrackedConnection, super()._get_conn(timeout=wait))
        last = conn._tpsl_last_used
        idle_s = self.tracker.idle_clock() - last if last is not None else 0.0
        if conn.sock is not None and idle_s > self.tracker.keepalive_s:
            conn.close()  # idle past keep-alive: the server may drop it any moment; reconnect
            self.tracker.stats.add(expired_idle=1)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            tracked = cast(TrackedConnection, conn)
            if not self.tracker.reuse:
                tracked.close()  # pooling off: the next call opens a new connection
            tracked._tpsl_last_used = self.tracker.idle_clock()
        super()._put_conn(conn)

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> BaseHTTPResponse:
        self.tracker.stats.add(attempts=1)
        left = remaining()
        timeout = kwargs.get("timeout")
        if left is not None and isinstance(timeout, Timeout):
            total = timeout.total if isinstance(timeout.total, int | float) else left
            kwargs["timeout"] = Timeout(
                connect=timeout.connect_timeout, read=timeout.read_timeout, total=max(min(total, left), 0.001)
            )
        return super().urlopen(method, url, *args, **kwargs)


class TrackedHTTPConnectionPool(TrackedPool, HTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class TrackedHTTPSConnectionPool(TrackedPool, HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection

    def _new_conn(self) -> TrackedHTTPSConnection:
        return cast(TrackedHTTPSConnection, super()._new_conn())


SOCKET_OPTIONS = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # small requests go out at once (no Nagle delay)
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),  # the kernel notices a dead peer on an idle socket
]


class PooledAdapter(HTTPAdapter):
    """HTTPAdapter whose pool manager builds tracked pools and sets the socket options."""

    def __init__(self, tracker: Tracker, *, maxsize: int, retry: Retry) -> None:
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
