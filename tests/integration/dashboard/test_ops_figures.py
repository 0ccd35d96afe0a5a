"""Operations figures read straight from a real Redis (no worker consuming the queues here)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from decimal import Decimal as D

import pytest

from config.queues import ALL_QUEUES
from config.settings import Settings
from core.models import Monitor, Tier
from dashboard.stats import OpsStats
from tests.unit.core.builders import conservative_long
from workers import series
from workers.runtime import build_runtime
from workers.series import collect, latest_prices
from workers.store import encode


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
        ops.compute()
        assert ops.tier_series() == []  # computing (serving) the figures writes no series
        t = time.time()
        assert collect(rt, now=t) == {"tiers": 1, "prices": 0}  # no live monitor: no price
        assert collect(rt, now=t + 1)["tiers"] == 0  # same 10 s step: kept out
        m = Monitor(id="m1", account="main", plan=conservative_long(), tier=Tier.CRITICAL)
        rt.registry.add("m1", "main", encode(replace(m, last_price=D("60000"))), "critical", t)
        assert collect(rt, now=t + 11) == {"tiers": 1, "prices": 1}
        assert series.read_prices(rt.redis, rt.prefix, m.plan.symbol) == [(round(t + 11, 3), 60000.0)]
        tiers = ops.tier_series()
        assert [p["critical"] for p in tiers] == [0, 1]
        assert json.loads(json.dumps(tiers))[0]["at"] == round(t, 3)
    finally:
        rt.close()


@pytest.mark.parametrize(
    ("views", "want"),
    [
        ([], {}),
        ([{"symbol": "BTCUSDT", "last_price": None, "updated_at": 5}], {}),
        ([{"symbol": "BTCUSDT", "last_price": "60000", "updated_at": 5}], {"BTCUSDT": "60000"}),
        (  # the most recently updated monitor of a symbol gives its price
            [
                {"symbol": "BTCUSDT", "last_price": "60000", "updated_at": 5},
                {"symbol": "BTCUSDT", "last_price": "60100", "updated_at": 9},
                {"symbol": "BTCUSDT", "last_price": "59900", "updated_at": 7},
                {"symbol": "SOLUSDT", "last_price": "150", "updated_at": None},
            ],
            {"BTCUSDT": "60100", "SOLUSDT": "150"},
        ),
    ],
)
def test_latest_prices(views, want):
    assert latest_prices(views) == want
