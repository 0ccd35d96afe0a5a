"""Per-process wiring: the expensive clients a process holds once.

A worker child builds its Runtime in `worker_process_init` (never at import time: urllib3 pools and
redis connections are not fork-safe); other processes (dashboard, CLI) build one on first use.
`get_runtime()` rebuilds after a fork automatically (it remembers the pid it was built in).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from config import keys
from config.accounts import load_accounts
from config.settings import Settings, get_settings
from core.errors import FixInput
from core.models import Account
from core.policy import Policy
from core.ports import Clock, ExchangePort
from workers.lag import LatencyRecorder
from workers.market_cache import MarketCache
from workers.registry import Registry

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from persistence.writer import EventWriter
    from workers.recorder import Publisher

log = logging.getLogger(__name__)

PREFIX = keys.PREFIX


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    registry: Registry
    market: MarketCache
    latency: LatencyRecorder
    accounts: dict[str, Account]
    policy: Policy
    clock: Clock = time.time
    prefix: str = PREFIX
    # how events leave the process (set by the Celery app; a plain process writes directly)
    publisher: Publisher | None = None
    _clients: dict[str, ExchangePort] = field(default_factory=dict)
    _writer: EventWriter | None = None
    _engine: Engine | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    client_factory: Callable[[str, Runtime], ExchangePort] | None = None

    def __repr__(self) -> str:  # settings, accounts and clients hold credentials: name counts only
        return f"Runtime(prefix={self.prefix!r}, accounts={sorted(self.accounts)!r})"

    # ------------------------------------------------------------------------------- accounts

    def account(self, account_id: str) -> Account:
        acc = self.accounts.get(account_id)
        if acc is None:
            known = ", ".join(sorted(self.accounts)) or "none configured"
            raise FixInput("account", f"unknown account {account_id!r} (known: {known})")
        return acc

    # -------------------------------------------------------------------------------- clients

    def client_for(self, account: Account) -> ExchangePort:
        """The pooled client of the account's exchange host (one per host and process)."""
        base = account.base_url
        client = self._clients.get(base)
        if client is None:
            with self._lock:
                client = self._clients.get(base)
                if client is None:
                    factory = self.client_factory or _bybit_client
                    client = factory(base, self)
                    self._clients[base] = client
        return client

    def clients(self) -> dict[str, ExchangePort]:
        return dict(self._clients)

    # ---------------------------------------------------------------------------- persistence

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from persistence.db import make_engine

                    self._engine = make_engine(self.settings.database_dsn)
        return self._engine

    @property
    def writer(self) -> EventWriter:
        if self._writer is None:
            from persistence.writer import EventWriter

            with self._lock:
                if self._writer is None:
                    self._writer = EventWriter(self.engine, self.redis, prefix=self.prefix)
        return self._writer

    def close(self) -> None:
        for client in self._clients.values():
            closer = getattr(client, "close", None)
            if closer is not None:
                closer()
        self._clients.clear()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._writer = None
        self.redis.close()


def _bybit_client(base_url: str, rt: Runtime) -> ExchangePort:
    from exchange.bybit import build_client

    return build_client(base_url, rt.settings, redis=rt.redis, clock=rt.clock)


def redis_client(url: str) -> redis.Redis:
    """The process's Redis client. Everything tpsl-guard stores is text (JSON, numbers, ids), so
    answers come decoded (`str`); no reader converts bytes."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def build_runtime(settings: Settings | None = None, *, clock: Clock = time.time) -> Runtime:
    settings = settings or get_settings()
    if not settings.redis_dsn:
        raise RuntimeError("REDIS_URL is not set")
    r = redis_client(settings.redis_dsn)
    return Runtime(
        settings=settings,
        redis=r,
        registry=Registry(r, settings, prefix=PREFIX),
        market=MarketCache(r, settings, prefix=PREFIX),
        latency=LatencyRecorder(r, prefix=PREFIX),
        accounts=load_accounts(settings),
        policy=Policy.from_settings(settings),
        clock=clock,
    )


_runtime: Runtime | None = None
_runtime_pid: int | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This process's Runtime, built on first use (and again after a fork)."""
    global _runtime, _runtime_pid
    pid = os.getpid()
    if _runtime is None or _runtime_pid != pid:
        with _runtime_lock:
            if _runtime is None or _runtime_pid != pid:
                _runtime = build_runtime()
                _runtime_pid = pid
    return _runtime


def set_runtime(rt: Runtime | None) -> None:
    """Install a Runtime (worker_process_init, tests); None forgets it."""
    global _runtime, _runtime_pid
    with _runtime_lock:
        _runtime = rt
        _runtime_pid = os.getpid() if rt is not None else None
