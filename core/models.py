"""The domain vocabulary: closed enums and immutable records.

Pure: no I/O, no clock. Times are epoch seconds (float) handed in by the caller; prices and
quantities are `Decimal` everywhere (never float). Records are frozen; a change is `dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

ZERO = Decimal(0)
ONE = Decimal(1)
POSITION_STOP_LOSS = "StopLoss"  # Bybit's stopOrderType of a position's own (Full-mode) stop-loss


# --------------------------------------------------------------------------------------------- enums


class Side(StrEnum):
    """Bybit's order/position side."""

    BUY = "Buy"
    SELL = "Sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for a long, -1 for a short: price moves in the profit direction by `sign * d`."""
        return 1 if self is Side.BUY else -1


class Phase(StrEnum):
    PENDING = "pending"  # created, no order acknowledged yet
    BUILDING = "building"  # entry orders working
    MONITORING = "monitoring"  # fully built (or adopted), no take-profit filled yet
    PROFIT_TAKING = "profit_taking"  # at least one take-profit filled
    CLOSING = "closing"  # flat (or expired): cancels sent; closed once a read shows everything final
    CLOSED = "closed"  # terminal

    @property
    def is_open(self) -> bool:
        return self is not Phase.CLOSED


class Tier(StrEnum):
    """Urgency tiers, most urgent first. Intervals live in config/queues.py (the one tier table)."""

    CRITICAL = "critical"
    ACTIVE = "active"
    STANDARD = "standard"
    INACTIVE = "inactive"
    IDLE = "idle"

    @property
    def rank(self) -> int:
        """0 = most urgent."""
        return _TIER_ORDER.index(self)

    def more_urgent_than(self, other: Tier) -> bool:
        return self.rank < other.rank


_TIER_ORDER: tuple[Tier, ...] = tuple(Tier)


class EventKind(StrEnum):
    # critical: written and committed at once
    MONITOR_CREATED = "monitor_created"
    MONITOR_REMOVED = "monitor_removed"
    TP_HIT = "tp_hit"
    SL_HIT = "sl_hit"
    BREAKEVEN_MOVED = "breakeven_moved"
    POSITION_CLOSED = "position_closed"
    # non-critical: coalesced (last write wins per monitor) and flushed in batches
    POSITION_UPDATE = "position_update"
    PARTIAL_FILL = "partial_fill"
    ORDER_ADJUSTMENT = "order_adjustment"
    MONITORING_UPDATE = "monitoring_update"

    @property
    def critical(self) -> bool:
        return self in CRITICAL_KINDS


CRITICAL_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.MONITOR_CREATED,
        EventKind.MONITOR_REMOVED,
        EventKind.TP_HIT,
        EventKind.SL_HIT,
        EventKind.BREAKEVEN_MOVED,
        EventKind.POSITION_CLOSED,
    }
)


class CloseReason(StrEnum):
    TP_COMPLETE = "tp_complete"  # the last take-profit closed the position
    STOP_LOSS = "stop_loss"  # the original (or a not-yet-breakeven) stop fired
    BREAKEVEN_STOP = "breakeven_stop"  # the stop fired after it had been moved to breakeven
    MANUAL = "manual"  # a person ended it: flattened by hand outside our orders, or removed through us
    EXTERNAL = "external"  # the position went away in a way that is no close: flipped to the other side
    EXPIRED = "expired"  # the entries' time limit passed before anything filled


class OrderRole(StrEnum):
    ENTRY = "E"
    TP = "TP"
    SL = "SL"


class OrderStatus(StrEnum):
    """Our view of an order we own."""

    # known not to be on the exchange (refused before it was carried out, or a create whose answer
    # never came that a look-up made after the receive window did not find): sent again with the
    # same orderLinkId, or dropped if it is no longer wanted
    RETRY = "retry"
    # create sent, not yet seen on the exchange; a create whose answer never came stays here (in
    # flight) until a read finds it or proves that it never landed
    PLACING = "placing"
    OPEN = "open"  # seen resting (or untriggered) on the exchange
    CANCELLING = "cancelling"  # cancel sent, still seen open
    FILLED = "filled"  # fully filled (terminal)
    CANCELLED = "cancelled"  # gone after we asked for it (terminal)
    LOST = "lost"  # gone without us: cancelled from outside, rejected, deactivated (terminal)
    # An order whose amend or cancel was answered "not found" keeps its status: the next read looks
    # it up (its final fills) before anything is re-placed.

    @property
    def live(self) -> bool:
        return self in (OrderStatus.PLACING, OrderStatus.OPEN, OrderStatus.CANCELLING)


