"""exchange.bybit.errors.map_error: one table from HTTP status / retCode to what the caller must do."""

from __future__ import annotations

import pytest
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
    TriggerPassed,
)
from exchange.bybit.errors import ClockSkew, clean_message, map_error
from tests.plugins.recorded_bybit import fixture_body

NOW = 1_700_000_000.0


def envelope_error(name: str, headers: dict | None = None, now: float = NOW):
    body = fixture_body(name)
    return map_error(200, body["retCode"], body["retMsg"], headers or {}, now)


@pytest.mark.parametrize(
    ("fixture", "cls"),
    [
        ("error_10001", InvalidOrder),
        ("error_10002", ClockSkew),
        ("error_10002_window", ClockSkew),
        ("error_10003", StopAndAlert),
        ("error_10004", StopAndAlert),
        ("error_10004_origin", StopAndAlert),
        ("error_10005", StopAndAlert),
        ("error_10006", BackOff),
        ("error_10016", RetryLater),
        ("error_33004", StopAndAlert),
        ("error_110001", NotFound),
        ("error_110001_replace", NotFound),
        ("error_110007", InvalidOrder),
        ("error_110017", InvalidOrder),
        ("error_110064", InvalidOrder),
        ("error_110072", Duplicate),
        ("error_110092", TriggerPassed),
        ("error_110094", InvalidOrder),
        ("error_170213", NotFound),
    ],
)
def test_recorded_error_envelopes(fixture: str, cls: type) -> None:
    err = envelope_error(fixture)
    assert type(err) is cls
    assert err.code == fixture_body(fixture)["retCode"]


@pytest.mark.parametrize("fixture", ["error_10001_unchanged", "error_34040"])
def test_not_modified_is_success(fixture: str) -> None:
    assert envelope_error(fixture) is None


def test_ok() -> None:
    assert map_error(200, 0, "OK", {}, NOW) is None


def test_10006_backs_off_until_the_reset_header() -> None:
    err = envelope_error("error_10006", {"X-Bapi-Limit-Reset-Timestamp": str(int(NOW * 1000) + 750)})
    assert isinstance(err, BackOff) and err.until == pytest.approx(NOW + 0.75)


def test_10006_with_a_past_or_missing_reset_backs_off_briefly() -> None:
    past = envelope_error("error_10006", {"X-Bapi-Limit-Reset-Timestamp": str(int(NOW * 1000) - 5000)})
    none = envelope_error("error_10006")
    assert isinstance(past, BackOff) and past.until == pytest.approx(NOW + 1.0)
    assert isinstance(none, BackOff) and none.until == pytest.approx(NOW + 1.0)


@pytest.mark.parametrize(
    ("status", "attempts", "cls"),
    [
        (401, 1, StopAndAlert),
        (403, 1, BackOff),
        (429, 1, BackOff),
        (404, 1, StopAndAlert),
        (400, 1, InvalidOrder),
        (500, 1, RetryLater),
        (502, 1, RetryLater),
        (504, 1, RetryLater),
        (502, 3, ExchangeDown),  # outlived the transport's retries: repeated 5xx
        (503, 1, ExchangeDown),
        (302, 1, RetryLater),
    ],
)
def test_http_statuses(status: int, attempts: int, cls: type) -> None:
    err = map_error(status, None, "", {}, NOW, attempts=attempts)
    assert type(err) is cls
    assert err.code == status


def test_403_without_reset_waits_out_the_ip_ban() -> None:
    err = map_error(403, None, "", {}, NOW)
    assert isinstance(err, BackOff) and err.until == pytest.approx(NOW + 600)


def test_429_uses_retry_after() -> None:
    err = map_error(429, None, "", {"Retry-After": "3"}, NOW)
    assert isinstance(err, BackOff) and err.until == pytest.approx(NOW + 3)


def test_header_names_are_case_insensitive() -> None:
    err = map_error(
        200, 10006, "Too many visits!", {"x-bapi-limit-reset-timestamp": str(int(NOW * 1000) + 200)}, NOW
    )
    assert isinstance(err, BackOff) and err.until == pytest.approx(NOW + 0.2)


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectTimeout("x"),
        requests.exceptions.ReadTimeout("x"),
        requests.exceptions.ConnectionError("x"),
    ],
)
def test_transport_failures_retry_later(exc: Exception) -> None:
    err = map_error(None, None, "", {}, NOW, transport_error=exc)
    assert type(err) is RetryLater


def test_unreadable_body_retries_later() -> None:
    assert type(map_error(200, None, "not a JSON envelope", {}, NOW)) is RetryLater


def test_maintenance_and_unknown_codes() -> None:
    assert type(map_error(200, 10016, "Service is restarting", {}, NOW)) is ExchangeDown
    assert type(map_error(200, 110999, "some new order rule", {}, NOW)) is InvalidOrder
    assert type(map_error(200, 170999, "some new order rule", {}, NOW)) is InvalidOrder
    assert type(map_error(200, 99999, "who knows", {}, NOW)) is RetryLater


def test_signed_text_is_cut_out_of_messages() -> None:
    msg = "error sign! origin_string[1700000000000MYKEY12345675000category=linear]"
    assert "MYKEY" not in clean_message(msg)
    err = map_error(200, 10004, msg, {}, NOW)
    assert "MYKEY" not in str(err) and "MYKEY" not in err.message


def test_nothing_else_reads_a_retcode() -> None:
    """map_error is the one place retCodes become errors: no other module of the product compares
    one (the paper exchange, which answers with retCodes, is the exception by nature, and so is the
    tooling that loads it: devtools/bench/ checks every answer of the paper exchange it measures)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[3]
    pattern = re.compile(r"ret_?code\s*(==|!=|in\b|>|<)|\[\s*[\"']retCode[\"']\s*\]\s*(==|!=|in\b)", re.I)
    offenders = []
    for path in root.glob("*/**/*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", "tests/", "exchange/paper/", "devtools/bench/")) or rel == (
            "exchange/bybit/errors.py"
        ):
            continue
        if pattern.search(path.read_text(errors="replace")):
            offenders.append(rel)
    assert offenders == []


@pytest.mark.parametrize(
    ("msg", "cls"),
    [
        # trading-stop: a position's stop on the wrong side of its trigger price source is breached
        (
            "StopLoss:5427870000000 set for Buy position should lower than "
            "base_price:5425880000000??LastPrice",
            TriggerPassed,
        ),
        (
            "StopLoss:6100000000000 set for Sell position should higher than "
            "base_price:6120000000000??MarkPrice",
            TriggerPassed,
        ),
        ("can not set tp/sl/ts for zero position", NoPosition),
        ("params error: stopLoss invalid", InvalidOrder),
    ],
)
def test_trading_stop_10001_answers(msg: str, cls: type) -> None:
    err = map_error(200, 10001, msg, {}, 0.0)
    assert type(err) is cls


def test_trading_stop_not_modified_is_success() -> None:
    assert map_error(200, 34040, "not modified", {}, 0.0) is None
