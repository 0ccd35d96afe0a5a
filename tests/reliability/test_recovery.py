"""Recovery without an operator, with real worker processes and two dispatchers (two beats):
Redis flushed → the registry is rebuilt and guarding resumes within seconds, nothing placed twice;
a worker SIGKILLed in the middle of a check → the account is checked again within a few seconds
(the account lock is short and renewed, not a 30 s lease) and the critical events the killed check
saw are committed within seconds (the check commits them itself before saving its state)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.models import OrderRole
from devtools.embedded_redis import EmbeddedRedis
from persistence.db import session_factory
from persistence.queries import events_for
from tests.integration.pipeline.plans import conservative_long, conservative_short
from tests.plugins.stack import wait_for
from tests.reliability.support import Env, environment
from workers.dispatcher import run_loop
from workers.lifecycle import create_monitor
from workers.store import MonitorStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

OVER = {"account_lock_ttl_s": 3.0, "coalesce_window_s": 60.0}  # rows stay in the Redis buffer


@contextmanager
def dispatchers(env: Env, n: int = 2) -> Iterator[None]:
    """`n` dispatcher loops at once, as two beats would run (claims are atomic across them)."""
    from tasks.dispatch import publish_checks

    app = env.rt.publisher.app
    stop = threading.Event()
    loops = [
        threading.Thread(
            target=run_loop, args=(env.rt, lambda o: publish_checks(app, env.rt, o), stop), daemon=True
        )
        for _ in range(n)
    ]
    for t in loops:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in loops:
            t.join(5)


def reads(env: Env, account: str = "main") -> int:
    return int(env.rt.redis.hget("tpsl:stats:reads", account) or 0)


def placements(paper) -> int:
    return paper.admin.stats()["by_endpoint"].get("/v5/order/create-batch", 0)


def guarded(env: Env, mid: str, role: OrderRole) -> bool:
    """An order of that role rests on the exchange; for the stop in position mode (TPSL_STOP_MODE),
    the position's own stop-loss is set as the monitor last saw it (read after its trading-stop)."""
    item = MonitorStore(env.rt.registry).load(mid)
    if item is None:
        return False
    if role is OrderRole.SL and env.settings.stop_mode == "position":
        return item.monitor.stop_seen is not None
    return any(o.status.value == "open" for o in item.monitor.live_orders(role))


def test_a_flushed_redis_is_rebuilt_and_guarding_resumes_within_seconds(paper, stack_accounts, tmp_path):
    _, accounts = stack_accounts
    with EmbeddedRedis() as server, environment(server.url, tmp_path, accounts, **OVER) as env:
        paper.admin.set_prices({"BTCUSDT": "60500", "ETHUSDT": "2950"})
        long_ = create_monitor(env.rt, conservative_long())
        short = create_monitor(env.rt, conservative_short())
        worker, log = env.worker("w1")
        with dispatchers(env):
            paper.admin.set_prices({"BTCUSDT": "58900", "ETHUSDT": "3070"})  # entries fill: stops go out
            wait_for(lambda: guarded(env, long_.id, OrderRole.SL) and guarded(env, short.id, OrderRole.SL))
            wait_for(lambda: guarded(env, long_.id, OrderRole.TP) and guarded(env, short.id, OrderRole.TP))
            before = placements(paper)
            env.rt.redis.flushall()  # the placed stops and TPs lived only in Redis (buffer unflushed)
            flushed = time.monotonic()
            wait_for(lambda: reads(env) > 0, timeout=20, what="a check after the flush")
            resumed = time.monotonic() - flushed
            wait_for(lambda: guarded(env, long_.id, OrderRole.SL) and guarded(env, short.id, OrderRole.SL))
            again = placements(paper) - before
        assert worker.poll() is None
        text = log.read_text(errors="replace")
        assert "CRITICAL workers.reconcile" not in text  # the dispatchers rebuilt it, not the worker
        print(
            f"\nfigure: guarding resumed {resumed:.2f} s after FLUSHALL; create requests sent again: {again}"
        )
        assert resumed <= 5.0
        assert again == 0  # the read showed the orders: nothing sent twice
        assert "already on the exchange not sent again" in text


def holder(env: Env) -> str | None:
    """The worker running the check that holds the account: of the checks running now (another may
    be waiting for the lock), the one that started first."""
    active = env.rt.publisher.app.control.inspect(timeout=1.0).active() or {}
    running = [
        (task.get("time_start") or 0.0, node.split("@")[0])
        for node, tasks in active.items()
        for task in tasks
        if task.get("name") == "tpsl.check"
    ]
    return min(running)[1] if running else None


def committed(env: Env, mid: str) -> set[str]:
    with session_factory(env.rt.engine)() as s:
        return {e.kind for e in events_for(s, mid, limit=100)}


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_worker_killed_mid_check_stalls_its_account_seconds_and_loses_no_critical_event(
    paper, stack_accounts, tmp_path, pool
):
    _, accounts = stack_accounts
    with EmbeddedRedis(appendonly=True) as server, environment(server.url, tmp_path, accounts, **OVER) as env:
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(env.rt, conservative_long())
        workers = {name: env.worker(name, concurrency=1, pool=pool) for name in ("w1", "w2")}
        with dispatchers(env):
            paper.admin.set_prices({"BTCUSDT": "58900"})
            wait_for(lambda: guarded(env, m.id, OrderRole.SL) and guarded(env, m.id, OrderRole.TP))
            # TP1 fills; the check that sees it moves the stop to breakeven — slowly: it is killed there
            # (an amend of the stop order, or a trading-stop call in position mode)
            move = "/v5/position/trading-stop" if env.settings.stop_mode == "position" else "/v5/order/amend"
            paper.admin.add_fault(endpoint=move, latency_ms=6000, count=1)
            amends = paper.admin.stats()["by_endpoint"].get(move, 0)
            paper.admin.set_prices({"BTCUSDT": "62100"})
            wait_for(
                lambda: paper.admin.stats()["by_endpoint"].get(move, 0) > amends,
                what="the breakeven move in flight",
            )
            seen = time.monotonic()
            victim = wait_for(lambda: holder(env), what="the worker inside the slow check")
            proc, _ = workers[victim]
            before = reads(env)
            os.killpg(proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            wait_for(lambda: reads(env) > before, timeout=20, what="the account checked again")
            stall = time.monotonic() - killed
            wait_for(
                lambda: {"tp_hit", "breakeven_moved"} <= committed(env, m.id),
                timeout=20,
                what="the critical events in the database",
            )
            late = time.monotonic() - seen
        alive = [n for n, (p, _) in workers.items() if p.poll() is None]
        print(
            f"\nfigure: {victim} killed mid-check: account checked again after {stall:.2f} s; "
            f"tp_hit and breakeven_moved committed {late:.2f} s after the check that saw them"
        )
        assert alive == [n for n in workers if n != victim]
        assert stall <= 5.0
        assert late <= 10.0