class ExchangeOrderStatus(StrEnum):
    """Bybit's orderStatus values for linear orders."""

    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    UNTRIGGERED = "Untriggered"
    TRIGGERED = "Triggered"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"
    DEACTIVATED = "Deactivated"

    @property
    def is_open(self) -> bool:
        return self in (
            ExchangeOrderStatus.NEW,
            ExchangeOrderStatus.PARTIALLY_FILLED,
            ExchangeOrderStatus.UNTRIGGERED,
            ExchangeOrderStatus.TRIGGERED,
        )


class AccountRole(StrEnum):
    MAIN = "main"
    MIRROR = "mirror"


class ErrorKind(StrEnum):
    """What the caller must do about a failure (see core.errors for the exception tree)."""

    RETRY_LATER = "retry_later"
    EXCHANGE_DOWN = "exchange_down"
    BACK_OFF = "back_off"
    INVALID_ORDER = "invalid_order"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    STOP_AND_ALERT = "stop_and_alert"
    FIX_INPUT = "fix_input"
    TRIGGER_PASSED = "trigger_passed"  # a conditional order refused: the price is already through it
    NO_POSITION = "no_position"  # a position's own stop refused: the position is flat (zero size)
    INTERNAL = "internal"  # a bug or corrupt stored state: nobody's input to fix; alert the operator


# ------------------------------------------------------------------------------------------ secrets


class Secret:
    """A credential that never shows itself in repr, str, format or logs. `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # pickling would be a way to leak it into a broker message
        raise TypeError("a Secret is not serialisable")


# ---------------------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    base_url: str
    api_key: Secret = field(repr=False)
    api_secret: Secret = field(repr=False)
    role: AccountRole = AccountRole.MAIN
    mirror_of: str | None = None  # the main account a mirror follows
    ratio: Decimal = ONE  # mirror size = main size × ratio (fixed ratio)
    ratio_by_equity: bool = False  # when true, ratio = mirror equity / main equity, computed by the caller
    category: str = "linear"
    settle_coin: str = "USDT"

    @property
    def is_mirror(self) -> bool:
        return self.role is AccountRole.MIRROR


# -------------------------------------------------------------------------------------- instruments


@dataclass(frozen=True, slots=True)
class Instrument:
    """Exchange filters of one symbol (from /v5/market/instruments-info)."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal = ZERO
    max_mkt_qty: Decimal | None = None


# ---------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class EntryLevel:
    qty: Decimal
    price: Decimal | None = None  # None: a market entry

    @property
    def is_market(self) -> bool:
        return self.price is None


@dataclass(frozen=True, slots=True)
class TakeProfitLevel:
    price: Decimal
    fraction: Decimal  # of the built position; the fractions of a plan sum to exactly 1


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated plan (build one with core.plan.parse_plan, which checks every rule)."""

    symbol: str
    side: Side
    entries: tuple[EntryLevel, ...]  # empty when adopting an open position
    take_profits: tuple[TakeProfitLevel, ...]
    stop_loss: Decimal
    breakeven_after: int | None = 1  # move the stop to breakeven once TP k has filled; None: never
    fee_buffer: Decimal = Decimal("0.0008")  # breakeven = avg entry × (1 ± fee_buffer)
    adopt: bool = False
    position_idx: int = 0  # 0 one-way; 1 hedge long; 2 hedge short
    mirror: bool = True  # follow on mirror accounts
    entry_time_limit_s: float | None = None  # cancel entries still unfilled after this many seconds
    preset: str | None = None

    @property
    def planned_qty(self) -> Decimal:
        return sum((e.qty for e in self.entries), ZERO)

    @property
    def reference_entry(self) -> Decimal | None:
        """Size-weighted limit entry price (None for market-only or adopted plans)."""
        priced = [e for e in self.entries if e.price is not None]
        qty = sum((e.qty for e in priced), ZERO)
        if not priced or qty <= 0:
            return None
        return sum((e.qty * e.price for e in priced if e.price is not None), ZERO) / qty


# ----------------------------------------------------------------------------------------- monitor


@dataclass(frozen=True, slots=True)
class OwnedOrder:
    """An order this monitor placed. The orderLinkId is its identity (see core.ids)."""

    role: OrderRole
    level: int  # 1-based for entries and take-profits, 0 for the stop
    generation: int  # bumps on every repair: a new orderLinkId
    link_id: str
    side: Side
    qty: Decimal  # total order qty as last set by us (cumulative fills included)
    price: Decimal | None = None  # limit price (entries, take-profits)
    trigger_price: Decimal | None = None  # stop trigger
    filled: Decimal = ZERO  # cumExecQty last seen
    status: OrderStatus = OrderStatus.PLACING
    changed_at: float = 0.0  # when we last sent an intent for it: older snapshots cannot confirm it
    confirmed: bool = False  # the exchange answered its create, or a read showed it
    # when a create of it was last sent without an answer (0: never): until the exchange's receive
    # window has passed since, it may still land
    unanswered_at: float = 0.0

    @property
    def market_close(self) -> bool:
        """A stop slot's market close (the stop was breached or could not be placed)."""
        return self.role is OrderRole.SL and self.trigger_price is None

    @property
    def remaining(self) -> Decimal:
        return max(self.qty - self.filled, ZERO)


