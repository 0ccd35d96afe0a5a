"""Plan requests in the shape of the README's "Plans" section."""

from __future__ import annotations

from typing import Any


def conservative_long(**over: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "account": "main",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "preset": "conservative",
        "entries": [
            {"price": "60000", "qty": "0.010"},
            {"price": "59500", "qty": "0.010"},
            {"price": "59000", "qty": "0.010"},
        ],
        "take_profits": [
            {"price": "62000", "fraction": "0.85"},
            {"price": "63000", "fraction": "0.05"},
            {"price": "64000", "fraction": "0.05"},
            {"price": "65000", "fraction": "0.05"},
        ],
        "stop_loss": "58000",
        "breakeven_after": 1,
        "mirror": False,
    }
    plan.update(over)
    return plan


def conservative_short(**over: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "account": "main",
        "symbol": "ETHUSDT",
        "side": "Sell",
        "preset": "conservative",
        "entries": [
            {"price": "3000", "qty": "1.00"},
            {"price": "3030", "qty": "1.00"},
            {"price": "3060", "qty": "1.00"},
        ],
        "take_profits": [
            {"price": "2900", "fraction": "0.85"},
            {"price": "2850", "fraction": "0.05"},
            {"price": "2800", "fraction": "0.05"},
            {"price": "2750", "fraction": "0.05"},
        ],
        "stop_loss": "3150",
        "breakeven_after": 1,
        "mirror": False,
    }
    plan.update(over)
    return plan


def fast_long(**over: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "account": "main",
        "symbol": "SOLUSDT",
        "side": "Buy",
        "preset": "fast",
        "entries": {"type": "market", "qty": "10"},
        "take_profits": [{"price": "160", "fraction": "1"}],
        "stop_loss": "140",
        "mirror": False,
    }
    plan.update(over)
    return plan
