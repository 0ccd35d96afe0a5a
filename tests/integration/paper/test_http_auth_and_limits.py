"""Signing and rate limits over real HTTP: raw query / raw body signatures, header case, the time
window, the envelope, and per-account per-endpoint rolling limits with their headers."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests
from pybit.unified_trading import HTTP

from tests.integration.paper.v5client import V5Client
from tests.plugins.paper import PaperHandle


@pytest.fixture
def v5(paper: PaperHandle) -> V5Client:
    return V5Client(paper.base_url, paper.new_account())


def test_envelope_and_headers(v5: V5Client) -> None:
    r = v5.raw_get("/v5/position/list", category="linear", settleCoin="USDT")
    body = r.json()
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert (body["retCode"], body["retMsg"], type(body["time"])) == (0, "OK", int)
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Bapi-Limit"] == "50" and r.headers["X-Bapi-Limit-Status"] == "49"
    assert int(r.headers["X-Bapi-Limit-Reset-Timestamp"]) >= body["time"]


def test_unsorted_query_is_verified_as_sent(v5: V5Client) -> None:
    r = v5.raw_get("/v5/order/realtime", query="settleCoin=USDT&category=linear&limit=5")
    assert r.json()["retCode"] == 0


def test_signature_over_a_different_query_fails(paper: PaperHandle, v5: V5Client) -> None:
    q = "category=linear&settleCoin=USDT"
    headers = v5.headers("category=linear&settleCoin=USDT&limit=5")
    answer = requests.get(f"{paper.base_url}/v5/position/list?{q}", headers=headers, timeout=5).json()
    assert answer["retCode"] == 10004
    assert v5.creds.api_secret not in answer["retMsg"] and v5.creds.api_key not in answer["retMsg"]
    assert f"]{q}]" not in answer["retMsg"] and answer["retMsg"].endswith(f"5000{q}]")


def test_post_body_is_verified_byte_for_byte(paper: PaperHandle, v5: V5Client) -> None:
    body = '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.001"}'
    ok = requests.post(f"{paper.base_url}/v5/order/create", data=body, headers=v5.headers(body), timeout=5)
    assert ok.json()["retCode"] == 0
    respaced = body.replace(",", ", ")
    bad = requests.post(
        f"{paper.base_url}/v5/order/create", data=respaced, headers=v5.headers(body), timeout=5
    )
    assert bad.json()["retCode"] == 10004


def test_header_names_are_case_insensitive_and_sign_type_is_ignored(paper: PaperHandle, v5: V5Client) -> None:
    q = "category=linear&settleCoin=USDT"
    h = v5.headers(q)
    parts = urlsplit(paper.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.putrequest("GET", f"/v5/position/list?{q}", skip_accept_encoding=True)
    conn.putheader("x-bapi-api-key", h["X-BAPI-API-KEY"])
    conn.putheader("X-Bapi-Timestamp", h["X-BAPI-TIMESTAMP"])
    conn.putheader("x-BAPI-recv-WINDOW", h["X-BAPI-RECV-WINDOW"])
    conn.putheader("X-BAPI-SIGN", h["X-BAPI-SIGN"].upper())
    conn.putheader("X-BAPI-SIGN-TYPE", "whatever")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 200 and b'"retCode":0' in resp.read()
    conn.close()


def test_time_window(v5: V5Client) -> None:
    now = int(time.time() * 1000)
    q = "category=linear&settleCoin=USDT"
    stale = requests.get(
        f"{v5.base_url}/v5/position/list?{q}", headers=v5.headers(q, ts=now - 60_000), timeout=5
    )
    assert stale.json()["retCode"] == 10002
    assert "recv_window[5000]" in stale.json()["retMsg"]
    future = requests.get(
        f"{v5.base_url}/v5/position/list?{q}", headers=v5.headers(q, ts=now + 30_000), timeout=5
    )
    assert future.json()["retCode"] == 10002


def test_missing_auth_headers_are_401(paper: PaperHandle) -> None:
    r = requests.get(f"{paper.base_url}/v5/position/list?category=linear&settleCoin=USDT", timeout=5)
    assert r.status_code == 401 and r.json()["retCode"] == 10003


def test_unknown_path_and_wrong_method(paper: PaperHandle, v5: V5Client) -> None:
    assert requests.get(f"{paper.base_url}/v5/nope", timeout=5).status_code == 404
    assert v5.raw_post("/v5/position/list", {"category": "linear"}).status_code == 405


def test_params_errors_name_the_field(v5: V5Client) -> None:
    answer = v5.get("/v5/order/realtime", category="linear")
    assert answer["retCode"] == 10001 and "symbol" in answer["retMsg"]
    answer = v5.post(
        "/v5/order/create", category="linear", symbol="BTCUSDT", side="Up", orderType="Market", qty="1"
    )
    assert (answer["retCode"], answer["retMsg"]) == (10001, "params error: side invalid")
    assert answer["result"] == {} and answer["retExtInfo"] == {}
    bad_json = v5.http.post(
        f"{v5.base_url}/v5/order/create", data="{nope", headers=v5.headers("{nope"), timeout=5
    )
    assert bad_json.json()["retCode"] == 10001


# ---------------------------------------------------------------------------------- rate limits


def test_order_create_is_limited_to_ten_per_window(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.set_rate_limits(window_ms=60_000)  # Bybit's 10 per rolling window, stretched: deterministic
    answers = []
    for i in range(11):
        r = v5.raw_post(
            "/v5/order/create",
            {
                "category": "linear",
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": "0.001",
                "price": str(60000 + i),
            },
        )
        answers.append((r.json()["retCode"], r.headers["X-Bapi-Limit"], r.headers["X-Bapi-Limit-Status"]))
        last = r
    assert answers == [(0, "10", str(9 - i)) for i in range(10)] + [(10006, "10", "0")]
    body = last.json()
    assert body["retMsg"] == "Too many visits. Exceeded the API Rate Limit."
    assert int(last.headers["X-Bapi-Limit-Reset-Timestamp"]) >= body["time"]
    assert len(paper.admin.account(v5.creds.api_key)["orders"]) == 10
    other = v5.raw_get("/v5/order/realtime", category="linear", settleCoin="USDT")
    assert other.json()["retCode"] == 0  # another endpoint has its own quota
    fresh = V5Client(v5.base_url, paper.new_account())
    market = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001"}
    assert fresh.raw_post("/v5/order/create", market).json()["retCode"] == 0  # and another account too


def test_batch_items_beyond_the_quota_fail_individually(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.set_rate_limits(limits={"/v5/order/create-batch": 3})
    items = [
        {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001", "price": str(60000 + i)}
        for i in range(5)
    ]
    answer = v5.post("/v5/order/create-batch", category="linear", request=items)
    assert answer["retCode"] == 0
    assert [e["code"] for e in answer["retExtInfo"]["list"]] == [0, 0, 0, 10006, 10006]


def test_pybit_sleeps_until_the_reset_header_and_retries(paper: PaperHandle) -> None:
    creds = paper.new_account()
    s = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
    s.endpoint = paper.base_url
    paper.admin.add_fault(endpoint="/v5/position/list", ret_code=10006, reset_after_ms=100, count=2)
    assert s.get_positions(category="linear", settleCoin="USDT")["retCode"] == 0  # third attempt
    assert paper.admin.stats()["by_account"][creds.id]["/v5/position/list"] == 3


def test_pybit_waits_out_a_real_throttle(paper: PaperHandle) -> None:
    creds = paper.new_account()
    paper.admin.set_rate_limits(limits={"/v5/position/list": 1}, window_ms=300)
    s = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
    s.endpoint = paper.base_url
    for _ in range(3):  # throttled or not, each call ends in success (the reset header is never past)
        assert s.get_positions(category="linear", settleCoin="USDT")["retCode"] == 0


def test_rate_limits_can_be_switched_off(paper: PaperHandle, v5: V5Client) -> None:
    paper.admin.set_rate_limits(enabled=False)
    codes = {v5.get("/v5/account/fee-rate", category="linear", symbol="BTCUSDT")["retCode"] for _ in range(8)}
    assert codes == {0}  # fee-rate is 5/s when on