class BreakevenState(StrEnum):
    NONE = "none"
    PENDING = "pending"  # amend sent (or due), not yet seen on the exchange
    DONE = "done"  # seen on the exchange


@dataclass(frozen=True, slots=True)
class Monitor:
    id: str
    account: str
    plan: Plan
    phase: Phase = Phase.PENDING
    orders: tuple[OwnedOrder, ...] = ()
    position_size: Decimal = ZERO  # last size read from the exchange
    # closes counted before the entry fills they closed (a read held the close's fill and not yet
    # the entries'): the next entry fills counted are these, not growth (core.step._position)
    closed_ahead: Decimal = ZERO
    avg_entry: Decimal | None = None  # last avgPrice read from the exchange
    built_qty: Decimal = ZERO  # the size take-profit fractions apply to (entry fills, adoption, growth)
    stop_price: Decimal = ZERO  # the stop trigger we want on the exchange
    breakeven: BreakevenState = BreakevenState.NONE
    breakeven_price: Decimal | None = None
    tp_hits: tuple[int, ...] = ()
    entries_closed: bool = False  # no more entry orders: cancelled after TP1, timed out, or all filled
    closed_reason: CloseReason | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_activity_at: float = 0.0  # last fill, order change or price approach
    tier: Tier = Tier.STANDARD
    version: int = 0
    mirror_of: str | None = None  # main monitor id, for a mirror monitor
    ratio: Decimal = ONE  # mirror ratio applied to the main plan
    unexplained_at: float | None = None  # first read whose size our fills do not explain (taken_at)
    # while unexplained: the last read that found it so came from the stream view and could not
    # confirm it (core.step._pushed_cannot_confirm): a REST read must (workers.checker)
    confirm_by_rest: bool = False
    repairs: int = 0  # orders re-placed so far (bounded: no loop of new orders)
    halted: bool = False  # repair budget spent: no more re-placements; an operator was alerted
    last_price: Decimal | None = None
    # the stop on the position itself (Policy.stop_mode "position"; unused in "order" mode):
    stop_sent_at: float = 0.0  # when a SetPositionStop was last sent: older reads cannot judge it
    stop_seen: Decimal | None = None  # the position's stopLoss the last fresh read showed (None: unset)
    # the last stop trigger the exchange answered "set" (ok) for: a trading-stop, or a create or
    # trigger amend of the stop order (order mode)
    stop_accepted: Decimal | None = None
    # the stop_sent_at of the call answered "set" (ok); 0 once a later call was not answered so
    stop_accepted_at: float = 0.0
    # the entries' filled qty when the stop was last accepted or seen: a fill since then set the
    # stop attached to the entries (the plan's) on the position, replacing ours
    stop_entries_filled: Decimal = ZERO
    stop_resets: int = 0  # times it was set again after a read showed it removed (bounded)
    stop_fired: Decimal = ZERO  # the size the position's own stop closed (it has no order of ours)
    # the execTime (ms) of the last fill of it counted (or, judged by the price, the read's time): a
    # newer fill is another firing (an entry's partial fill reopened the position and set it again)
    stop_fired_ms: int = 0
    stop_crossed: bool = False  # a read's price was through the position's stop since it was last set

    @property
    def symbol(self) -> str:
        return self.plan.symbol

    @property
    def side(self) -> Side:
        return self.plan.side

    @property
    def position_idx(self) -> int:
        return self.plan.position_idx

    @property
    def key(self) -> tuple[str, str, int]:
        """One monitor per (account, symbol, positionIdx)."""
        return (self.account, self.plan.symbol, self.plan.position_idx)

    def live_orders(self, role: OrderRole | None = None) -> tuple[OwnedOrder, ...]:
        return tuple(o for o in self.orders if o.status.live and (role is None or o.role is role))

    def current(self, role: OrderRole, level: int) -> OwnedOrder | None:
        """The newest generation of the order in this slot."""
        best: OwnedOrder | None = None
        for o in self.orders:
            if o.role is role and o.level == level and (best is None or o.generation > best.generation):
                best = o
        return best

    def filled_of(self, role: OrderRole, level: int | None = None) -> Decimal:
        """Total filled across every generation of a slot (or of a role)."""
        return sum(
            (o.filled for o in self.orders if o.role is role and (level is None or o.level == level)),
            ZERO,
        )


