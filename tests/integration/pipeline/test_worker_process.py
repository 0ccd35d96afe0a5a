"""A real `tpsl worker` process (Celery's worker command, as the Procfile starts it): it reconciles
when it starts and flushes what is coalesced when it stops; the orphan sweep cancels what no live
monitor owns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from core import ids
from core.models import CancelOrder, OrderRole, PlaceOrder, Side
from persistence.migrate import upgrade
from persistence.stats import persist_stats
from tests.plugins.stack import stack_settings, wait_for
from workers.lifecycle import create_monitor
from workers.maintenance import cancel_orphans
from workers.runtime import build_runtime, set_runtime

from .plans import conservative_long

ROOT = Path(__file__).resolve().parents[3]


def test_worker_reconciles_on_start_and_flushes_on_stop(
    paper, redis_url, redis_client, tmp_path, stack_accounts
):
    _, accounts = stack_accounts
    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    rt = build_runtime(stack_settings(redis_url, db_url, accounts))
    set_runtime(rt)
    try:
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(rt, conservative_long())
        redis_client.flushdb()  # Redis lost everything while no worker ran
        assert rt.registry.get(m.id) is None
        # something non-critical waits in the coalescing buffer
        from core.models import Event, EventKind
        from workers.store import MonitorStore, record_of  # noqa: F401

        event = Event(
            ids.event_id(m.id, "monitoring_update", "x"),
            m.id,
            "main",
            EventKind.MONITORING_UPDATE,
            rt.clock(),
            m.version,
            {"note": "pending"},
        )
        rt.writer.buffer([event], [])
        assert persist_stats(redis_client, prefix="tpsl")["pending"] == 1
        env = dict(
            os.environ,
            REDIS_URL=redis_url,
            DATABASE_URL=db_url,
            TPSL_ACCOUNTS=json.dumps(accounts),
            PYTHONUNBUFFERED="1",
        )
        log = tmp_path / "worker.log"
        cmd = [
            sys.executable,
            "-m",
            "cli.main",  # `tpsl worker`, as the Procfile starts it
            "worker",
            "-P",
            "solo",
            "-n",
            "w@%h",
            "-Q",
            "persist,alerts",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        with log.open("wb") as out:  # the child keeps its own descriptor
            w = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for(lambda: rt.registry.get(m.id) is not None, what="reconcile at worker start")
            wait_for(lambda: b"reconcile: restored 1" in log.read_bytes(), what="the reconcile line")
            assert b"CRITICAL workers.reconcile" in log.read_bytes()  # a lost registry is said so
        finally:
            os.killpg(w.pid, signal.SIGTERM)
            assert w.wait(30) == 0
        assert persist_stats(redis_client, prefix="tpsl")["pending"] == 0  # flushed on the way out
        from persistence.db import session_factory
        from persistence.queries import events_for

        with session_factory(rt.engine)() as s:
            assert event.id in {e.id for e in events_for(s, m.id)}
    finally:
        set_runtime(None)
        rt.close()


def test_orphan_orders_are_cancelled_and_live_ones_kept(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.quiesce()
    account = stack.rt.account("main")
    client = stack.rt.client_for(account)
    orphan = ids.link_id("zzzzzzzzzz", OrderRole.TP, 1, 1)  # ours by prefix, no live monitor
    foreign = "manual-order-1"  # not ours at all
    res = client.place(
        account,
        [
            PlaceOrder(
                "main",
                "zzzzzzzzzz",
                orphan,
                "BTCUSDT",
                Side.BUY,
                qty=stack.monitor(m.id).plan.entries[0].qty,
                price=stack.monitor(m.id).plan.entries[2].price - 1000,
            ),
            PlaceOrder(
                "main",
                "-",
                foreign,
                "BTCUSDT",
                Side.BUY,
                qty=stack.monitor(m.id).plan.entries[0].qty,
                price=stack.monitor(m.id).plan.entries[2].price - 1000,
            ),
        ],
    )
    assert all(r.ok for r in res)
    cancelled = cancel_orphans(stack.rt)
    assert cancelled == {"main": 1}
    open_now = {o["orderLinkId"] for o in stack.exchange_orders() if o["orderStatus"] == "New"}
    assert orphan not in open_now and foreign in open_now
    assert {o.link_id for o in stack.monitor(m.id).live_orders()} <= open_now
    client.cancel(account, [CancelOrder("main", "-", foreign, "BTCUSDT")])
