"""Redis restarted while checks are in flight: the worker lives through it and checks again."""

from __future__ import annotations

import time

import pytest

from core.models import Tier
from devtools.embedded_redis import EmbeddedRedis
from tests.integration.pipeline.plans import conservative_long
from tests.plugins.stack import wait_for
from tests.reliability.support import environment
from workers.lifecycle import create_monitor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RESTARTS = 20
SLOW = {t: 60.0 for t in Tier}  # no natural check: the test sends each one


def reads(paper) -> int:
    return paper.admin.stats()["by_endpoint"].get("/v5/position/list", 0)


def test_worker_survives_redis_restarts_with_checks_in_flight(paper, stack_accounts, tmp_path):
    _, accounts = stack_accounts
    with (
        EmbeddedRedis(appendonly=True) as server,
        environment(server.url, tmp_path, accounts, tier_intervals=SLOW, account_lock_ttl_s=3.0) as env,
    ):
        paper.admin.set_prices({"BTCUSDT": "60500"})
        m = create_monitor(env.rt, conservative_long())
        worker, log = env.worker("w1")
        wait_for(lambda: b"ready" in log.read_bytes(), what="worker ready")
        check = env.rt.publisher.app.tasks["tpsl.check"]
        lock = "tpsl:lock:account:main"
        for i in range(RESTARTS):
            # a check cut by the previous restart may still hold the account for its lock's TTL
            wait_for(lambda: not env.rt.redis.exists(lock), what="the account lock free")
            paper.admin.add_fault(endpoint="/v5/position/list", latency_ms=1000, count=1)
            before = reads(paper)
            check.apply_async(("main", [m.id]), queue="tier.standard", expires=60)
            wait_for(lambda n=before: reads(paper) > n, what=f"check {i} in flight")
            server.restart(kill=i % 2 == 1)  # SIGTERM and SIGKILL in turn (AOF: the data stays)
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
        # it still checks: a check sent the moment Redis is back is read within seconds
        wait_for(lambda: not env.rt.redis.exists(lock), what="the account lock free")
        before = reads(paper)
        server.restart()
        restarted = time.monotonic()
        check.apply_async(("main", [m.id]), queue="tier.standard", expires=60)
        wait_for(lambda: reads(paper) > before, timeout=60, what="a check after the restarts")
        print(f"\nfigure: a check sent at a Redis restart runs after {time.monotonic() - restarted:.2f} s")
        assert worker.poll() is None
