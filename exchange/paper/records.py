"""The paper exchange's mutable state records: accounts, orders, positions, executions.

Only the engine mutates them (under its lock). Every mutation of an order or a position clears its
cached v5 view (`view = None`) so that list endpoints can serve unchanged rows without re-formatting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.models import ExchangeOrderStatus, Side
from exchange.paper.indexes import SeqIndex, SortedKeys
from exchange.paper.instruments import InstrumentSpec

if TYPE_CHECKING:
    import orjson

    from exchange.paper.book import Ladder

ZERO = Decimal(0)
RECENT_CLOSED = 500  # /v5/order/realtime?openOnly=1 shows at most this many closed orders

OPEN_STATUSES = frozenset(
    {
        ExchangeOrderStatus.NEW,
        ExchangeOrderStatus.PARTIALLY_FILLED,
        ExchangeOrderStatus.UNTRIGGERED,
        ExchangeOrderStatus.TRIGGERED,
    }
)

# stopOrderType values
PLAIN = ""
STOP = "Stop"
TAKE_PROFIT = "TakeProfit"
STOP_LOSS = "StopLoss"
PARTIAL_TAKE_PROFIT = "PartialTakeProfit"
PARTIAL_STOP_LOSS = "PartialStopLoss"
POSITION_TPSL = frozenset({TAKE_PROFIT, STOP_LOSS, PARTIAL_TAKE_PROFIT, PARTIAL_STOP_LOSS})


def mask_key(api_key: str) -> str:
    """What of an API key may appear in answers and logs: its first 4 characters."""
    return f"{api_key[:4]}***" if len(api_key) >= 8 else "***"


@dataclass(slots=True, eq=False)
class PaperOrder:
    seq: int
    order_id: str
    link_id: str
    account: PaperAccount
    spec: InstrumentSpec
    side: Side
    order_type: str  # Limit | Market (a conditional Market is a stop-market)
    tif: str  # GTC | IOC | FOK | PostOnly
    qty: Decimal
    price: Decimal  # 0 for Market
    position_idx: int
    reduce_only: bool  # as sent
    close_on_trigger: bool
    reducing: bool  # effective: reduceOnly, closeOnTrigger, or the closing side of a hedge position
    created_ms: int
    last_price_on_created: Decimal
    trigger_price: Decimal = ZERO
    trigger_direction: int = 0
    trigger_by: str = ""
    stop_order_type: str = PLAIN
    create_type: str = "CreateByUser"
    status: ExchangeOrderStatus = ExchangeOrderStatus.NEW
    updated_ms: int = 0
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    prio: int = 0  # book priority: creation order, renewed when the price is amended
    book_key: tuple[Decimal, int] | None = None
    ladder: Ladder | None = None
    reserved_im: Decimal = ZERO  # initial margin held for this resting opening order
    close_all: bool = False  # qty "0" + reduceOnly + closeOnTrigger, or a position TP/SL: closes it all
    stop_loss: Decimal = ZERO  # attached (Full mode): each fill sets it as the position's stop-loss
    sl_trigger_by: str = ""
    attached_from: str = ""  # a position stop-loss set by an order's attached one: that order's link id
    view: tuple[dict[str, Any], orjson.Fragment] | None = None  # (v5 dict, its JSON): views.py

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum_qty if self.status in OPEN_STATUSES else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_conditional(self) -> bool:
        return self.stop_order_type != PLAIN

    @property
    def is_position_tpsl(self) -> bool:
        return self.stop_order_type in POSITION_TPSL


@dataclass(slots=True, eq=False)
class PaperPosition:
    account: PaperAccount
    spec: InstrumentSpec
    idx: int
    leverage: Decimal
    created_ms: int
    side: Side | None = None
    size: Decimal = ZERO
    avg: Decimal = ZERO
    cur_realised: Decimal = ZERO
    cum_realised: Decimal = ZERO
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    tp_trigger_by: str = "LastPrice"
    sl_trigger_by: str = "LastPrice"
    tp_order: PaperOrder | None = None
    sl_order: PaperOrder | None = None
    updated_ms: int = 0
    opened_ms: int = 0
    seq: int = 0
    im: Decimal = ZERO  # initial margin this position holds in its account's total
    reducing_orders: dict[int, PaperOrder] = field(default_factory=dict)  # open, by order seq
    view: tuple[dict[str, Any], orjson.Fragment] | None = None  # (v5 dict, its JSON): views.py
    view_mark: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def key(self) -> tuple[str, int]:
        return (self.spec.symbol, self.idx)


@dataclass(slots=True, eq=False)
class PaperExecution:
    seq: int
    exec_id: str
    account: PaperAccount
    spec: InstrumentSpec
    order_id: str
    link_id: str
    side: Side
    order_type: str
    stop_order_type: str
    create_type: str
    order_price: Decimal
    order_qty: Decimal
    leaves_qty: Decimal
    price: Decimal
    qty: Decimal
    value: Decimal
    fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    closed_size: Decimal
    mark_price: Decimal
    time_ms: int
    pnl: Decimal = ZERO  # realised by this fill before fees (the stream's execPnl)
    view: tuple[dict[str, Any], orjson.Fragment] | None = None  # (v5 dict, its JSON): views.py

    @property
    def symbol(self) -> str:
        return self.spec.symbol


@dataclass(slots=True, eq=False)
class SymbolMarket:
    """Price state of one symbol (what /v5/market/tickers shows)."""

    spec: InstrumentSpec
    last: Decimal
    mark: Decimal
    high: Decimal
    low: Decimal
    prev_24h: Decimal
    volume: Decimal = ZERO
    turnover: Decimal = ZERO
    version: int = 0  # bumps on every price change or trade
    view: tuple[dict[str, Any], orjson.Fragment] | None = None  # (v5 dict, its JSON): views.py


@dataclass(slots=True, eq=False)
class PaperAccount:
    id: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    wallet: Decimal = ZERO
    hedge_default: bool = False
    created_ms: int = 0
    hedge_by_symbol: dict[str, bool] = field(default_factory=dict)
    leverage: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # (buy, sell)
    positions: dict[tuple[str, int], PaperPosition] = field(default_factory=dict)
    open_positions: SortedKeys[tuple[str, int]] = field(default_factory=SortedKeys)
    orders_by_id: dict[str, PaperOrder] = field(default_factory=dict)
    orders_by_link: dict[str, PaperOrder] = field(default_factory=dict)  # every orderLinkId ever used
    open_orders: SeqIndex[PaperOrder] = field(default_factory=SeqIndex)
    open_by_symbol: dict[str, SeqIndex[PaperOrder]] = field(default_factory=dict)
    history: SeqIndex[PaperOrder] = field(default_factory=SeqIndex)
    history_by_symbol: dict[str, SeqIndex[PaperOrder]] = field(default_factory=dict)
    recent_closed: deque[PaperOrder] = field(default_factory=lambda: deque(maxlen=RECENT_CLOSED))
    executions: SeqIndex[PaperExecution] = field(default_factory=SeqIndex)
    conditional_count: dict[str, int] = field(default_factory=dict)
    pos_im: Decimal = ZERO
    order_im: Decimal = ZERO

    @property
    def masked_key(self) -> str:
        return mask_key(self.api_key)

    def hedge(self, symbol: str) -> bool:
        return self.hedge_by_symbol.get(symbol, self.hedge_default)

    def __repr__(self) -> str:
        return f"PaperAccount(id={self.id!r}, api_key={self.masked_key!r})"
