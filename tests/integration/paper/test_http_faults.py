"""Injected faults over real HTTP: latency, HTTP errors, retCodes (10006 with rate-limit headers),
held requests (client read timeouts) and dropped connections, expiring after `count`."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.paper.v5client import V5Client
from tests.plugins.paper import PaperHandle


@pytest.fixture
def v5(paper: PaperHandle) -> V5Client:
    return V5Client(paper.base_url, paper.new_account())


def test_latency_fault_delays_the_answer(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/position/list", latency_ms=300, count=1)
    started = time.monotonic()
    assert v5.get("/v5/position/list", category="linear", settleCoin="USDT")["retCode"] == 0
    assert time.monotonic() - started >= 0.3  # a lower bound: a slow machine only adds to it
    assert paper.admin.faults() == []  # count 1: expired


def test_http_status_fault(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/order/realtime", http_status=503, count=2)
    for _ in range(2):
        r = v5.raw_get("/v5/order/realtime", category="linear", settleCoin="USDT")
        assert r.status_code == 503
    assert v5.raw_get("/v5/order/realtime", category="linear", settleCoin="USDT").status_code == 200
    assert v5.raw_get("/v5/position/list", category="linear", settleCoin="USDT").status_code == 200


def test_rate_limit_fault_carries_headers_with_a_future_reset(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="*", ret_code=10006, count=1)
    before_ms = int(time.time() * 1000)
    r = v5.raw_get("/v5/position/list", category="linear", settleCoin="USDT")
    assert r.status_code == 200 and r.json()["retCode"] == 10006
    assert r.headers["X-Bapi-Limit-Status"] == "0"
    assert int(r.headers["X-Bapi-Limit"]) > 0
    assert int(r.headers["X-Bapi-Limit-Reset-Timestamp"]) >= before_ms


def test_ret_code_fault_does_not_execute_the_request(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/order/create", ret_code=10016, ret_msg="Server error", count=1)
    answer = v5.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.001",
        orderLinkId="f1",
    )
    assert (answer["retCode"], answer["retMsg"]) == (10016, "Server error")
    assert paper.admin.account(v5.creds.api_key)["positions"] == []


def test_timeout_fault_executes_then_holds_the_answer(paper: PaperHandle, v5: V5Client) -> None:
    """The dangerous case: the order went through but the client never saw the answer."""
    paper.admin.add_fault(endpoint="/v5/order/create", timeout=True, hold_ms=1000, count=1)
    with pytest.raises(requests.ReadTimeout):
        v5.post(
            "/v5/order/create",
            timeout=0.2,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.001",
            orderLinkId="t1",
        )
    assert [p["size"] for p in paper.admin.account(v5.creds.api_key)["positions"]] == ["0.001"]
    retry = v5.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.001",
        orderLinkId="t1",
    )
    assert retry["retCode"] == 110072  # the idempotency key catches the retry


def test_timeout_fault_without_execution(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/order/create", timeout=True, hold_ms=500, execute=False, count=1)
    with pytest.raises(requests.ReadTimeout):
        v5.post(
            "/v5/order/create",
            timeout=0.2,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.001",
        )
    assert paper.admin.account(v5.creds.api_key)["positions"] == []


def test_dropped_connection(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/order/create", drop_connection=True, count=1)
    with pytest.raises(requests.ConnectionError):
        v5.post(
            "/v5/order/create",
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.001",
            orderLinkId="d1",
        )
    assert paper.admin.account(v5.creds.api_key)["positions"] == []  # not executed
    ok = v5.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.001",
        orderLinkId="d1",
    )
    assert ok["retCode"] == 0  # the server is fine afterwards; the id was never used


def test_error_rate_is_deterministic_given_a_seed(paper: PaperHandle, v5: V5Client) -> None:
    def pattern() -> list[int]:
        paper.admin.clear_faults()
        paper.admin.add_fault(endpoint="/v5/market/time", http_status=502, error_rate=0.5, seed=42)
        return [v5.raw_get("/v5/market/time").status_code for _ in range(30)]

    first, second = pattern(), pattern()
    assert first == second
    assert set(first) == {200, 502}


def test_faults_only_hit_their_endpoint_and_clear(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.add_fault(endpoint="/v5/order/*", http_status=500)
    assert v5.raw_get("/v5/order/realtime", category="linear", settleCoin="USDT").status_code == 500
    assert v5.raw_get("/v5/execution/list", category="linear").status_code == 200
    paper.admin.clear_faults()
    assert v5.raw_get("/v5/order/realtime", category="linear", settleCoin="USDT").status_code == 200


def test_bad_fault_spec_is_a_400_naming_the_field(paper: PaperHandle) -> None:
    r = requests.post(f"{paper.base_url}/paper/faults", json={"endpoint": "*", "error_rate": 3}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "error_rate"
