"""The threads pool. The worker processes as `tpsl demo`, the benchmark and the Procfile start them,
with TPSL_WORKER_POOL=threads: a check runs end to end (read, stop placed, critical event persisted
by the persist pool), and a check past its soft time limit stops at its next safe point (the deadline
its own code checks: workers/deadline.py), as prefork would stop it, and the worker goes on. A
Celery worker in this process (celery.contrib.testing, one thread) shows the same on a task of the
test's own: nothing interrupts its call; it stops at its check, its `finally` runs, and the thread
serves the next task."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery.contrib.testing.worker import start_worker

from core.models import OrderRole, OrderStatus, Tier
from devtools.stack import with_source_path, worker_specs
from persistence.migrate import upgrade
from tests.plugins.stack import stack_settings, wait_for
from tests.plugins.stop_mode import on_position, without_the_entrys_stop
from workers import deadline
from workers.lifecycle import create_monitor
from workers.runtime import Runtime, build_runtime, set_runtime
from workers.store import MonitorStore

from .plans import conservative_long

ROOT = Path(__file__).resolve().parents[3]
SLOW = {t: 60.0 for t in Tier}  # no natural re-check during the test: only the checks sent here


@contextmanager
def threads_workers(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The three worker pools, as separate processes, with their logs."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    try:
        for spec in worker_specs(env, node="t"):
            logs[spec.name] = tmp_path / f"{spec.name}.log"
            with logs[spec.name].open("wb") as out:  # the child keeps its own descriptor
                procs.append(
                    subprocess.Popen(
                        [*spec.argv, "--without-mingle", "--without-gossip"],
                        cwd=ROOT,
                        env=dict(spec.env),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        for name, log in logs.items():
            wait_for(lambda log=log: b"ready." in log.read_bytes(), timeout=60, what=f"{name} ready")
        yield logs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@contextmanager
def setup(
    paper: Any, redis_url: str, tmp_path: Path, stack_accounts: Any
) -> Iterator[tuple[Runtime, Any, dict]]:
    from tasks.app import create_app, runtime

    _, accounts = stack_accounts
    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    settings = stack_settings(redis_url, db_url, accounts, tier_intervals=SLOW)
    rt = build_runtime(settings)
    set_runtime(rt)
    app = create_app(settings)
    runtime(app)
    env = with_source_path(
        dict(
            os.environ,
            REDIS_URL=redis_url,
            DATABASE_URL=db_url,
            TPSL_ACCOUNTS=json.dumps(accounts),
            TPSL_TIER_INTERVALS=json.dumps({t.value: 60 for t in Tier}),
            TPSL_WORKER_POOL="threads",
        )
    )
    try:
        yield rt, app, env
    finally:
        set_runtime(None)
        rt.close()


def stop_sent(rt: Runtime, monitor_id: str) -> bool:
    """The check sent the stop: a live stop order of ours, or (stop on the position) the position's
    stop-loss set."""
    loaded = MonitorStore(rt.registry).load(monitor_id)
    if loaded is None:
        return False
    if on_position():
        return loaded.monitor.stop_sent_at > 0
    return bool(loaded.monitor.live_orders(OrderRole.SL))


def test_a_check_runs_end_to_end_on_the_threads_pool(
    paper, redis_url, redis_client, tmp_path, stack_accounts
):
    from persistence.db import session_factory
    from persistence.queries import events_for

    with setup(paper, redis_url, tmp_path, stack_accounts) as (rt, app, env):
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        paper.admin.set_prices({"BTCUSDT": "59990"})  # E1 fills: the next check must place the stop
        without_the_entrys_stop(stack_accounts[0]["main"])
        with threads_workers(env, tmp_path) as logs:
            for name, log in logs.items():
                assert b"(thread)" in log.read_bytes(), f"{name} is not on the threads pool"
            app.tasks["tpsl.check"].apply_async(("main", [m.id]), queue="tier.standard", expires=120)
            wait_for(lambda: stop_sent(rt, m.id), timeout=60, what="the check to place the stop")

            def created_persisted() -> bool:  # a critical event, written by the persist pool's threads
                with session_factory(rt.engine)() as s:
                    return any(e.kind == "monitor_created" for e in events_for(s, m.id))

            wait_for(created_persisted, timeout=60, what="the monitor_created event in the database")
            bulk = logs["worker_bulk"]
            wait_for(lambda: b"tpsl.check[" in bulk.read_bytes() and b"succeeded" in bulk.read_bytes())


def test_a_check_past_its_soft_time_limit_stops_at_its_next_safe_point_on_the_threads_pool(
    paper, redis_url, redis_client, tmp_path, stack_accounts
):
    with setup(paper, redis_url, tmp_path, stack_accounts) as (rt, app, env):
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        paper.admin.set_prices({"BTCUSDT": "59990"})  # E1 fills
        without_the_entrys_stop(stack_accounts[0]["main"])
        with threads_workers(env, tmp_path) as logs:
            paper.admin.add_fault(endpoint="/v5/position/list", latency_ms=6000, count=1)
            check = app.tasks["tpsl.check"]
            sent = check.apply_async(
                ("main", [m.id]), queue="tier.standard", expires=120, soft_time_limit=1, time_limit=30
            )
            bulk = logs["worker_bulk"]
            # the watchdog names the task; it raises nothing into the thread, which is in its read
            warning = f"task tpsl.check[{sent.id}]: soft time limit exceeded; it stops at its next safe point"
            wait_for(lambda: warning.encode() in bulk.read_bytes(), what="the soft limit's warning")
            # the read returns whole (6 s); the check stops at the safe point after it, before it
            # decides or sends anything, and its lock is released by its own `finally`
            failed = f"Task tpsl.check[{sent.id}] raised unexpected: SoftTimeLimitExceeded"
            wait_for(lambda: failed.encode() in bulk.read_bytes(), timeout=20, what="the failure")
            text = bulk.read_bytes().decode(errors="replace")
            trace = text.split(failed, 1)[1].split("billiard.exceptions.SoftTimeLimitExceeded", 1)[0]
            frames = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
            assert "workers/checker.py" in frames[-3] and "in _pass" in frames[-3]  # raised where it checks
            assert "workers/deadline.py" in frames[-1]
            assert not any(lib in trace for lib in ("urllib3", "requests", "socket", "redis"))
            assert redis_client.exists("tpsl:lock:account:main") == 0
            assert not stop_sent(rt, m.id)
            # the worker goes on: the next check of the account does what the stopped one did not
            check.apply_async(("main", [m.id]), queue="tier.standard", expires=120)
            wait_for(lambda: stop_sent(rt, m.id), timeout=60, what="the next check to place the stop")


def test_a_soft_limit_that_passes_while_the_stop_is_sent_leaves_the_rest_to_the_next_check(
    paper, redis_url, redis_client, tmp_path, stack_accounts
):
    """Stopping between calls loses nothing: the stop goes and is recorded, the take-profits the
    pass did not send are recorded as not sent, and the next check sends them."""
    with setup(paper, redis_url, tmp_path, stack_accounts) as (rt, app, env):
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        paper.admin.set_prices({"BTCUSDT": "59990"})  # E1 fills: the stop first, then the take-profits
        without_the_entrys_stop(stack_accounts[0]["main"])
        with threads_workers(env, tmp_path) as logs:
            stop_call = "/v5/position/trading-stop" if on_position() else "/v5/order/create-batch"
            paper.admin.add_fault(endpoint=stop_call, latency_ms=2500, count=1)
            check = app.tasks["tpsl.check"]
            sent = check.apply_async(
                ("main", [m.id]), queue="tier.standard", expires=120, soft_time_limit=1, time_limit=30
            )
            bulk = logs["worker_bulk"]
            done = f"Task tpsl.check[{sent.id}] succeeded"  # it recorded what it sent, then ended
            wait_for(lambda: done.encode() in bulk.read_bytes(), timeout=30, what="the first check")
            assert (
                b"account main: soft time limit passed; the rest of the pass is not sent" in bulk.read_bytes()
            )
            assert stop_sent(rt, m.id)
            loaded = MonitorStore(rt.registry).load(m.id)
            assert loaded is not None
            tps = [o for o in loaded.monitor.orders if o.role is OrderRole.TP]
            assert tps and all(o.status is OrderStatus.RETRY for o in tps)  # not sent: sent again later
            assert {o.link_id for o in tps}.isdisjoint(open_links(rt, m.account))
            check.apply_async(("main", [m.id]), queue="tier.standard", expires=120)

            def tps_placed() -> bool:
                loaded = MonitorStore(rt.registry).load(m.id)
                assert loaded is not None
                ids = {o.link_id for o in loaded.monitor.orders if o.role is OrderRole.TP}
                return bool(ids) and ids <= open_links(rt, m.account)

            wait_for(tps_placed, timeout=60, what="the next check to place the take-profits")


def open_links(rt: Runtime, account: str) -> set[str]:
    return {o.link_id for o in rt.client_for(rt.account(account)).open_orders(rt.account(account))}


class Lines(logging.Handler):
    """The lines a logger wrote, as messages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_task_past_its_soft_limit_stops_at_its_check_and_its_thread_serves_the_next_task(
    redis_url, redis_client, tmp_path
):
    from tasks.app import create_app

    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    settings = stack_settings(redis_url, db_url, [])
    rt = build_runtime(settings)
    set_runtime(rt)
    app = create_app(settings)
    trail = "tpsl:test:trail"

    @app.task(name="tpsl.test_slow", shared=False, soft_time_limit=0.5, time_limit=10)
    def slow(run: str, call_s: float) -> None:
        try:
            time.sleep(call_s)  # one call, longer than the soft limit: nothing interrupts it
            redis_client.rpush(trail, f"{run}: call done")
            deadline.check()  # the safe point
            redis_client.rpush(trail, f"{run}: past the safe point")
        finally:
            redis_client.rpush(trail, f"{run}: finally")

    watchdog = Lines()
    logging.getLogger("tasks.time_limits").addHandler(watchdog)
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=1,  # one thread: the second task runs only if the first one freed it
            perform_ping_check=False,
            queues=["maintenance"],
            shutdown_timeout=30,
            loglevel="WARNING",
        ):
            first = slow.apply_async(("first", 1.5), queue="maintenance")
            slow.apply_async(("second", 0.0), queue="maintenance")
            wait_for(lambda: redis_client.llen(trail) >= 5, timeout=30, what="both tasks")
            assert redis_client.lrange(trail, 0, -1) == [
                "first: call done",
                "first: finally",
                "second: call done",
                "second: past the safe point",
                "second: finally",
            ]
            assert watchdog.lines == [
                f"task tpsl.test_slow[{first.id}]: soft time limit exceeded; it stops at its next safe point"
            ]
    finally:
        logging.getLogger("tasks.time_limits").removeHandler(watchdog)
        set_runtime(None)
        rt.close()
