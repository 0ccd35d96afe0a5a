"""Pooled HTTP sessions: one `requests.Session` per process and exchange host.

- `HTTPAdapter` with `pool_maxsize = settings.pool_per_host` (blocking: a thread waits for a free
  connection, at most the connect timeout, rather than opening an extra one that would be thrown away),
  and a process-wide cap of `settings.pool_total` open connections across all hosts
  (`ConnectionBudget`: when it is reached, an idle connection of any host is closed first).
- Keep-alive: a connection idle longer than `settings.keepalive_s` is closed before reuse (last use is
  stamped when a connection goes back to the pool), and the periodic health check closes the ones
  that sit idle past it.
- Pooling off (`settings.pooling` false, the rollback switch `TPSL_POOLING=false`): the basic HTTP
  client, a new connection per call (`Connection: close`, and the connection is closed as it comes
  back); the statistics and the connection budget work the same.
- Each call is prepared here (`_prepared`) and sent through the session's adapter, not through
  `Session.request`: the same bytes on the wire, a third less of the client's CPU per call.
- Timeouts: connect 8 s / read 18 s per attempt, and a 25 s budget per call, retries included: each
  attempt's timeout is cut to what is left of the budget, and no retry starts without enough left.
- TCP_NODELAY and SO_KEEPALIVE on every socket (socket options of the adapter's pool manager).
- urllib3 `Retry` for GETs only: connection errors, read errors and 502/503/504, with a short
  backoff. A POST is sent at most once by the transport, whatever happens; an order is retried only
  by the caller, through its orderLinkId.
- After `settings.session_recreate_after` consecutive transport failures the session is rebuilt
  (new pools, new connections); a health check runs every `settings.session_health_check_s`.
- Statistics per host (exchange/bybit/session_stats.py): calls, attempts, new vs reused connections
  (new ones are counted where urllib3 opens a socket), idle expiries, errors by kind, a latency
  histogram.

The urllib3 side (the budget, tracked connections and pools, retries, the call budget) is
exchange/bybit/tracking.py. The process registry (`get_session_pool()`) is created lazily, never at
import time: urllib3 pools are not fork-safe. Celery creates it in `worker_process_init`; a forked
child that did not call `reset_for_fork()` gets a fresh registry anyway (the pid is checked).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import requests
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import EmptyPoolError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from exchange.bybit.errors import transport_kind
from exchange.bybit.options import BybitOptions
from exchange.bybit.session_stats import SessionStats
from exchange.bybit.tracking import (
    ConnectionBudget,
    PooledAdapter,
    Tracker,
    default_retry,
    end_call,
    start_call,
)

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ session


class PooledSession:
    """The session of one exchange host in this process. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        settings: BybitOptions,
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
        pooling = self.settings.pooling
        tracker = Tracker(
            self.stats,
            self._budget,
            keepalive_s=self.settings.keepalive_s,
            pool_timeout_s=self.settings.connect_timeout_s,
            idle_clock=self._idle_clock,
            reuse=pooling,
        )
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc surprises from the environment
        connection = "keep-alive" if pooling else "close"
        session.headers.update({"Accept": "application/json", "Connection": connection})
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
        start_call(self.settings.total_timeout_s)
        t0 = time.perf_counter()
        try:
            url = self.base_url + path
            resp = session.get_adapter(url).send(
                _prepared(session, method, url, data, headers),
                stream=False,
                # requests passes a urllib3 Timeout through as it is; its stubs know only numbers
                timeout=self.timeout(),  # type: ignore[arg-type]
                verify=True,
                cert=None,
                proxies={},
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
            end_call()
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


def _prepared(
    session: requests.Session, method: str, url: str, data: bytes | None, headers: dict[str, str] | None
) -> requests.PreparedRequest:
    """The request as `Session.request` would prepare it for our calls, without its general work
    (URL parsing and re-quoting, cookies, auth, environment and proxy settings, hooks, redirects):
    ours are ASCII URLs whose query the signer quoted already, bodies of bytes, no cookies, no
    redirects followed. That work was a quarter of a call's interpreter time; without it a call
    costs the client about a third less CPU (`tpsl paper client-bench`, docs/benchmarks.md)."""
    prepared = requests.PreparedRequest()
    prepared.method = method
    prepared.url = url
    merged = cast("CaseInsensitiveDict[str]", CaseInsensitiveDict(session.headers))  # ours are all str
    if headers:
        merged.update(headers)
    if data is not None:
        merged["Content-Length"] = str(len(data))
    elif method not in ("GET", "HEAD"):
        merged["Content-Length"] = "0"
    prepared.headers = merged
    prepared.body = data
    prepared.hooks = default_hooks()
    return prepared


# ----------------------------------------------------------------------------- process registry


class SessionPool:
    """Every exchange host's session (and per-host caches) of this process."""

    def __init__(self, settings: BybitOptions, *, idle_clock: Callable[[], float] = time.monotonic) -> None:
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


def get_session_pool(settings: BybitOptions | None = None) -> SessionPool:
    """The process's SessionPool, created on first use with the first caller's settings (a later
    caller may leave them out)."""
    global _registry
    with _registry_lock:
        if _registry is None or _registry.pid != os.getpid():
            if settings is None:
                raise RuntimeError("get_session_pool: the first call in a process must pass the settings")
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
