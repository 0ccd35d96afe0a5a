"""Signing: HMAC over the exact bytes sent; query strings and bodies built for it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pybit._http_manager import generate_signature

from core.errors import StopAndAlert
from core.models import Account, Secret
from exchange.bybit.signing import auth_headers, json_body, query_string, signature

KEY, SECRET = "XXXXXXXXXX", "sEcReT-for-tests-0123456789"


def test_signature_matches_the_official_sdk() -> None:
    payload = "category=option&symbol=BTC-29JUL22-25000-C"
    ours = signature(SECRET, 1658384314791, KEY, 5000, payload)
    theirs = generate_signature(False, SECRET, f"1658384314791{KEY}5000{payload}")
    assert ours == theirs and len(ours) == 64 and ours == ours.lower()


def test_headers() -> None:
    acct = Account(id="main", base_url="http://x", api_key=Secret(KEY), api_secret=Secret(SECRET))
    body = json_body({"category": "linear", "request": []})
    h = auth_headers(acct, body, 1700000000123, 5000)
    assert h["X-BAPI-API-KEY"] == KEY
    assert h["X-BAPI-TIMESTAMP"] == "1700000000123"
    assert h["X-BAPI-RECV-WINDOW"] == "5000"
    assert h["X-BAPI-SIGN-TYPE"] == "2"
    assert h["X-BAPI-SIGN"] == signature(SECRET, 1700000000123, KEY, 5000, body.decode())


def test_missing_credentials_stop_and_alert_without_echoing_anything() -> None:
    acct = Account(id="m1", base_url="http://x", api_key=Secret(""), api_secret=Secret(SECRET))
    with pytest.raises(StopAndAlert, match="m1: api_key / api_secret: missing") as info:
        auth_headers(acct, "", 1, 5000)
    assert SECRET not in str(info.value)


def test_query_string_keeps_order_and_encodes_values() -> None:
    qs = query_string({"category": "linear", "symbol": "BTCUSDT", "limit": 50, "x": None, "flag": True})
    assert qs == "category=linear&symbol=BTCUSDT&limit=50&flag=true"
    assert query_string({"orderLinkId": "a b&c=d"}) == "orderLinkId=a%20b%26c%3Dd"
    assert query_string({"coin": "USDT,USDC"}) == "coin=USDT,USDC"


@pytest.mark.parametrize(
    "cursor",
    [
        "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26",
        "132766%3A2%2C132766%3A2",
        "first%3DBIOUSDT%26last%3DBIOUSDT",
        "updateAt%3D1672279322668",
    ],
)
def test_documented_cursors_go_back_untouched(cursor: str) -> None:
    assert query_string({"category": "linear", "cursor": cursor}) == f"category=linear&cursor={cursor}"


def test_raw_cursor_characters_a_url_cannot_carry_are_escaped() -> None:
    assert query_string({"cursor": "a b&c"}) == "cursor=a%20b%26c"


def test_body_is_compact_json_with_decimals_as_strings() -> None:
    raw = json_body(
        {"qty": Decimal("0.00001"), "price": Decimal("65000.10"), "positionIdx": 1, "reduceOnly": True}
    )
    assert raw == b'{"qty":"0.00001","price":"65000.10","positionIdx":1,"reduceOnly":true}'
    assert json.loads(raw)["qty"] == "0.00001"
