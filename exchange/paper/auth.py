"""HMAC-SHA256 request verification exactly as Bybit v5 does it (its "authentication" docs).

signature = hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload)), where payload is
the raw query string of a GET (as received: never re-parsed, re-sorted or re-encoded) and the raw
body of a POST. Headers are matched case-insensitively (ASGI lower-cases them); X-BAPI-SIGN-TYPE
is ignored. Time window: server_ms - recv_window <= timestamp < server_ms + 1000, else 10002.
Missing headers are HTTP 401 (Bybit's status for them); every other failure is HTTP 200 + retCode.
Error messages never contain the secret, and show the API key masked.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

from exchange.paper.errors import API_KEY_INVALID, SIGN, TIMESTAMP, PaperError
from exchange.paper.records import PaperAccount, mask_key

DEFAULT_RECV_WINDOW = 5000
FUTURE_TOLERANCE_MS = 1000

H_KEY = b"x-bapi-api-key"
H_SIGN = b"x-bapi-sign"
H_TS = b"x-bapi-timestamp"
H_RECV = b"x-bapi-recv-window"
_WANTED = frozenset({H_KEY, H_SIGN, H_TS, H_RECV})


def auth_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The X-BAPI-* headers of a request, names lower-cased."""
    out = {}
    for name, value in headers:
        if name[:7] in (b"x-bapi-", b"X-BAPI-", b"X-Bapi-"):
            low = name.lower()
            if low in _WANTED:
                out[low] = value
    return out


def api_key_of(headers: dict[bytes, bytes]) -> str | None:
    v = headers.get(H_KEY)
    return v.decode("latin-1") if v else None


def signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: bytes) -> str:
    return hmac.new(
        secret.encode(), f"{timestamp}{api_key}{recv_window}".encode() + payload, hashlib.sha256
    ).hexdigest()


def verify(
    headers: dict[bytes, bytes],
    payload: bytes,
    now_ms: int,
    lookup: Callable[[str], PaperAccount | None],
) -> PaperAccount:
    """The account the request is signed for, or a PaperError (10003/10002/10004, 401 when a
    header is missing)."""
    key_b = headers.get(H_KEY)
    if not key_b:
        raise PaperError(API_KEY_INVALID, "missing header X-BAPI-API-KEY", http_status=401)
    sign_b = headers.get(H_SIGN)
    if not sign_b:
        raise PaperError(SIGN, "missing header X-BAPI-SIGN", http_status=401)
    ts_b = headers.get(H_TS)
    if not ts_b:
        raise PaperError(TIMESTAMP, "missing header X-BAPI-TIMESTAMP", http_status=401)
    api_key = key_b.decode("latin-1")
    acct = lookup(api_key)
    if acct is None:
        raise PaperError(API_KEY_INVALID, "API key is invalid.")
    ts_s = ts_b.decode("latin-1")
    rw_s = headers[H_RECV].decode("latin-1") if H_RECV in headers else str(DEFAULT_RECV_WINDOW)
    try:
        ts = int(ts_s)
        recv_window = int(rw_s)
    except ValueError:
        raise PaperError(
            TIMESTAMP,
            f"invalid request, X-BAPI-TIMESTAMP[{ts_s[:20]}] or recv_window[{rw_s[:20]}] is not an integer",
        ) from None
    if not (now_ms - recv_window <= ts < now_ms + FUTURE_TOLERANCE_MS):
        raise PaperError(
            TIMESTAMP,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{recv_window}]",
        )
    expected = signature(acct.api_secret, ts_s, api_key, rw_s, payload)
    given = sign_b.decode("latin-1").lower()
    if not hmac.compare_digest(expected, given):
        shown = payload.decode("utf-8", "replace")
        raise PaperError(SIGN, f"error sign! origin_string[{ts_s}{mask_key(api_key)}{rw_s}{shown}]")
    return acct
