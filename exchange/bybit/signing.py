"""Bybit v5 request signing (HMAC-SHA256) and the exact bytes that get signed.

signature = hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload)), where payload is
the query string exactly as sent (GET) or the body bytes exactly as sent (POST). So this module
also builds those: `query_string` (URL-safe values, cursors passed through untouched) and `json_body`
(serialised once; the same bytes are signed and sent).

The key and secret are `core.models.Secret`s: revealed only inside `auth_headers`, never stored,
logged or put into an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from requests.utils import requote_uri

from config.logging import register_secret
from core.errors import StopAndAlert
from core.models import Account

SIGN_TYPE = "2"  # pybit always sends it; it means HMAC here
UNTOUCHED_KEYS = frozenset({"cursor"})  # tokens the exchange issued: sent back as they came


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def query_string(params: Mapping[str, Any]) -> str:
    """`k=v&k=v` in the given order, None values dropped, values percent-encoded (safe for a URL
    as they stand, so requests sends exactly what was signed). A cursor is not re-encoded: Bybit's
    cursors arrive already encoded (`page_args%3D…%26`) and must go back byte for byte; only
    characters a URL cannot carry are escaped, the way requests would escape them anyway."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if key in UNTOUCHED_KEYS:
            encoded = requote_uri(_text(value)).replace("&", "%26").replace("#", "%23")
        else:
            encoded = quote(_text(value), safe="-_.~,")
        parts.append(f"{key}={encoded}")
    return "&".join(parts)


def json_body(payload: Mapping[str, Any]) -> bytes:
    """The POST body: compact JSON, decimals as strings. Serialised once, signed and sent as is."""
    return json.dumps(payload, separators=(",", ":"), default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot serialise {type(value).__name__} into a request body")


def signature(secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    message = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def auth_headers(
    account: Account, payload: str | bytes, timestamp_ms: int, recv_window_ms: int
) -> dict[str, str]:
    """The X-BAPI-* headers of one signed request."""
    key = account.api_key.reveal()
    secret = account.api_secret.reveal()
    if not key or not secret:
        raise StopAndAlert(f"account {account.id}: api_key / api_secret: missing (needed for private calls)")
    # second line of defence: the log formatter masks these wherever they might turn up
    register_secret(key)
    register_secret(secret)
    text = payload.decode() if isinstance(payload, bytes) else payload
    return {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-SIGN": signature(secret, timestamp_ms, key, recv_window_ms, text),
        "X-BAPI-SIGN-TYPE": SIGN_TYPE,
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
    }
