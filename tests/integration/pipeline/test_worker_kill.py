"""A worker killed with SIGKILL in the middle of a check loses no monitor: the unacked message comes
back after the visibility timeout and another worker checks the account."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from config.queues import ALL_QUEUES
from core.models import OrderRole, Tier
from persistence.migrate import upgrade
from tests.plugins.stack import position_stop, stack_settings, wait_for
from tests.plugins.stop_mode import without_the_entrys_stop
from workers.lifecycle import create_monitor
from workers.runtime import build_runtime, set_runtime
from workers.store import MonitorStore

from .plans import conservative_long

ROOT = Path(__file__).resolve().parents[3]
SLOW = {t: 60.0 for t in Tier}  # no natural re-check during the test: only the redelivery can do it


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-P",
        "solo",
        "-n",
        f"{name}@%h",
        "-Q",
        ",".join(ALL_QUEUES),
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
    ]
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_sigkill_mid_check_loses_no_monitor(paper, redis_url, redis_client, tmp_path, stack_accounts):
    from tasks.app import create_app, runtime

    creds, accounts = stack_accounts
    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    over = {"visibility_timeout_s": 2.0, "account_lock_ttl_s": 2.0, "tier_intervals": SLOW}
    settings = stack_settings(redis_url, db_url, accounts, **over)
    rt = build_runtime(settings)
    set_runtime(rt)
    app = create_app(settings)
    runtime(app)
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        DATABASE_URL=db_url,
        TPSL_ACCOUNTS=json.dumps(accounts),
        TPSL_VISIBILITY_TIMEOUT_S="2",
        TPSL_ACCOUNT_LOCK_TTL_S="2",
        TPSL_TIER_INTERVALS=json.dumps({t.value: 60 for t in Tier}),
        PYTHONUNBUFFERED="1",
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        paper.admin.set_prices({"BTCUSDT": "59990"})  # E1 fills: the next check must place the stop
        without_the_entrys_stop(creds["main"])
        paper.admin.add_fault(endpoint="/v5/position/list", latency_ms=8000, count=1)
        log1 = tmp_path / "w1.log"
        w1 = start_worker(env, "w1", log1)
        workers.append(w1)
        wait_for(lambda: b"ready" in log1.read_bytes(), what="worker 1 ready")
        before = paper.admin.stats()["by_endpoint"].get("/v5/position/list", 0)
        app.tasks["tpsl.check"].apply_async(("main", [m.id]), queue="tier.standard", expires=120)
        # the check is inside its (slow) read of the account: kill the worker there (the one-shot
        # fault is gone once it fired: the read is being held)
        wait_for(
            lambda: (
                paper.admin.stats()["by_endpoint"].get("/v5/position/list", 0) > before
                and not paper.admin.faults()
            ),
            what="the check to be inside its slow read",
        )
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait(10)

        def stop_placed() -> bool:  # a stop order of ours, or the position's own stop-loss
            if settings.stop_mode == "position":
                return position_stop(paper, creds["main"].api_key, "BTCUSDT") is not None
            return bool(MonitorStore(rt.registry).load(m.id).monitor.live_orders(OrderRole.SL))

        assert not stop_placed()
        paper.admin.clear_faults()
        log2 = tmp_path / "w2.log"
        workers.append(start_worker(env, "w2", log2))
        # the message comes back (visibility timeout) and the second worker does the check
        wait_for(stop_placed, timeout=60, what="the redelivered check to place the stop")
        sl_orders = [
            o for o in paper.admin.account(creds["main"].api_key)["orders"] if "-SL-" in o["orderLinkId"]
        ]
        assert len(sl_orders) == (0 if settings.stop_mode == "position" else 1)
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(w.pid, signal.SIGKILL)
        set_runtime(None)
        rt.close()
