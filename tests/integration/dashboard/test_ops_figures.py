"""Operations figures read straight from a real Redis (no worker consuming the queues here)."""

from __future__ import annotations

import json
import time

from config.queues import ALL_QUEUES
from config.settings import Settings
from dashboard.stats import OpsStats
from workers.runtime import build_runtime


def runtime(redis_url):
    settings = Settings(redis_url=redis_url, database_url="sqlite://", accounts="[]")
    return build_runtime(settings)


def test_queue_depths_count_waiting_messages(redis_client, redis_url):
    rt = runtime(redis_url)
    try:
        redis_client.rpush("tier.idle", b"x", b"y")  # the broker keeps a queue in a Redis list of its name
        redis_client.rpush("tier.idle\x06\x163", b"z")  # kombu's list for priority 3 of that queue
        redis_client.rpush("persist", b"p")
        depths = OpsStats(rt, None).queue_depths()
        assert set(depths) == set(ALL_QUEUES)
        assert depths["tier.idle"] == 3 and depths["persist"] == 1 and depths["tier.critical"] == 0
    finally:
        rt.close()


def test_exchange_calls_per_minute_from_the_fleet_counters(redis_client, redis_url):
    rt = runtime(redis_url)
    try:
        now = 1_800_000_000.0
        minute = int(now // 60) - 1  # the last complete minute
        redis_client.hset(
            f"tpsl:calls:{minute}", mapping={"main|/v5/position/list": 7, "main|/v5/position/list|err": 2}
        )
        redis_client.hset(f"tpsl:calls:{minute - 1}", mapping={"mirror1|/v5/order/realtime": 3})
        calls = OpsStats(rt, None).calls(now=now)
        assert calls["last_minute"] == 7 and calls["errors_last_minute"] == 2
        assert calls["by_endpoint"] == {"main|/v5/position/list": 7}
        assert [p["calls"] for p in calls["per_minute"]][-2:] == [3, 7]
    finally:
        rt.close()


def test_tier_series_keeps_one_point_per_step(redis_client, redis_url):
    rt = runtime(redis_url)
    try:
        ops = OpsStats(rt, None)
        t = time.time()
        assert ops.record_tiers({"critical": 1}, now=t)
        assert not ops.record_tiers({"critical": 2}, now=t + 1)  # same 10 s step: kept out
        assert ops.record_tiers({"critical": 3}, now=t + 11)
        series = ops.tier_series()
        assert [p["critical"] for p in series] == [1, 3]
        assert json.loads(json.dumps(series))[0]["at"] == round(t, 3)
    finally:
        rt.close()
