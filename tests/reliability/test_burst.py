"""A burst of creations on one account stays under the exchange's per-UID limits: the fleet-wide
limiter paces the order items (a rolling-second window, as the exchange counts them)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import RetryLater

pytestmark = pytest.mark.slow

N = 20


def plan(symbol: str) -> dict:
    return {
        "account": "main",
        "symbol": symbol,
        "side": "Buy",
        "preset": "conservative",
        "entries": [{"price": p, "qty": "0.10"} for p in ("99", "98", "97")],
        "take_profits": [
            {"price": "102", "fraction": "0.85"},
            {"price": "103", "fraction": "0.05"},
            {"price": "104", "fraction": "0.05"},
            {"price": "105", "fraction": "0.05"},
        ],
        "stop_loss": "95",
        "breakeven_after": 1,
        "mirror": False,
    }


def test_a_burst_of_creations_on_one_account_gets_no_item_rate_limited(stack):
    symbols = [f"SYN{i:04d}USDT" for i in range(1, N + 1)]
    stack.prices(**dict.fromkeys(symbols, "100"))
    stack.paper.admin.set_rate_limits(enabled=True)  # the exchange's per-UID limits, as Bybit's
    stack.paper.admin.reset()  # stats only

    def create(symbol: str):
        deadline = time.monotonic() + 30
        while True:
            try:
                return stack.create(plan(symbol))
            except RetryLater:  # the account is busy with another creation: the API says retry
                assert time.monotonic() < deadline
                time.sleep(0.05)

    started = time.monotonic()
    with ThreadPoolExecutor(N) as pool:  # 20 requests within the same second
        monitors = list(pool.map(create, symbols))
    took = time.monotonic() - started
    entries = 3 * N

    def all_resting() -> bool:
        links = {o["orderLinkId"] for o in stack.exchange_orders() if o["orderStatus"] == "New"}
        return sum(1 for link in links if "-E" in link) >= entries

    stack.wait(all_resting, timeout=60, what="every entry order resting on the exchange")
    stats = stack.paper.admin.stats()
    refused = stats["rate_limited"]
    print(f"\nfigure: {N} creations, {entries} entries placed in {took:.2f} s; refused: {refused}")
    assert refused == {}
    assert len({m.id for m in monitors}) == N