# ---------------------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    position_idx: int
    side: Side | None  # None when flat
    size: Decimal
    avg_price: Decimal
    mark_price: Decimal | None = None
    unrealised_pnl: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    leverage: Decimal | None = None
    stop_loss: Decimal | None = None  # the position's own (Full-mode) stop-loss; None: unset


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the exchange reports it (/v5/order/realtime or /v5/order/history)."""

    order_id: str
    link_id: str
    symbol: str
    side: Side
    order_type: str  # Limit | Market
    qty: Decimal
    filled: Decimal  # cumExecQty
    status: ExchangeOrderStatus
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    position_idx: int = 0
    avg_price: Decimal | None = None
    created_ms: int = 0
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last_price: Decimal
    mark_price: Decimal


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one successful read of an account showed. A failed read yields no Snapshot at all:
    core never sees "unknown" as "flat" or "no orders"."""

    account: str
    taken_at: float  # when the read started: intents sent after it cannot be confirmed by it
    positions: Mapping[tuple[str, int], Position]
    open_orders: Mapping[str, ExchangeOrder]  # by orderLinkId (orders without one are not ours)
    instruments: Mapping[str, Instrument]
    tickers: Mapping[str, Ticker] = field(default_factory=dict)
    # Owned orders missing from open_orders were looked up (history / by orderLinkId): what was
    # found is in closed_orders; a link id in `looked_up` but not in closed_orders was not found.
    closed_orders: Mapping[str, ExchangeOrder] = field(default_factory=dict)
    looked_up: frozenset[str] = frozenset()
    # the read came from the account's stream view (the exchange pushes its fills and order
    # changes, and each push calls a check), not from a poll by REST: see core.urgency.classify
    pushed: bool = False
    # Fills of a position's own stop-loss (`Policy.stop_mode` "position"): pushed (the stream
    # view), or looked up in the account's executions when a read must tell a close by that stop
    # from a change by hand (`core.step.stop_fills_to_look_up`): (symbol, side of the execution) ->
    # its latest execTime (ms). For a symbol in `stop_fills_read` the look-up was made, so a side
    # absent from `stop_fills` means no such fill as of this read; a pushed view proves no absence.
    stop_fills: Mapping[tuple[str, Side], int] = field(default_factory=dict)
    stop_fills_read: frozenset[str] = frozenset()
    # A read from the stream view: when each position row's last push was received (or the REST
    # read that reconciled the row began), in seconds. A row is as of then, not `taken_at`: a
    # position push can be lost, and the row keeps what the last push delivered. A row absent here
    # is as of `taken_at` (every row of a REST read).
    position_seen_at: Mapping[tuple[str, int], float] = field(default_factory=dict)

    def position(self, symbol: str, position_idx: int) -> Position | None:
        return self.positions.get((symbol, position_idx))

    def size(self, symbol: str, position_idx: int) -> Decimal:
        p = self.position(symbol, position_idx)
        return p.size if p is not None else ZERO

    def price(self, symbol: str) -> Decimal | None:
        """Mark price of the symbol: from a position row of this read (fresh), else the ticker
        (shared across accounts, up to a second old)."""
        mark = self._position_mark(symbol)
        if mark is not None:
            return mark
        t = self.tickers.get(symbol)
        return t.mark_price if t is not None else None

    def last_price(self, symbol: str) -> Decimal | None:
        """The freshest price this read knows: a position row's mark, else the ticker's last."""
        mark = self._position_mark(symbol)
        if mark is not None:
            return mark
        t = self.tickers.get(symbol)
        return t.last_price if t is not None else None

    def trigger_price(self, symbol: str, trigger_by: str) -> Decimal | None:
        """The price a conditional order with this `triggerBy` fires on: the last traded price
        (LastPrice) or the mark (MarkPrice; IndexPrice is judged on the mark too)."""
        if trigger_by == "LastPrice":
            t = self.tickers.get(symbol)
            if t is not None:
                return t.last_price
        return self.price(symbol)

    def _position_mark(self, symbol: str) -> Decimal | None:
        for idx in (0, 1, 2):
            p = self.positions.get((symbol, idx))
            if p is not None and p.mark_price:
                return p.mark_price
        return None


