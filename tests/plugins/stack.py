"""The whole pipeline in one test process: paper exchange (real HTTP and WebSocket), a real
redis-server, a SQLite database migrated with Alembic, a real Celery worker (`start_worker`, threads
pool) consuming every queue, the dispatcher loop (what beat's 0.5 s tick does, faster) and the stream
process's work (`tasks.stream.StreamWatch`: each account's private stream, the tickers of every
monitored symbol, its heartbeat loop; its checks sent by name through the app of tasks/base.py, which
has no task registered), as in production. Intervals are shortened so a lifecycle runs
in seconds; waiting is by polling with generous deadlines, never by fixed sleeps.

A test module (or class) opts out of the stream process by overriding the `stack_streams` fixture to
return False (say why there); `stack_overrides` with `streams=False` is the whole system without
streams.

    def test_x(stack):
        m = stack.create(plan_dict)             # through workers.lifecycle, like the API
        stack.prices(BTCUSDT="62100")
        stack.wait(lambda: stack.monitor(m.id).tp_hits == (1,))
        stack.flush(); stack.events(m.id)       # what the database holds
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from config.queues import ALL_QUEUES
from config.settings import Settings
from core.models import Monitor, OrderRole, Tier
from exchange.paper.runner import PaperCredentials
from persistence.db import session_factory
from persistence.migrate import upgrade
from persistence.queries import events_for, get_monitor
from workers.dispatcher import run_loop
from workers.runtime import Runtime, build_runtime, set_runtime
from workers.store import MonitorStore

FAST_TIERS = {Tier.CRITICAL: 0.2, Tier.ACTIVE: 0.3, Tier.STANDARD: 0.5, Tier.INACTIVE: 0.5, Tier.IDLE: 0.5}


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except AssertionError as e:
            last_error = e
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from last_error


@dataclass
class Stack:
    settings: Settings
    rt: Runtime
    paper: Any
    creds: dict[str, PaperCredentials]
    app: Any
    watch: Any = None  # the stream process's StreamWatch, None when the test opted out
    _stop: threading.Event = field(default_factory=threading.Event)
    _stream_stop: threading.Event = field(default_factory=threading.Event)
    _stream_loop: threading.Thread | None = None

    # -- acting
    def create(self, plan: dict[str, Any], **kw: Any) -> Monitor:
        from workers.lifecycle import create_monitor

        return create_monitor(self.rt, plan, **kw)

    def remove(self, monitor_id: str, **kw: Any) -> Monitor:
        from workers.lifecycle import remove_monitor

        return remove_monitor(self.rt, monitor_id, **kw)

    def prices(self, **prices: str) -> list[dict[str, Any]]:
        return self.paper.admin.set_prices(prices)

    def quiesce(self) -> None:
        """Stop the dispatcher and the stream process and wait until no check is queued or running:
        the test drives alone."""
        from celery.worker import state

        from config.queues import TIER_QUEUES

        self._stop.set()
        self.stop_streams()

        def idle() -> bool:
            queued = sum(self.rt.redis.llen(q) for q in TIER_QUEUES)
            return queued == 0 and not state.active_requests

        wait_for(idle, what="the pipeline to go idle")
        time.sleep(0.1)
        wait_for(idle, what="the pipeline to stay idle")

    def stop_streams(self) -> None:
        """Stop the stream process (its views and prices are no longer read: checks read REST)."""
        self._stream_stop.set()
        if self._stream_loop is not None:
            self._stream_loop.join(5)  # no heartbeat after this: the views stay marked down
        if self.watch is not None:
            self.watch.stop()

    # -- observing
    def monitor(self, monitor_id: str) -> Monitor | None:
        item = MonitorStore(self.rt.registry).load(monitor_id)
        return item.monitor if item else None

    def wait(self, condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
        return wait_for(condition, timeout=timeout, what=what)

    def flush(self) -> None:
        """Everything recorded so far reaches the database: the persist queue drained (critical
        events committed by the worker), then the coalescing buffer flushed."""
        from celery.worker import state

        from config.queues import PERSIST_QUEUE

        def persisted() -> bool:
            busy = any(getattr(r, "name", "") == "tpsl.persist_critical" for r in list(state.active_requests))
            return self.rt.redis.llen(PERSIST_QUEUE) == 0 and not busy

        wait_for(persisted, what="the persist queue to drain")
        self.rt.writer.flush()

    def db_monitor(self, monitor_id: str) -> Any:
        with session_factory(self.rt.engine)() as s:
            return get_monitor(s, monitor_id)

    def events(self, monitor_id: str) -> list[Any]:
        with session_factory(self.rt.engine)() as s:
            return list(reversed(events_for(s, monitor_id, limit=1000)))

    def exchange_orders(self, account: str = "main") -> list[dict[str, Any]]:
        return self.paper.admin.account(self.creds[account].api_key)["orders"]

    # -- the stop, in either stop mode (settings.stop_mode; TPSL_TEST_STOP_MODE picks the default)
    @property
    def on_position(self) -> bool:
        """The stop is the position's own stop-loss (stop mode "position"), not a stop order."""
        return self.settings.stop_mode == "position"

    def position_stop(self, account: str = "main", symbol: str | None = None, idx: int = 0) -> Decimal | None:
        """The stopLoss of the open position on the exchange (None: flat, or no stop set)."""
        return position_stop(self.paper, self.creds[account].api_key, symbol, idx)

    def stop_sent(self, monitor_id: str) -> bool:
        """The guard has sent the stop (no read of its own needs to have seen it): a live stop order
        of ours (order mode), or the position's stop-loss set on the exchange (position mode)."""
        m = self.monitor(monitor_id)
        if m is None:
            return False
        if self.on_position:
            return self.position_stop(m.account, m.plan.symbol, m.plan.position_idx) is not None
        return bool(m.live_orders(OrderRole.SL))

    def stop_trigger(self, monitor_id: str) -> Decimal | None:
        """Where the monitor's stop rests on the exchange, once a read of the guard has seen it there:
        its stop order's trigger (order mode, the order seen open), or the position's stop-loss
        (position mode, `Monitor.stop_seen` set: a stop removed before any read saw it is set again
        without counting as a repair, as an order never seen open is placed again)."""
        m = self.monitor(monitor_id)
        if m is None:
            return None
        if self.on_position:
            if m.stop_seen is None:
                return None
            return self.position_stop(m.account, m.plan.symbol, m.plan.position_idx)
        sl = m.current(OrderRole.SL, 0)
        return sl.trigger_price if sl is not None and sl.status.value == "open" else None


