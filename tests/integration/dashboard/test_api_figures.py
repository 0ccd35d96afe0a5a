"""Accounts, operations figures, insights and /metrics over the running stack; the cache in front of
the exchange; invalidation by a critical event flowing through the real pipeline."""

from __future__ import annotations

import time
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from config.queues import ALL_QUEUES
from core.models import Tier
from tests.integration.pipeline.plans import conservative_long, fast_long
from workers.series import collect


def exchange_calls(stack, account, path):
    """Requests the paper exchange received for (account, endpoint)."""
    paper_id = stack.creds[account].id  # the paper exchange's stats name accounts by id, never by key
    return stack.paper.admin.stats()["by_account"].get(paper_id, {}).get(path, 0)


def test_account_data_comes_through_the_cache(dash):
    stack = dash.stack
    stack.prices(SOLUSDT="150")
    m = dash.client.post("/api/monitors", json=fast_long()).json()
    stack.wait(lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["phase"] == "monitoring")
    stack.wait(lambda: stack.stop_trigger(m["id"]) is not None, what="the stop in place")

    r = dash.client.get("/api/accounts/main")
    assert r.status_code == 200
    acc = r.json()
    assert {
        "id",
        "role",
        "equity",
        "wallet_balance",
        "available",
        "unrealised_pnl",
        "positions",
        "orders",
    } <= acc.keys()
    assert [(p["symbol"], p["side"], Decimal(p["size"])) for p in acc["positions"]] == [
        ("SOLUSDT", "Buy", 10)
    ]
    ours = [o for o in acc["orders"] if o["monitor_id"] == m["id"]]
    if stack.on_position:  # the stop is the position's own stop-loss: no stop order
        assert {o["role"] for o in ours} == {"TP1"}
        assert Decimal(acc["positions"][0]["stop_loss"]) == stack.stop_trigger(m["id"])
    else:
        assert {o["role"] for o in ours} == {"TP1", "SL"}
    assert "api_key" not in r.text and "base_url" not in acc

    before = {
        p: exchange_calls(stack, "main", p) for p in ("/v5/account/wallet-balance", "/v5/position/list")
    }
    for _ in range(5):
        assert dash.client.get("/api/accounts/main").json()["positions"] == acc["positions"]
    after = {p: exchange_calls(stack, "main", p) for p in before}
    assert after["/v5/account/wallet-balance"] == before["/v5/account/wallet-balance"]  # hits: no call
    comps = dash.client.get("/api/stats").json()["cache"]["components"]
    assert comps["account"]["hits"] >= 5 and comps["positions"]["hits"] >= 5


def test_a_critical_event_invalidates_the_account_entries(dash):
    """A fill (tp_hit → position_closed) recorded by the worker drops the cached positions/orders."""
    stack = dash.stack
    stack.prices(SOLUSDT="150")
    m = dash.client.post("/api/monitors", json=fast_long()).json()
    stack.wait(lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["phase"] == "monitoring")
    cache = dash.cache
    stack.wait(lambda: dash.client.get("/api/accounts/main").json()["positions"], what="position cached")
    key = cache.key("positions", "main")
    assert stack.rt.redis.exists(key)  # cached for 15 s…

    stack.prices(SOLUSDT="160.5")  # …until the take-profit fills: a critical event of "main"
    stack.wait(lambda: not stack.rt.redis.exists(key), what="positions entry dropped by the worker")
    assert dash.client.get("/api/accounts/main").json()["positions"] == []  # fresh, long before 15 s