@dataclass(frozen=True, slots=True)
class WalletBalance:
    account: str
    equity: Decimal  # totalEquity (USD)
    wallet_balance: Decimal  # USDT walletBalance
    available: Decimal  # totalAvailableBalance
    unrealised_pnl: Decimal = ZERO
    realised_pnl: Decimal = ZERO  # USDT cumRealisedPnl


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill (/v5/execution/list)."""

    exec_id: str
    order_id: str
    link_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    exec_time_ms: int
    is_maker: bool = False
    exec_type: str = "Trade"
    # "StopLoss" for a fill of a position's own stop-loss (a system order, no orderLinkId); "" for
    # a plain or conditional order of ours (Bybit's "UNKNOWN" included)
    stop_order_type: str = ""

    @property
    def by_position_stop(self) -> bool:
        return self.stop_order_type == POSITION_STOP_LOSS


# ------------------------------------------------------------------------------------------ intents


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    account: str
    monitor_id: str
    link_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: str = "Limit"  # Limit | Market
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    trigger_direction: int = 0  # 1 rises to, 2 falls to
    trigger_by: str = "LastPrice"
    reduce_only: bool = False
    close_on_trigger: bool = False
    position_idx: int = 0
    time_in_force: str = "GTC"
    stage: int = 3  # send order within a pass (see `Stage`)
    # an entry's attached stop-loss (position stop mode): each fill of the entry sets it as the
    # position's own, so the exchange protects the position from its first fill on
    stop_loss: Decimal | None = None
    stop_loss_by: str = "LastPrice"

    @property
    def conditional(self) -> bool:
        return self.trigger_price is not None


@dataclass(frozen=True, slots=True)
class AmendOrder:
    account: str
    monitor_id: str
    link_id: str
    symbol: str
    qty: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    conditional: bool = False  # conditional orders cannot go through amend-batch
    stage: int = 3  # send order within a pass (see `Stage`)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    account: str
    monitor_id: str
    link_id: str
    symbol: str
    stage: int = 1  # send order within a pass (see `Stage`)


@dataclass(frozen=True, slots=True)
class SetPositionStop:
    """The position's own stop-loss (Full mode: it closes the whole position at market whatever its
    size by then, so the exchange resizes it as take-profits and entries fill). Setting the value it
    already has is harmless ("not modified" is an ok answer). `link_id` names the monitor's stop slot
    for the answers (generation 0: never an order's id)."""

    account: str
    monitor_id: str
    link_id: str
    symbol: str
    trigger_price: Decimal
    trigger_by: str = "LastPrice"
    position_idx: int = 0
    stage: int = 0  # Stage.STOP: first in a pass


Intent = PlaceOrder | AmendOrder | CancelOrder | SetPositionStop


class Stage:
    """The order in which one pass's intents are sent: the stop first (the position's own stop set,
    or a stop order placed or amended), then cancels, then amends that lower a quantity, then places
    and amends that raise one — so the reduce-only total never exceeds the position on the way, and
    no failed call delays the stop."""

    STOP = 0
    CANCEL = 1
    LOWER = 2
    RAISE = 3


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The exchange's answer to one intent. Idempotent outcomes (duplicate create, cancel of an
    unknown order, amend that changes nothing) come back as ok=True."""

    link_id: str
    ok: bool
    error: ErrorKind | None = None
    message: str = ""
    order_id: str = ""
    sent: bool = True  # False: never sent (an earlier call of the pass failed)
    answered_at: float | None = None  # when the answer came (epoch s), stamped by the sender

    @property
    def unknown(self) -> bool:
        """No answer came for an intent that was sent: it may or may not have been carried out."""
        return not self.ok and self.sent and self.error in (ErrorKind.RETRY_LATER, ErrorKind.EXCHANGE_DOWN)


# ------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # deterministic idempotency key (core.ids.event_id)
    monitor_id: str
    account: str
    kind: EventKind
    at: float
    monitor_version: int
    payload: Mapping[str, Any] = field(default_factory=dict)  # JSON-able: str / int / bool / None

    @property
    def critical(self) -> bool:
        return self.kind.critical


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one pure step: the monitor's next state, what to send, what to record."""

    monitor: Monitor
    intents: tuple[Intent, ...] = ()
    events: tuple[Event, ...] = ()

    @property
    def tier(self) -> Tier:
        return self.monitor.tier
