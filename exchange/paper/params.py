"""v5 request parameters: raw query strings and JSON bodies → typed values and engine commands.

Numbers are accepted as JSON numbers or numeric strings, booleans as JSON booleans or the strings
true/false/True/False/1/0 (pybit sends `True` in queries). Every problem is a 10001 naming the field.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import orjson

from core.models import Side
from exchange.paper.commands import (
    LAST_PRICE,
    ORDER_TYPES,
    TIME_IN_FORCE,
    TRIGGER_BY,
    AmendRequest,
    OrderRequest,
    TradingStopRequest,
)
from exchange.paper.decimals import to_decimal
from exchange.paper.errors import PaperError, params_error

CATEGORY = "linear"
OTHER_CATEGORIES = ("spot", "inverse", "option")
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_INT = re.compile(r"^\s*-?\d+\s*$")
_TRUE = frozenset({"true", "True", "TRUE", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "0"})


def parse_query(raw: bytes) -> dict[str, str]:
    """`a=1&b=2` → {"a": "1", "b": "2"} (values percent-decoded; the last of a repeated key wins)."""
    out: dict[str, str] = {}
    if not raw:
        return out
    text = raw.decode("latin-1")
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out[unquote(key)] = unquote(value) if "%" in value else value
    return out


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PaperError(10001, "params error: the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise PaperError(10001, "params error: the body must be a JSON object")
    return data


class Params:
    """Typed access to one request's parameters (or one batch item's)."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        v = self.raw.get(name)
        return v is not None and v != ""

    def text(
        self, name: str, *, required: bool = False, choices: tuple[str, ...] | None = None
    ) -> str | None:
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise params_error(name, "is required")
            return None
        if not isinstance(v, str):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            else:
                raise params_error(name)
        if choices is not None and v not in choices:
            raise params_error(name)
        return v

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise params_error(name, "is required")
            return None
        return to_decimal(v, name)

    def integer(
        self, name: str, *, default: int | None = None, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        v = self.raw.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            raise params_error(name)
        if isinstance(v, int):
            n = v
        elif (isinstance(v, float) and v.is_integer()) or (isinstance(v, str) and _INT.match(v)):
            n = int(v)
        else:
            raise params_error(name)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise params_error(name)
        return n

    def flag(self, name: str) -> bool:
        v = self.raw.get(name)
        if v is None or v == "" or v is False:
            return False
        if v is True:
            return True
        if isinstance(v, str):
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise params_error(name)

    def limit(self, default: int, top: int) -> int:
        n = self.integer("limit", default=default)
        assert n is not None
        if not 1 <= n <= top:
            raise params_error("limit", f"must be between 1 and {top}")
        return n

    def listed_category(self) -> bool:
        """Market data: linear is listed; Bybit's other categories are valid and empty here."""
        value = self.raw.get("category")
        if value in OTHER_CATEGORIES:
            return False
        self.category()
        return True

    def category(self) -> None:
        if self.raw.get("category") != CATEGORY:
            if not self.has("category"):
                raise params_error("category", "is required")
            raise params_error("category", "invalid (the paper exchange lists linear only)")

    def side(self) -> Side:
        v = self.text("side", required=True)
        if v == "Buy":
            return Side.BUY
        if v == "Sell":
            return Side.SELL
        raise params_error("side")

    def link_id(self) -> str:
        v = self.text("orderLinkId")
        if v is None:
            return ""
        if not _LINK_ID.match(v):
            raise params_error("orderLinkId", "must be 1-36 characters of [A-Za-z0-9_-]")
        return v

    def attached_stop_loss(self) -> Decimal | None:
        """An order's attached stop-loss (Full mode, the position's own stop once it fills); an
        attached take-profit, a Partial one or a Limit one is refused as unsupported."""
        take_profit = self.decimal("takeProfit")
        if take_profit is not None and take_profit != 0:
            raise params_error(
                "takeProfit",
                "on an order is not supported by the paper exchange: use /v5/position/trading-stop",
            )
        stop_loss = self.decimal("stopLoss")
        if stop_loss is None or stop_loss == 0:
            return None
        if (self.text("tpslMode") or "Full") != "Full":
            raise params_error("tpslMode", "only Full is supported by the paper exchange on an order")
        if (self.text("slOrderType") or "Market") != "Market":
            raise params_error("slOrderType", "only Market is supported by the paper exchange on an order")
        if self.flag("reduceOnly"):
            raise params_error("stopLoss", "is not allowed on a reduceOnly order")
        return stop_loss

    def no_attached_tpsl(self) -> None:
        for name in ("takeProfit", "stopLoss"):
            v = self.decimal(name)
            if v is not None and v != 0:
                raise params_error(
                    name,
                    "on an order is not supported by the paper exchange: use /v5/position/trading-stop",
                )


def order_request(p: Params) -> OrderRequest:
    symbol = p.text("symbol", required=True)
    assert symbol is not None
    side = p.side()
    order_type = p.text("orderType", required=True, choices=ORDER_TYPES)
    assert order_type is not None
    qty = p.decimal("qty", required=True)
    assert qty is not None
    if qty < 0:
        raise params_error("qty")
    trigger_price = p.decimal("triggerPrice")
    trigger_direction = p.integer("triggerDirection", default=0)
    if trigger_price is not None and trigger_price != 0 and trigger_direction not in (1, 2):
        raise params_error("triggerDirection", "must be 1 (rises to) or 2 (falls to) with a triggerPrice")
    stop_loss = p.attached_stop_loss()
    return OrderRequest(
        symbol=symbol,
        side=side,
        order_type=order_type,
        qty=qty,
        price=p.decimal("price"),
        time_in_force=p.text("timeInForce", choices=TIME_IN_FORCE),
        position_idx=p.integer("positionIdx", default=0, lo=0, hi=2) or 0,
        link_id=p.link_id(),
        reduce_only=p.flag("reduceOnly"),
        close_on_trigger=p.flag("closeOnTrigger"),
        trigger_price=trigger_price,
        trigger_direction=trigger_direction or 0,
        trigger_by=p.text("triggerBy", choices=TRIGGER_BY) or LAST_PRICE,
        stop_loss=stop_loss,
        sl_trigger_by=p.text("slTriggerBy", choices=TRIGGER_BY) or LAST_PRICE,
    )


def amend_request(p: Params) -> AmendRequest:
    symbol = p.text("symbol", required=True)
    assert symbol is not None
    order_id = p.text("orderId") or ""
    link_id = p.text("orderLinkId") or ""
    if not order_id and not link_id:
        raise PaperError(10001, "params error: OrderId or orderLinkId is required")
    p.no_attached_tpsl()
    return AmendRequest(
        symbol=symbol,
        order_id=order_id,
        link_id=link_id,
        qty=p.decimal("qty"),
        price=p.decimal("price"),
        trigger_price=p.decimal("triggerPrice"),
        trigger_by=p.text("triggerBy", choices=TRIGGER_BY),
    )


def cancel_target(p: Params) -> tuple[str, str, str]:
    """(symbol, orderId, orderLinkId) of a cancel."""
    symbol = p.text("symbol", required=True)
    assert symbol is not None
    order_id = p.text("orderId") or ""
    link_id = p.text("orderLinkId") or ""
    if not order_id and not link_id:
        raise PaperError(10001, "params error: OrderId or orderLinkId is required")
    return symbol, order_id, link_id


def trading_stop_request(p: Params) -> TradingStopRequest:
    symbol = p.text("symbol", required=True)
    assert symbol is not None
    idx = p.integer("positionIdx", lo=0, hi=2)
    if idx is None:
        raise params_error("positionIdx", "is required")
    mode = p.text("tpslMode") or "Full"
    if mode not in ("Full", "Partial"):
        raise params_error("tpslMode")
    trailing = p.decimal("trailingStop")
    if trailing is not None and trailing != 0:
        raise params_error("trailingStop", "is not supported by the paper exchange")
    if p.has("activePrice"):
        raise params_error("activePrice", "is not supported by the paper exchange (no trailing stops)")
    types = {}
    for name in ("tpOrderType", "slOrderType"):
        value = p.text(name, choices=("Market", "Limit")) or "Market"
        if value == "Limit" and mode != "Partial":
            raise params_error(name, "Limit needs tpslMode Partial")
        types[name] = value
    if mode == "Full":
        for name in ("tpSize", "slSize", "tpLimitPrice", "slLimitPrice"):
            if p.has(name):
                raise params_error(name, "is for tpslMode Partial only")
    return TradingStopRequest(
        symbol=symbol,
        position_idx=idx,
        tpsl_mode=mode,
        take_profit=p.decimal("takeProfit"),
        stop_loss=p.decimal("stopLoss"),
        tp_trigger_by=p.text("tpTriggerBy", choices=TRIGGER_BY),
        sl_trigger_by=p.text("slTriggerBy", choices=TRIGGER_BY),
        tp_size=p.decimal("tpSize"),
        sl_size=p.decimal("slSize"),
        tp_order_type=types["tpOrderType"],
        sl_order_type=types["slOrderType"],
        tp_limit_price=p.decimal("tpLimitPrice"),
        sl_limit_price=p.decimal("slLimitPrice"),
    )