def test_stats_shape(dash):
    dash.stack.prices(BTCUSDT="60500")
    dash.client.post("/api/monitors", json=conservative_long())
    # a sample of any tier: which tier the monitor sits in first follows the price its first
    # check reads (a busy CI run once left it in `standard`, and a wait for `active` or `critical`
    # timed out); this test is about the answer's shape
    dash.stack.wait(
        lambda: any(f["samples"] > 0 for f in dash.client.get("/api/stats").json()["check_lag"].values()),
        what="a check lag sample",
    )
    s = dash.client.get("/api/stats").json()
    assert {
        "exchange_calls",
        "cache",
        "connections",
        "persistence",
        "monitors",
        "queues",
        "check_lag",
        "reaction",
    } <= s.keys()
    assert len(s["exchange_calls"]["per_minute"]) == 10
    assert set(s["cache"]["components"]) >= {"account", "positions", "orders", "stats", "market", "insights"}
    assert s["monitors"]["by_tier"].keys() == {t.value for t in Tier} and s["monitors"]["live"] == 1
    assert s["monitors"]["by_phase"]["building"] == 1  # from the database (stats entry)
    assert set(s["queues"]) == set(ALL_QUEUES)
    assert set(s["check_lag"]) == {t.value for t in Tier}
    assert all({"p50_s", "p99_s", "samples"} <= f.keys() for f in s["check_lag"].values())
    assert {"events_received", "transactions", "coalescing_ratio", "pending"} <= s["persistence"].keys()
    assert s["connections"]["scope"] == "this web process"
    ops = dash.server.app.state.dashboard.ops
    assert ops.tier_series() == []  # a GET writes no series: beat collects them (tpsl.series)
    collect(ops.rt, now=time.time())
    series = ops.tier_series()
    assert series and series[-1]["active"] + series[-1]["critical"] + series[-1]["standard"] == 1


def test_metrics_parse_and_carry_the_fleet_figures(dash):
    dash.stack.prices(BTCUSDT="60500")
    dash.client.post("/api/monitors", json=conservative_long())
    dash.client.get("/api/accounts/main")
    dash.client.get("/api/accounts/main")
    dash.stack.wait(lambda: "tpsl_check_lag_p50_seconds" in dash.client.get("/metrics").text)
    dash.stack.wait(lambda: dash.stack.watch.health()["main"]["connected"], what="main's stream up")
    r = dash.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "tpsl_cache_hits",
        "tpsl_cache_misses",
        "tpsl_exchange_calls_last_minute",
        "tpsl_exchange_calls_per_minute",
        "tpsl_ratelimit_tokens",
        "tpsl_http_connection_reuse_ratio",
        "tpsl_persist_events_received",
        "tpsl_persist_transactions",
        "tpsl_check_lag_p50_seconds",
        "tpsl_check_lag_p99_seconds",
        "tpsl_monitors",
        "tpsl_queue_depth",
        "tpsl_scrape_errors",
    ):
        assert name in families, name

    def value(family, **labels):
        for s in families[family].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"{family} {labels} missing")

    assert value("tpsl_cache_hits", component="account") >= 1
    # the one monitor, in whichever tier its checks have put it by now (a read from the stream view
    # can make a building monitor `standard` before this scrape)
    assert sum(value("tpsl_monitors", tier=t.value) for t in Tier) == 1
    assert value("tpsl_queue_depth", queue="persist") >= 0
    assert all(s.value == 0 for s in families["tpsl_scrape_errors"].samples)
    # the stack runs the stream process: main's private stream is reported up, nothing diverged
    assert value("tpsl_stream_up", account="main") == 1
    assert value("tpsl_stream_divergence", account="main") == 0


def test_insights_and_health(dash):
    stack = dash.stack
    stack.prices(SOLUSDT="150")
    m = dash.client.post("/api/monitors", json=fast_long()).json()
    stack.wait(lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["phase"] == "monitoring")
    stack.prices(SOLUSDT="160.5")
    stack.wait(lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["live"] is False)
    ins = dash.client.get("/api/insights", params={"days": 1}).json()
    assert ins["closed"] == 1 and ins["close_reasons"]["tp_complete"] == 1
    assert ins["tp_hit_rates"]["1"]["hits"] == 1
    assert dash.client.get("/api/health").json() == {"status": "ok", "redis": "ok", "database": "ok"}


def test_health_is_503_when_the_database_is_gone(stack):
    import httpx

    from dashboard.app import create_app
    from dashboard.server import DashboardServer
    from workers.runtime import build_runtime

    dead = "postgresql+psycopg://tpsl:pw-in-url@127.0.0.1:1/tpsl?connect_timeout=2"  # nothing listens
    settings = stack.settings.model_copy(update={"database_url": SecretStr(dead)})
    rt = build_runtime(settings)
    try:
        with DashboardServer(create_app(rt)) as server:
            r = httpx.get(server.url + "/api/health", timeout=30)
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unavailable" and body["redis"] == "ok"
            assert body["database"].startswith("error:") and "pw-in-url" not in r.text
    finally:
        rt.close()
