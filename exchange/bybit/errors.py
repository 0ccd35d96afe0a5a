"""The one place where HTTP statuses, transport failures and Bybit retCodes become `core.errors`.

`map_error(...)` returns the exception the caller must act on, or None when the call achieved what
was asked. "Not modified" answers (an amend that changes nothing, 34040 on trading-stop, a position
mode or leverage already set) are None too: the exchange is already in the requested state.

Classes are named by what the caller must do (core.errors):
- RetryLater: timeouts, connection errors, 5xx once, 10002 clock window (`ClockSkew`: re-sign first)
- ExchangeDown: 503, maintenance, 5xx that persisted through the transport's retries
- BackOff(until): 10006, HTTP 403 (IP limit), HTTP 429 / 10429 — until the reset time
- InvalidOrder: 10001 and the order rejections (110007, 110017, 110094, 110003, 110064, …)
- TriggerPassed (an InvalidOrder): 110092/110093, a conditional order whose trigger the price has passed;
  10001 "… should lower/higher than base_price …" on trading-stop (a position's stop already breached)
- NoPosition (an InvalidOrder): 10001 "can not set tp/sl/ts for zero position" (trading-stop on a flat
  position)
- NotFound: 110001, 170213 (and 110008/110010: already completed or cancelled)
- Duplicate: 110072
- StopAndAlert: 10003, 10004, 10005, 33004, HTTP 401 and the other credential/permission codes
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import requests

from core.errors import (
    BackOff,
    Duplicate,
    ExchangeDown,
    InvalidOrder,
    NoPosition,
    NotFound,
    RetryLater,
    StopAndAlert,
    TpslError,
    TriggerPassed,
)


class ClockSkew(RetryLater):
    """10002: the request's timestamp fell outside recv_window. Re-sign with a fresh timestamp and
    send again (the exchange rejected it before doing anything)."""


IP_BAN_S = 600.0  # "403, access too frequent": wait at least 10 minutes (docs rate-limit)
DEFAULT_BACKOFF_S = 1.0  # Bybit's per-UID window is a rolling second

STOP_AND_ALERT_CODES = frozenset(
    {
        10003,  # API key is invalid
        10004,  # error sign
        10005,  # permission denied
        10007,  # user authentication failed
        10008,  # common banned
        10009,  # region restricted
        10010,  # unmatched IP
        10017,  # route not found (wrong host or path)
        10024,  # compliance rules triggered
        10027,  # transactions banned
        10028,  # unified account only
        33004,  # api key expired (derivatives)
        -2015,  # api key expired (spot wording)
        100028,  # not for unified accounts
    }
)
NOT_FOUND_CODES = frozenset({110001, 170213, 110008, 110010})
NOT_MODIFIED_CODES = frozenset({34040, 110025, 110026, 110027, 110043})
RETRY_CODES = frozenset({10000, 10014, 10016, 40004, 110079, 429, 30034, 30035, 130035, 130150})
# "expect Rising/Falling, but trigger_price[…] <=/>= current[…]": the price is already through the
# trigger of a conditional order (for a stop: close at market instead)
TRIGGER_PASSED_CODES = frozenset({110092, 110093})
INVALID_ORDER_CODES = frozenset(
    {
        10001,
        10029,  # symbol not on the whitelist
        110003,
        110004,
        110007,
        110009,
        110012,
        110017,
        110020,
        110022,
        110023,
        110044,
        110045,
        110064,
        110092,
        110093,
        110094,
    }
)
# trading-stop answers 10001 for a stop on the wrong side of its trigger price source ("StopLoss:… set
# for Buy position should lower than base_price:…") and for a flat position ("zero position")
_BASE_PRICE = re.compile(r"should (lower|higher) than base_price", re.IGNORECASE)
_ZERO_POSITION = re.compile(r"zero position", re.IGNORECASE)
_UNCHANGED = re.compile(r"remains unchanged|not modified", re.IGNORECASE)
_MAINTENANCE = re.compile(r"maintenance|service is restarting", re.IGNORECASE)
_ORIGIN = re.compile(r"origin_string\[[^\]]*\]?", re.IGNORECASE)


def clean_message(msg: str) -> str:
    """retMsg without the parts that can carry credentials (10004 echoes the signed string, which
    starts with the API key)."""
    return _ORIGIN.sub("origin_string[…]", msg)[:300]


def reset_time(headers: Mapping[str, str], now: float) -> float | None:
    """X-Bapi-Limit-Reset-Timestamp (ms) as epoch seconds, when it lies in the future."""
    raw = _header(headers, "X-Bapi-Limit-Reset-Timestamp")
    if raw:
        try:
            at = int(raw.strip()) / 1000.0
        except ValueError:
            return None
        if at > now:
            return at
    return None


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    raw = _header(headers, "Retry-After")
    if raw:
        try:
            return now + max(0.0, float(raw))
        except ValueError:
            return None
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts in tests; requests' headers are case-insensitive already
        lower = name.lower()
        for k, v in headers.items():
            if k.lower() == lower:
                return v
    return value


def transport_kind(exc: BaseException) -> str:
    """A short name for a transport failure (statistics, log lines)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls_error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection_error"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    return "transport_error"


