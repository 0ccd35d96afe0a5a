"""The token guard and the error mapping (pure parts of the dashboard)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import (
    BackOff,
    ExchangeDown,
    FixInput,
    InvalidOrder,
    NotFound,
    PlanInvalid,
    RetryLater,
    StopAndAlert,
)
from dashboard.api import MAX_BODY, parse_body
from dashboard.auth import TokenGuard
from dashboard.errors import api_error_for
from readmodel.errors import ApiError


def test_guard_checks_the_bearer_token():
    g = TokenGuard("t0ken-value")
    assert g.allows("Bearer t0ken-value") and g.allows("bearer  t0ken-value")
    for header in (
        None,
        "",
        "Bearer",
        "Bearer wrong",
        "Basic t0ken-value",
        "t0ken-value",
        "Bearer t0ken-valuex",
    ):
        assert not g.allows(header), header
    with pytest.raises(ApiError) as exc:
        g.check(None)
    assert exc.value.status == 401 and "t0ken" not in exc.value.message
    g.check("Bearer t0ken-value")
    assert "t0ken" not in repr(g)


def test_there_is_no_open_guard():
    for token in (None, "", "   "):
        with pytest.raises(ValueError):
            TokenGuard(token)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "status", "code", "field"),
    [
        (FixInput("stop_loss", "must be below"), 422, "invalid", "stop_loss"),
        (PlanInvalid("entries[0].qty", "too small"), 422, "invalid", "entries[0].qty"),
        (NotFound("no monitor"), 404, "not_found", "id"),
        (RetryLater("account busy"), 503, "retry_later", None),
        (ExchangeDown("maintenance"), 503, "exchange_down", None),
        (StopAndAlert("bad key"), 502, "exchange_refused", None),
        (InvalidOrder("refused"), 422, "invalid_order", None),
        (KeyError("boom"), 500, "internal", None),
    ],
)
def test_core_errors_map_to_statuses(exc, status, code, field):
    err = api_error_for(exc)
    assert (err.status, err.code, err.field) == (status, code, field)
    if status == 503:
        assert int(err.headers["Retry-After"]) >= 1
    if status == 500:
        assert "boom" not in err.message


def test_back_off_retry_after_counts_the_wait():
    err = api_error_for(BackOff("limited", until=107.2), now=100.0)
    assert err.status == 503 and err.code == "rate_limited" and err.headers["Retry-After"] == "8"


def test_parse_body_reads_exact_decimals_and_passes_nan_on():
    assert parse_body(b'{"a": 0.1, "b": 10, "c": "x"}') == {"a": Decimal("0.1"), "b": 10, "c": "x"}
    nan = parse_body(b'{"a": NaN, "b": -Infinity}')
    assert nan["a"].is_nan() and nan["b"] == Decimal("-Infinity")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"   ", 400),
        (b"{", 400),
        (b"\xff", 400),
        (b"[" * 20_000 + b"]" * 20_000, 400),
        (b'{"a": ' + b"7" * 5000 + b"}", 400),
        (b" " * (MAX_BODY + 1), 413),
    ],
)
def test_parse_body_refuses_unreadable_bodies(body, status):
    with pytest.raises(ApiError) as exc:
        parse_body(body)
    assert exc.value.status == status and exc.value.message
