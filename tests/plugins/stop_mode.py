"""The stop mode the suite runs in: `TPSL_TEST_STOP_MODE` (position, the product's default, or order).

`TPSL_TEST_STOP_MODE=order` (what `make test-order` sets) makes every Settings a test builds without
naming `stop_mode` (the pipeline stacks, the demo, the processes the tests start) use a stop order of
the monitor's own: the plugin sets `TPSL_STOP_MODE` for the session, which Settings reads and child
processes inherit. Pure-core tests take their Policy from `policy()` (the walks, the step cases,
the race rules); a test about the stop order's own mechanics pins order mode with the `order_mode`
fixture. The header of the run names the mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from core.policy import Policy

MODES = ("order", "position")


def _mode() -> str:
    mode = os.environ.get("TPSL_TEST_STOP_MODE", "").strip() or "position"
    if mode not in MODES:
        raise pytest.UsageError(f"TPSL_TEST_STOP_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


TEST_STOP_MODE = _mode()
os.environ["TPSL_STOP_MODE"] = TEST_STOP_MODE  # a developer's shell setting never changes the suite


def on_position() -> bool:
    """The suite runs with the stop on the position (TPSL_TEST_STOP_MODE=position)."""
    return TEST_STOP_MODE == "position"


_pinned: list[str] = []  # the mode a running test pinned (the `order_mode` fixture)


def policy(**kw: Any) -> Policy:
    """A core Policy in the suite's stop mode, or the one the running test pinned (a `stop_mode`
    given wins)."""
    kw.setdefault("stop_mode", _pinned[-1] if _pinned else TEST_STOP_MODE)
    return Policy(**kw)


@pytest.fixture
def order_mode() -> Iterator[None]:
    """Pins a pure-core test to stop mode "order" (`policy()` gives it in both runs): for tests of the
    stop order's own mechanics, hand-built reads around a stop order of ours. Position mode's own
    rules have their tests in tests/unit/core/test_position_stop.py."""
    _pinned.append("order")
    try:
        yield
    finally:
        _pinned.pop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"stop mode: {TEST_STOP_MODE} (TPSL_TEST_STOP_MODE)"


def without_the_entrys_stop(creds: Any, symbol: str = "BTCUSDT") -> None:
    """Position mode: an entry's fill set the plan's stop attached to it on the position; this removes
    it by hand (a trading-stop "0" over real HTTP) before any read saw it, so the next check has the
    stop to set first, as in order mode, where the stop follows the fill. Order mode: nothing."""
    if not on_position():
        return
    from pybit.unified_trading import HTTP

    session = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
    session.endpoint = creds.base_url
    session.set_trading_stop(category="linear", symbol=symbol, positionIdx=0, tpslMode="Full", stopLoss="0")
