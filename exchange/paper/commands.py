"""Typed inputs of the paper engine (the HTTP layer parses v5 parameters into these)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.models import Side

MARKET = "Market"
LIMIT = "Limit"
ORDER_TYPES = (MARKET, LIMIT)
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
LAST_PRICE = "LastPrice"
MARK_PRICE = "MarkPrice"
INDEX_PRICE = "IndexPrice"  # the paper exchange's index price is its mark price
TRIGGER_BY = (LAST_PRICE, MARK_PRICE, INDEX_PRICE)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: Side
    order_type: str
    qty: Decimal
    price: Decimal | None = None
    time_in_force: str | None = None  # None: GTC (Market orders are always IOC)
    position_idx: int = 0
    link_id: str = ""
    reduce_only: bool = False
    close_on_trigger: bool = False
    trigger_price: Decimal | None = None
    trigger_direction: int = 0
    trigger_by: str = LAST_PRICE
    # an attached stop-loss (Full mode): each fill of the order sets it as the position's own
    stop_loss: Decimal | None = None
    sl_trigger_by: str = LAST_PRICE


@dataclass(frozen=True, slots=True)
class AmendRequest:
    symbol: str
    order_id: str = ""
    link_id: str = ""
    qty: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    trigger_by: str | None = None


@dataclass(frozen=True, slots=True)
class TradingStopRequest:
    symbol: str
    position_idx: int
    tpsl_mode: str = "Full"
    take_profit: Decimal | None = None  # 0 clears
    stop_loss: Decimal | None = None  # 0 clears
    tp_trigger_by: str | None = None
    sl_trigger_by: str | None = None
    tp_size: Decimal | None = None  # Partial mode: the qty each order closes
    sl_size: Decimal | None = None
    tp_order_type: str = "Market"  # Limit: Partial mode only, at tp_limit_price
    sl_order_type: str = "Market"
    tp_limit_price: Decimal | None = None
    sl_limit_price: Decimal | None = None