def map_error(
    http_status: int | None,
    ret_code: int | None,
    ret_msg: str,
    headers: Mapping[str, str],
    now: float,
    *,
    attempts: int = 1,
    transport_error: BaseException | None = None,
) -> TpslError | None:
    """What the caller must do about one exchange answer (None: nothing, it worked).

    http_status None with `transport_error`: no HTTP answer at all (timeout, refused, reset).
    ret_code None with a 200: the body was not a Bybit envelope. `attempts` is how many times the
    transport sent the request (urllib3's retries of a GET): a 5xx that outlived them is ExchangeDown.
    `now` is epoch seconds (the injected clock) and anchors every back-off time.
    """
    msg = clean_message(ret_msg)
    if http_status is None:
        kind = transport_kind(transport_error) if transport_error is not None else "transport_error"
        return RetryLater(f"{kind}: no answer from the exchange")

    if http_status != 200:
        where = f"HTTP {http_status}"
        if http_status == 401:
            return StopAndAlert(f"{where}: authentication refused (key, secret or headers)", code=401)
        if http_status == 403:
            until = reset_time(headers, now) or now + IP_BAN_S
            return BackOff(f"{where}: IP rate limit or access forbidden", until=until, code=403)
        if http_status == 429:
            until = reset_time(headers, now) or _retry_after(headers, now) or now + DEFAULT_BACKOFF_S
            return BackOff(f"{where}: system frequency protection", until=until, code=429)
        if http_status == 404:
            return StopAndAlert(f"{where}: path not found (wrong host, path or category)", code=404)
        if http_status == 503:
            return ExchangeDown(f"{where}: service unavailable", code=503)
        if 500 <= http_status < 600:
            if attempts > 1:
                return ExchangeDown(f"{where} after {attempts} attempts", code=http_status)
            return RetryLater(f"{where}: server error", code=http_status)
        if 400 <= http_status < 500:
            return InvalidOrder(f"{where}: request refused", code=http_status)
        return RetryLater(f"{where}: unexpected status", code=http_status)

    if ret_code is None:
        return RetryLater(f"unreadable answer: {msg}")
    if ret_code == 0:
        return None

    text = f"{msg} (retCode {ret_code})"
    if ret_code in NOT_MODIFIED_CODES or (ret_code == 10001 and _UNCHANGED.search(msg)):
        return None
    if ret_code == 10002:
        return ClockSkew(text, code=ret_code)
    if ret_code == 10006:
        until = reset_time(headers, now) or now + DEFAULT_BACKOFF_S
        return BackOff(text, until=until, code=ret_code)
    if ret_code == 10429:
        until = reset_time(headers, now) or now + DEFAULT_BACKOFF_S
        return BackOff(text, until=until, code=ret_code)
    if ret_code in STOP_AND_ALERT_CODES:
        return StopAndAlert(text, code=ret_code)
    if ret_code == 110072:
        return Duplicate(text, code=ret_code)
    if ret_code in NOT_FOUND_CODES:
        return NotFound(text, code=ret_code)
    if _MAINTENANCE.search(msg):
        return ExchangeDown(text, code=ret_code)
    if ret_code in RETRY_CODES:
        return RetryLater(text, code=ret_code)
    if ret_code in TRIGGER_PASSED_CODES or (ret_code == 10001 and _BASE_PRICE.search(msg)):
        return TriggerPassed(text, code=ret_code)
    if ret_code == 10001 and _ZERO_POSITION.search(msg):
        return NoPosition(text, code=ret_code)
    if ret_code in INVALID_ORDER_CODES:
        return InvalidOrder(text, code=ret_code)
    # Unlisted order-domain codes (110xxx, 170xxx, 3xxxx) are rejections of the order as sent;
    # anything else we do not know is treated as transient rather than as a verdict on the order.
    if 110000 <= ret_code < 120000 or 170000 <= ret_code < 180000 or 30000 <= ret_code < 40000:
        return InvalidOrder(text, code=ret_code)
    return RetryLater(text, code=ret_code)
