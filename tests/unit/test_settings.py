"""Settings that switch whole behaviours: the dashboard TTL table and the pooling rollback switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from config.settings import Settings
from workers.ttl_cache import component_ttls

FAST = {
    "account": 60.0,
    "positions": 15.0,
    "orders": 15.0,
    "stats": 300.0,
    "market": 180.0,
    "insights": 1800.0,
}
SEED = {"account": 30.0, "positions": 10.0, "orders": 10.0, "stats": 60.0, "market": 60.0, "insights": 600.0}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, FAST),
        ({"dashboard_ttls": "fast"}, FAST),
        ({"dashboard_ttls": "seed"}, SEED),
        # a TTL set on its own wins over the table it would come from
        ({"dashboard_ttls": "seed", "cache_ttl_orders_s": 3.0}, {**SEED, "orders": 3.0}),
        ({"cache_ttl_orders_s": 3.0}, {**FAST, "orders": 3.0}),
    ],
)
def test_dashboard_ttl_table(given: dict[str, object], expected: dict[str, float]) -> None:
    assert component_ttls(Settings(**given)) == expected


def test_dashboard_ttls_from_the_environment() -> None:
    """As a process reads them: TPSL_DASHBOARD_TTLS=seed, and one TTL of its own."""
    code = "import json; from config.settings import Settings; from workers.ttl_cache import component_ttls; "
    code += "print(json.dumps(component_ttls(Settings())))"
    env = {**os.environ, "TPSL_DASHBOARD_TTLS": "seed", "TPSL_CACHE_TTL_MARKET_S": "5"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {**SEED, "market": 5.0}


def test_an_unknown_ttl_table_is_refused() -> None:
    with pytest.raises(ValidationError, match="dashboard_ttls"):
        Settings(dashboard_ttls="slow")


def test_pooling_and_streams_are_on_by_default_and_part_of_the_baseline() -> None:
    assert Settings().pooling is True and Settings().streams is True
    plain = {
        "fixed_polling": True,
        "per_monitor_calls": True,
        "sync_saves": True,
        "cache_enabled": False,
        "stop_mode": "order",
    }
    assert not Settings(**plain, streams=False).baseline  # pooling still on
    assert not Settings(**plain, pooling=False).baseline  # streams still on
    assert Settings(**plain, pooling=False, streams=False).baseline
    assert not Settings(**{**plain, "stop_mode": "position"}, pooling=False, streams=False).baseline


def test_worker_pool_and_slots() -> None:
    s = Settings(worker_pool="prefork", worker_fast_concurrency=6)
    assert s.worker_pool == "prefork" and Settings().worker_pool == "threads"
    assert [s.slots(p) for p in ("worker_fast", "worker_bulk", "worker_persist")] == [6, 4, 2]
    assert s.slots("worker") == 14  # the one-process layout: every queue, the pools' default slots
    with pytest.raises(ValidationError, match="worker_pool"):
        Settings(worker_pool="gevent")
    with pytest.raises(ValidationError, match="worker_bulk_concurrency"):
        Settings(worker_bulk_concurrency=0)
    with pytest.raises(ValueError, match="pool"):
        s.slots("worker_slow")


def test_alerts_go_somewhere_only_with_a_whole_notifier() -> None:
    assert Settings().notifies is False  # nothing configured: no alert task is sent at all
    assert Settings(webhook_url="").notifies is False
    assert Settings(webhook_url="https://hooks.example/x").notifies is True
    assert Settings(telegram_bot_token="1:abc").notifies is False  # a bot without a chat
    assert Settings(telegram_bot_token="1:abc", telegram_chat_id="-100").notifies is True
