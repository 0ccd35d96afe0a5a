"""The worker processes as `tpsl demo`, the benchmark and the Procfile start them, with
TPSL_WORKER_POOL=threads: a check runs end to end (read, stop placed, critical event persisted by the
persist pool), and a check past its soft time limit is stopped in its thread as prefork would stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.models import OrderRole, Tier
from devtools.stack import with_source_path, worker_specs
from persistence.migrate import upgrade
from tests.plugins.stack import stack_settings, wait_for
from tests.plugins.stop_mode import on_position
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


def test_a_check_past_its_soft_time_limit_is_stopped_on_the_threads_pool(
    paper, redis_url, redis_client, tmp_path, stack_accounts
):
    with setup(paper, redis_url, tmp_path, stack_accounts) as (rt, app, env):
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        paper.admin.set_prices({"BTCUSDT": "59990"})  # E1 fills
        with threads_workers(env, tmp_path) as logs:
            paper.admin.add_fault(endpoint="/v5/position/list", latency_ms=6000, count=1)
            check = app.tasks["tpsl.check"]
            check.apply_async(
                ("main", [m.id]), queue="tier.standard", expires=120, soft_time_limit=1, time_limit=30
            )
            bulk = logs["worker_bulk"]
            wait_for(lambda: b"soft time limit exceeded" in bulk.read_bytes(), what="the soft limit")
            # the exception lands when the slow read returns: the check fails there, before acting,
            # and its lock is released by its own `finally` (not left to expire)
            wait_for(lambda: b"SoftTimeLimitExceeded" in bulk.read_bytes(), timeout=20, what="the failure")
            assert redis_client.exists("tpsl:lock:account:main") == 0
            assert not stop_sent(rt, m.id)
            # the worker goes on: the next check of the account does what the stopped one did not
            check.apply_async(("main", [m.id]), queue="tier.standard", expires=120)
            wait_for(lambda: stop_sent(rt, m.id), timeout=60, what="the next check to place the stop")