def position_stop(paper: Any, api_key: str, symbol: str | None = None, idx: int = 0) -> Decimal | None:
    """The stopLoss of an account's open position on the paper exchange (None: flat, or unset)."""
    for p in paper.admin.account(api_key)["positions"]:
        if symbol is not None and p.get("symbol") != symbol:
            continue
        if int(p.get("positionIdx", 0)) != idx or Decimal(p["size"]) <= 0:
            continue
        sl = p.get("stopLoss")
        return Decimal(sl) if sl and Decimal(sl) > 0 else None
    return None


def stack_settings(redis_url: str, db_url: str, accounts: list[dict[str, Any]], **over: Any) -> Settings:
    base: dict[str, Any] = dict(
        redis_url=redis_url,
        database_url=db_url,
        accounts=json.dumps(accounts),
        tier_intervals=FAST_TIERS,
        dispatch_tick_s=0.1,
        claim_lookahead_s=0.1,
        account_lock_ttl_s=10.0,
        idle_after_s=600.0,
        # shorter than the fastest tier, as in production (1 s against 2 s): two reads never share a
        # ticker from before a price move (position mode judges its stop's close by the price)
        ticker_cache_s=0.1,
    )
    base.update(over)
    return Settings(**base)


@pytest.fixture
def stack_accounts(paper) -> tuple[dict[str, PaperCredentials], list[dict[str, Any]]]:
    main = paper.new_account(balance=1_000_000)
    mirror = paper.new_account(balance=500_000)
    creds = {"main": main, "mirror1": mirror}
    accounts = [
        {"id": "main", "base_url": paper.base_url, "api_key": main.api_key, "api_secret": main.api_secret},
        {
            "id": "mirror1",
            "base_url": paper.base_url,
            "api_key": mirror.api_key,
            "api_secret": mirror.api_secret,
            "mirror_of": "main",
            "ratio": "0.5",
        },
    ]
    paper.admin.set_rate_limits(enabled=False)
    return creds, accounts


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    """Override in a test module to change the stack's settings."""
    return {}


@pytest.fixture
def stack_streams() -> bool:
    """Override in a test module (returning False) to run the stack without the stream process."""
    return True


@pytest.fixture
def stack(
    paper, redis_url, redis_client, tmp_path, stack_accounts, stack_overrides, stack_streams
) -> Iterator[Stack]:
    from exchange.bybit.stream import StreamTiming
    from tasks.app import create_app, runtime
    from tasks.base import configured_app
    from tasks.dispatch import publish_checks
    from tasks.stream import StreamWatch, publish_stream_check

    creds, accounts = stack_accounts
    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    settings = stack_settings(redis_url, db_url, accounts, **stack_overrides)
    rt = build_runtime(settings)
    set_runtime(rt)
    app = create_app(settings)
    runtime(app)  # publishes through this app
    s = Stack(settings=settings, rt=rt, paper=paper, creds=creds, app=app)
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=list(ALL_QUEUES),
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        loop = threading.Thread(
            target=run_loop,
            args=(rt, lambda o: publish_checks(app, rt, o), s._stop),
            daemon=True,
            name="dispatcher",
        )
        loop.start()
        beat: threading.Thread | None = None
        stream_app = None
        if stack_streams and settings.streams:
            # as `tpsl stream` publishes: through the configured app, which has no task registered
            stream_app = configured_app(settings)
            s.watch = StreamWatch(
                rt, lambda account: publish_stream_check(stream_app, account), timing=StreamTiming()
            )
            s.watch.start()
            beat = threading.Thread(target=s.watch.run, args=(s._stream_stop,), daemon=True, name="stream")
            beat.start()
        try:
            yield s
        finally:
            s._stop.set()
            s._stream_stop.set()
            loop.join(5)
            if beat is not None:
                beat.join(5)
            s.stop_streams()
            if stream_app is not None:
                stream_app.close()
    set_runtime(None)
    rt.close()
