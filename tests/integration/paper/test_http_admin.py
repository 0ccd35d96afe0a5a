"""The admin API over HTTP (accounts, prices, stats, reset, clock, walk, replay), and running the
exchange as its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from devtools.ports import free_port
from exchange.paper.runner import PaperAdmin, PaperAdminError, PaperServer
from exchange.paper.server import AccountSeed
from tests.integration.paper.v5client import V5Client
from tests.plugins.paper import PaperHandle


def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll a condition (no timing assert: the bound is only a safety net)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_create_account_validates_its_input(paper: PaperHandle) -> None:
    url = f"{paper.base_url}/paper/accounts"
    cases = [
        ({"api_secret": "s"}, "api_key"),
        ({"api_key": "k", "api_secret": ""}, "api_secret"),
        ({"api_key": "k", "api_secret": "s", "balance": {"USDT": "lots"}}, "balance.USDT"),
        ({"api_key": "k", "api_secret": "s", "balance": {"BTC": 1}}, "balance"),
        ({"api_key": "k", "api_secret": "s", "hedge_mode": "yes"}, "hedge_mode"),
    ]
    for body, field in cases:
        r = requests.post(url, json=body, timeout=5)
        assert r.status_code == 400, body
        assert r.json()["error"]["field"] == field
    ok = requests.post(
        url, json={"api_key": "k123456789", "api_secret": "s" * 12, "balance": {"USDT": 5}}, timeout=5
    )
    assert ok.status_code == 201
    assert ok.json() == {"id": "acct1", "api_key": "k123***", "hedge_mode": False, "balance": {"USDT": "5"}}
    assert "s" * 12 not in ok.text
    dup = requests.post(url, json={"api_key": "k123456789", "api_secret": "x"}, timeout=5)
    assert dup.status_code == 400 and dup.json()["error"]["field"] == "api_key"


def test_prices_report_the_fills_they_cause(paper: PaperHandle) -> None:
    creds = paper.new_account()
    v5 = V5Client(paper.base_url, creds)
    v5.post(
        "/v5/order/create",
        category="linear",
        symbol="ETHUSDT",
        side="Buy",
        orderType="Limit",
        qty="1",
        price="3400",
        orderLinkId="dip",
    )
    assert paper.admin.set_prices({"ETHUSDT": "3450"}) == []
    (fill,) = paper.admin.set_prices({"ETHUSDT": "3399.995"}, {"ETHUSDT": "3401"})
    assert (fill["account"], fill["orderLinkId"], fill["execQty"], fill["execPrice"]) == (
        creds.id,
        "dip",
        "1.00",
        "3400.00",
    )
    assert fill["api_key"].endswith("***") and creds.api_key not in str(fill)
    assert (fill["qty"], fill["price"]) == ("1.00", "3400.00")
    assert creds.api_key not in repr(creds) and creds.api_secret not in repr(creds)
    assert paper.admin.prices("ETHUSDT") == {
        "ETHUSDT": {"last": "3400.00", "mark": "3401.00"}
    }  # rounded to tick
    with pytest.raises(PaperAdminError) as err:
        paper.admin.set_prices({"NOPEUSDT": "1"})
    assert err.value.status == 400 and err.value.field == "prices.NOPEUSDT"
    with pytest.raises(PaperAdminError) as err:
        paper.admin.set_prices({"ETHUSDT": "-1"})
    assert err.value.field == "prices.ETHUSDT"


def test_account_detail(paper: PaperHandle) -> None:
    creds = paper.new_account(balance=1000)
    v5 = V5Client(paper.base_url, creds)
    v5.post(
        "/v5/order/create", category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001"
    )
    v5.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price="60000",
    )
    detail = paper.admin.account(creds.api_key)
    assert detail["id"] == creds.id and detail == paper.admin.account(creds.id)
    assert [p["size"] for p in detail["positions"]] == ["0.001"]
    assert [o["price"] for o in detail["orders"]] == ["60000.00"]
    assert detail["executions"] == 1 and detail["wallet"]["totalWalletBalance"] == "999.96425"
    with pytest.raises(PaperAdminError) as err:
        paper.admin.account("nobody")
    assert err.value.status == 404


def test_stats_count_requests_by_endpoint_and_account_and_connections(paper: PaperHandle) -> None:
    a, b = paper.new_account(), paper.new_account()
    va, vb = V5Client(paper.base_url, a), V5Client(paper.base_url, b)
    paper.admin.reset()  # stats only
    for _ in range(3):
        va.get("/v5/position/list", category="linear", settleCoin="USDT")
    vb.get("/v5/order/realtime", category="linear", settleCoin="USDT")
    requests.get(f"{paper.base_url}/v5/market/time", timeout=5)
    stats = paper.admin.stats()
    assert stats["total"] == 5
    assert stats["by_endpoint"] == {"/v5/position/list": 3, "/v5/order/realtime": 1, "/v5/market/time": 1}
    assert stats["by_account"] == {a.id: {"/v5/position/list": 3}, b.id: {"/v5/order/realtime": 1}}
    # va and vb each reuse one keep-alive connection; the bare requests.get opens its own; and the admin's
    assert stats["connections"] == 4
    assert paper.admin.account(a.api_key)["id"] == a.id  # a plain reset keeps the accounts


def test_full_reset_wipes_everything(paper: PaperHandle) -> None:
    creds = paper.new_account()
    paper.admin.set_prices({"BTCUSDT": "70000"})
    paper.admin.add_fault(endpoint="*", latency_ms=1)
    paper.admin.set_clock_offset(5000)
    paper.admin.set_rate_limits(enabled=False)
    paper.admin.reset(all=True)
    assert paper.admin.accounts() == []
    assert paper.admin.prices("BTCUSDT")["BTCUSDT"]["last"] == "65000.00"
    assert paper.admin.faults() == []
    assert paper.admin.rate_limits()["enabled"] is True
    assert paper.admin.set_clock_offset(0)["offset_ms"] == 0
    assert paper.admin.stats()["total"] == 0
    with pytest.raises(PaperAdminError):
        paper.admin.account(creds.api_key)


def test_random_walk_starts_moves_prices_and_stops(paper: PaperHandle) -> None:
    started = paper.admin.start_walk(["BTCUSDT", "SYN0001USDT"], seed=3, volatility=0.01, interval_ms=5)
    assert started["running"] is True
    wait_for(lambda: paper.admin.walk()["steps"] >= 5)
    stopped = paper.admin.stop_walk()
    assert stopped["running"] is False
    prices = paper.admin.prices("BTCUSDT", "ETHUSDT")
    assert prices["BTCUSDT"]["last"] != "65000.00" and prices["ETHUSDT"]["last"] == "3500.00"
    steps = paper.admin.walk()["steps"]
    time.sleep(0.05)
    assert paper.admin.walk()["steps"] == steps  # really stopped
    with pytest.raises(PaperAdminError) as err:
        paper.admin.start_walk(["NOPE"])
    assert err.value.field == "symbols"


def test_replay_applies_the_rows_in_time_order(paper: PaperHandle) -> None:
    creds = paper.new_account()
    V5Client(paper.base_url, creds).post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price="64000",
    )
    csv = "ts,symbol,price\n0,BTCUSDT,64500\n100,BTCUSDT,63900\n200,BTCUSDT,64800\n200,ETHUSDT,3300\n"
    assert paper.admin.replay(csv, speed=10)["total"] == 3
    wait_for(lambda: not paper.admin.replay_status()["running"])
    assert paper.admin.replay_status()["applied"] == 3
    prices = paper.admin.prices("BTCUSDT", "ETHUSDT")
    assert (prices["BTCUSDT"]["last"], prices["ETHUSDT"]["last"]) == ("64800.00", "3300.00")
    assert [p["size"] for p in paper.admin.account(creds.api_key)["positions"]] == [
        "0.001"
    ]  # filled on the dip
    with pytest.raises(PaperAdminError) as err:
        paper.admin.replay("0,BTCUSDT,abc\n")
    assert err.value.status == 400 and err.value.field == "csv line 1"


def test_unknown_admin_route(paper: PaperHandle) -> None:
    r = requests.get(f"{paper.base_url}/paper/nothing", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_in_process_server_with_seeded_accounts_and_a_full_reset() -> None:
    seed = AccountSeed(api_key="seed-key-1", api_secret="seed-secret-1", balance=1234)
    with PaperServer(accounts=[seed, "seed-key-2:s2:7"], rate_limits=False, extra_symbols=2) as server:
        admin = server.admin
        assert admin.account("seed-key-1")["balance"] == {"USDT": "1234"}
        assert admin.account("seed-key-2")["balance"] == {"USDT": "7"}
        admin.reset(all=True)
        assert admin.account("seed-key-1")["balance"] == {"USDT": "1234"}  # re-created
        assert admin.rate_limits()["enabled"] is False
        assert "SYN0002USDT" in admin.prices()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/v5/market/time", timeout=2)


def test_runs_as_its_own_process() -> None:
    command = [sys.executable, "-m", "cli.main", "paper", "serve"]
    port = free_port()
    proc = subprocess.Popen(
        [
            *command,
            "--port",
            str(port),
            "--account",
            "proc-key:proc-secret:500",
            "--extra-symbols",
            "3",
            "--walk",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        admin = PaperAdmin(f"http://127.0.0.1:{port}")

        def up() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                return admin.health()
            except requests.ConnectionError:
                return False

        wait_for(up, timeout=30)
        assert admin.account("proc-key")["balance"] == {"USDT": "500"}
        assert "SYN0003USDT" in admin.prices()
        walk = admin.walk()  # --walk: the first step is taken at start, then one a second
        assert walk["running"] is True and walk["steps"] >= 1 and "BTCUSDT" in walk["symbols"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()
    assert b"proc-secret" not in out
