"""Plan requests in the shape of the README's "Plans" section."""

from __future__ import annotations

from typing import Any

from core.codec import plan_to_dict
from core.models import Plan
from tests.unit.core import builders

REQUEST_FIELDS = (
    "symbol",
    "side",
    "preset",
    "entries",
    "take_profits",
    "stop_loss",
    "breakeven_after",
    "mirror",
)


def request_of(plan: Plan, *, account: str = "main", **over: Any) -> dict[str, Any]:
    """The API/CLI request of a Plan (README "Plans"): the example plans are defined once, as Plans
    (tests/unit/core/builders.py), and the pipeline tests send them as requests."""
    d = plan_to_dict(plan)
    out: dict[str, Any] = {"account": account, **{k: d[k] for k in REQUEST_FIELDS}}
    out.update(over)
    return out


def conservative_long(**over: Any) -> dict[str, Any]:
    return request_of(builders.conservative_long(mirror=False), **over)


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
