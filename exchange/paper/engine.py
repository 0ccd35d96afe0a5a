"""The paper exchange's matching engine: accounts, orders, positions, fills. Pure: no I/O, and time
comes only from the injected clock.

Rules (Bybit v5 linear, as Bybit documents it; choices where Bybit is unverified are marked):

- Prices. Each symbol has a last and a mark price (`set_prices`). Market orders fill at the last
  price as taker. A limit order that is marketable when placed (buy: last ≤ limit, sell: last ≥
  limit) fills at once at the last price as taker; otherwise it rests and fills at its own limit
  price as maker when the last price reaches it. Liquidity is unlimited unless a price update
  says otherwise: a crossed order fills completely, or (`max_fill`) up to a cap per order, the
  rest staying PartiallyFilled in the book.
- Time in force. PostOnly that would take → Cancelled, rejectReason EC_PostOnlyWillTakeLiquidity.
  IOC/FOK that cannot fill → Cancelled (EC_NoImmediateQtyToFill / EC_CancelForNoFullFill); a
  reduce-only FOK that the position caps below its qty is cancelled unfilled.
- Conditional orders (triggerPrice + triggerDirection 1 rises-to / 2 falls-to, triggerBy LastPrice
  or MarkPrice; IndexPrice = MarkPrice here) wait as Untriggered, then become a market order
  (stop-market) or a limit order (stop-limit). A direction that is already met when placed is
  refused (110092 / 110093). At most 10 per symbol and account (110009); 500 active orders (110020).
- Reducing orders: reduceOnly, closeOnTrigger, and in hedge mode the closing side of a position
  (Sell on idx 1, Buy on idx 2). Placement needs an opposite position (110017). At execution they
  are capped to the position, so they never open or flip one; a capped order is a partial fill
  (cumExecQty < qty) and, since the position is then flat, is Cancelled with cancelType
  CancelByReduceOnly (choice). Resting reducing orders larger than the position are left alone
  until they execute. When a position goes flat every remaining reducing order of it is cancelled
  (CancelByReduceOnly; untriggered conditionals become Deactivated; position TP/SL orders get
  CancelByTpSlTsClear); when a one-way position flips, those that would now increase it are.
  qty "0" + reduceOnly + closeOnTrigger closes the whole position (Bybit's close-all form).
- Matching order within one price update: the triggers and resting limits the move crossed, in
  the order the path from the previous price meets them (distance of the trigger / limit price from
  the previous last or mark price), ties by priority (creation order, renewed by a price amend). A
  jump through two entry limits and a stop fills the entries first, then the stop closes it all.
  Each update touches only the orders it crosses (see book.py): `examined` counts them.
- Positions: one per (account, symbol, positionIdx); one-way idx 0, hedge idx 1 long / 2 short
  (a wrong idx → 10001 `position idx not match position mode`). Average price, realised PnL
  (curRealisedPnl since the position opened, cumRealisedPnl ever, both net of fees), unrealised PnL
  from the mark price. Fees: maker 0.0002, taker 0.00055 of the executed value.
- Margin (simple, choice): an opening order needs qty × price / leverage (default 10) of available
  balance = wallet − position IM − resting-order IM (unrealised PnL not counted) → else 110007.
  Conditional orders hold no margin until triggered; a triggered opening order that cannot be
  funded is Rejected (rejectReason EC_InsufficientMargin, choice). No liquidation.
- orderLinkId: unique per account among every id ever used (110072).
- Order filters (realtime / cancel-all): `Order` = active orders, `StopOrder` = untriggered
  conditional orders (incl. position TP/SL), `tpslOrder` = position TP/SL only; none = all.
- Position TP/SL (trading-stop): Full mode closes the whole position whatever its size; Partial
  mode adds fixed-size Market or Limit TP/SL orders (at most 20 a position).
- Change journal: each mutating operation (order placed / amended / cancelled, a price update with
  everything it triggered and filled, a trading stop, a leverage change) hands the list of its
  changes, in engine order, to every function in `listeners` when it ends, under the lock. The
  paper server's streams turn them into pushes; with no listener no journal is kept.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from random import Random

from core.errors import FixInput
from core.models import ExchangeOrderStatus as St
from core.models import Side
from core.ports import Clock
from exchange.paper import errors as E
from exchange.paper.book import SymbolBook
from exchange.paper.commands import (
    INDEX_PRICE,
    LAST_PRICE,
    LIMIT,
    MARK_PRICE,
    MARKET,
    AmendRequest,
    OrderRequest,
    TradingStopRequest,
)
from exchange.paper.decimals import on_step, round8, to_decimal
from exchange.paper.errors import PaperError, params_error
from exchange.paper.indexes import SeqIndex
from exchange.paper.instruments import SETTLE_COIN, InstrumentSpec, default_instruments
from exchange.paper.ledger import apply_fill, refresh_margin
from exchange.paper.records import (
    PARTIAL_STOP_LOSS,
    PARTIAL_TAKE_PROFIT,
    STOP,
    STOP_LOSS,
    TAKE_PROFIT,
    ZERO,
    PaperAccount,
    PaperExecution,
    PaperOrder,
    PaperPosition,
    SymbolMarket,
)
from exchange.paper.views import order_view

MAKER_FEE = Decimal("0.0002")
TAKER_FEE = Decimal("0.00055")
DEFAULT_LEVERAGE = Decimal(10)
MAX_CONDITIONAL = 10
MAX_ACTIVE = 500
MAX_CANCEL_ALL = 500
MAX_PARTIAL_TPSL = 20

CANCEL_BY_USER = "CancelByUser"
CANCEL_BY_REDUCE_ONLY = "CancelByReduceOnly"
CANCEL_BY_TPSL_CLEAR = "CancelByTpSlTsClear"

# One change of an engine operation: ("order", PaperOrder) | ("execution", PaperExecution) |
# ("position", PaperPosition) | ("wallet", PaperAccount) | ("ticker", SymbolMarket), whose state is
# the one at the end of the operation (a record may appear several times), or ("order_state",
# (PaperAccount, v5 order row)) for a state that does not last to the end of it (Triggered).
Change = tuple[str, object]


class _Operation:
    """`with engine.changes():` — the engine lock, and (when someone listens) a journal of the
    operation's changes handed to every listener as the outermost operation ends."""

    __slots__ = ("engine",)

    def __init__(self, engine: PaperEngine) -> None:
        self.engine = engine

    def __enter__(self) -> None:
        engine = self.engine
        engine.lock.acquire()
        engine._depth += 1
        if engine._depth == 1 and engine.listeners:
            engine._journal = []

    def __exit__(self, *exc: object) -> None:
        engine = self.engine
        try:
            engine._depth -= 1
            if engine._depth == 0 and engine._journal is not None:
                changes, engine._journal = engine._journal, None
                if changes:
                    for listener in engine.listeners:
                        listener(changes)
        finally:
            engine.lock.release()


class PaperEngine:
    """All state of one paper exchange. Every public method takes `lock` (re-entrant)."""

    def __init__(
        self,
        *,
        clock: Clock,
        instruments: Iterable[InstrumentSpec] | None = None,
        extra_symbols: int = 0,
        seed: int = 0,
        maker_fee: Decimal = MAKER_FEE,
        taker_fee: Decimal = TAKER_FEE,
        default_leverage: Decimal = DEFAULT_LEVERAGE,
    ) -> None:
        specs = list(instruments) if instruments is not None else default_instruments(extra_symbols)
        self.specs: dict[str, InstrumentSpec] = {}
        for spec in specs:
            if spec.symbol in self.specs:
                raise ValueError(f"instruments: duplicate symbol {spec.symbol}")
            self.specs[spec.symbol] = spec
        self.symbols: tuple[str, ...] = tuple(self.specs)
        self.clock = clock
        self.seed = seed
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.default_leverage = default_leverage
        self.lock = threading.RLock()
        # change listeners: each gets the list of changes of one engine operation, in order,
        # under the lock, when the operation ends (the paper server turns them into pushes)
        self.listeners: list[Callable[[list[Change]], None]] = []
        self._journal: list[Change] | None = None
        self._depth = 0
        self._reset_state()

    # ------------------------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        self.markets: dict[str, SymbolMarket] = {
            s: SymbolMarket(
                spec=sp,
                last=sp.start_price,
                mark=sp.start_price,
                high=sp.start_price,
                low=sp.start_price,
                prev_24h=sp.start_price,
            )
            for s, sp in self.specs.items()
        }
        self.books: dict[str, SymbolBook] = {}
        self.accounts_by_key: dict[str, PaperAccount] = {}
        self.accounts_by_id: dict[str, PaperAccount] = {}
        self._seq = 0
        self._prio = 0
        self._exec_seq = 0
        rng = Random(self.seed)
        self._order_salt = rng.getrandbits(64)
        self._exec_salt = rng.getrandbits(64)
        self.examined = 0  # orders taken off a book by price updates (the O(crossed) counter)

    def reset(self) -> None:
        """Forget every account, order and position; prices back to their start values."""
        with self.lock:
            self._reset_state()

    def changes(self) -> _Operation:
        """The lock plus the change journal of one operation (re-entrant: nested operations
        report with the outermost one)."""
        return _Operation(self)

    def _note(self, kind: str, record: object) -> None:
        journal = self._journal
        if journal is not None:
            journal.append((kind, record))

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def spec(self, symbol: str) -> InstrumentSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise params_error("symbol")
        return spec

    def _book(self, symbol: str) -> SymbolBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = SymbolBook()
        return book

    # --------------------------------------------------------------------------------- accounts

    def create_account(
        self,
        api_key: str,
        api_secret: str,
        *,
        balance: Decimal | int | str = ZERO,
        hedge_mode: bool = False,
        account_id: str | None = None,
    ) -> PaperAccount:
        with self.lock:
            if not api_key or not isinstance(api_key, str):
                raise FixInput("api_key", "must be a non-empty string")
            if not api_secret or not isinstance(api_secret, str):
                raise FixInput("api_secret", "must be a non-empty string")
            if api_key in self.accounts_by_key:
                raise FixInput("api_key", "an account with this key exists already")
            try:
                balance = to_decimal(balance, "balance.USDT")
            except PaperError:
                raise FixInput("balance.USDT", "must be a number") from None
            if balance < 0:
                raise FixInput("balance.USDT", "must be >= 0")
            if account_id is None:
                account_id = f"acct{len(self.accounts_by_id) + 1}"
                while account_id in self.accounts_by_id:
                    account_id += "x"
            elif account_id in self.accounts_by_id:
                raise FixInput("id", f"account {account_id!r} exists already")
            acct = PaperAccount(
                id=account_id,
                api_key=api_key,
                api_secret=api_secret,
                wallet=balance,
                hedge_default=hedge_mode,
                created_ms=self.now_ms(),
            )
            self.accounts_by_key[api_key] = acct
            self.accounts_by_id[account_id] = acct
            return acct

    def account(self, api_key: str) -> PaperAccount | None:
        return self.accounts_by_key.get(api_key)

    def leverage_of(self, acct: PaperAccount, symbol: str, idx: int) -> Decimal:
        buy, sell = acct.leverage.get(symbol, (self.default_leverage, self.default_leverage))
        return sell if idx == 2 else buy

    def position(self, acct: PaperAccount, spec: InstrumentSpec, idx: int) -> PaperPosition:
        key = (spec.symbol, idx)
        pos = acct.positions.get(key)
        if pos is None:
            now = self.now_ms()
            pos = PaperPosition(
                account=acct,
                spec=spec,
                idx=idx,
                leverage=self.leverage_of(acct, spec.symbol, idx),
                created_ms=now,
                updated_ms=now,
            )
            acct.positions[key] = pos
        return pos

    @staticmethod
    def available(acct: PaperAccount) -> Decimal:
        return acct.wallet - acct.pos_im - acct.order_im

    # ----------------------------------------------------------------------------------- prices

    def set_prices(
        self,
        prices: Mapping[str, Decimal],
        marks: Mapping[str, Decimal] | None = None,
        *,
        max_fill: Mapping[str, Decimal] | None = None,
    ) -> list[PaperExecution]:
        """Set last prices (and the mark, to the same value unless `marks` names it) and run the
        matching for each symbol in the order given. Prices are rounded to the tick. Returns the
        fills the update caused.

        `max_fill` {symbol: qty} models thin liquidity: each resting limit order this update
        crosses fills at most that qty and stays PartiallyFilled in the book with the rest."""
        marks = marks or {}
        max_fill = max_fill or {}
        with self.changes():
            for symbol, cap in max_fill.items():
                if symbol not in self.specs:
                    raise FixInput(f"max_fill_qty.{symbol}", "unknown symbol")
                if not isinstance(cap, Decimal) or not cap.is_finite() or cap <= 0:
                    raise FixInput(f"max_fill_qty.{symbol}", "must be a quantity > 0")
            updates: dict[str, tuple[Decimal | None, Decimal | None]] = {}
            for field, table in (("prices", prices), ("mark_prices", marks)):
                for symbol, value in table.items():
                    spec = self.specs.get(symbol)
                    if spec is None:
                        raise FixInput(f"{field}.{symbol}", "unknown symbol")
                    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                        raise FixInput(f"{field}.{symbol}", "must be a price > 0")
            for symbol, value in prices.items():
                updates[symbol] = (self._on_tick(symbol, value), None)
            for symbol, value in marks.items():
                last, _ = updates.get(symbol, (None, None))
                updates[symbol] = (last, self._on_tick(symbol, value))
            now = self.now_ms()
            fills: list[PaperExecution] = []
            for symbol, (last, mark) in updates.items():
                m = self.markets[symbol]
                old_last, old_mark = m.last, m.mark
                if last is not None:
                    m.last = last
                    m.high = max(m.high, last)
                    m.low = min(m.low, last)
                    m.mark = mark if mark is not None else last
                elif mark is not None:
                    m.mark = mark
                m.version += 1
                m.view = None
                self._note("ticker", m)
                self._match(symbol, old_last, old_mark, now, fills, max_fill.get(symbol))
            return fills

    def set_price(self, symbol: str, last: Decimal, mark: Decimal | None = None) -> list[PaperExecution]:
        return self.set_prices({symbol: last}, {symbol: mark} if mark is not None else None)

    def _on_tick(self, symbol: str, price: Decimal) -> Decimal:
        tick = self.specs[symbol].tick_size
        rounded = (price / tick).to_integral_value(ROUND_HALF_UP) * tick
        return rounded if rounded > 0 else tick

    def _match(
        self,
        symbol: str,
        old_last: Decimal,
        old_mark: Decimal,
        now: int,
        fills: list[PaperExecution],
        cap: Decimal | None,
    ) -> None:
        book = self.books.get(symbol)
        if book is None:
            return
        m = self.markets[symbol]
        triggered = book.pop_triggered(m.last, m.mark)
        crossed = book.pop_crossed_limits(m.last)
        self.examined += len(triggered) + len(crossed)
        if not triggered and not crossed:
            return
        # the path from the old price to the new one meets triggers and limits in distance order
        queue = [
            (abs(o.trigger_price - (old_last if o.trigger_by == LAST_PRICE else old_mark)), o.prio, True, o)
            for o in triggered
        ]
        queue += [(abs(o.price - old_last), o.prio, False, o) for o in crossed]
        if len(queue) > 1:
            queue.sort(key=lambda item: (item[0], item[1]))
        for _, _, is_trigger, order in queue:
            if is_trigger:
                if order.status is St.UNTRIGGERED:
                    self._trigger(order, now, fills)
                continue
            if not order.is_open:
                continue
            self._execute(order, order.price, True, now, fills, cap)
            if not order.is_open:
                continue
            if cap is not None and self._fillable(order) > 0:  # thin liquidity: the rest keeps resting
                book.add_limit(order)
                self._reserve(order)
            else:  # a reducing order the position no longer allows
                self._cancel(order, now, CANCEL_BY_REDUCE_ONLY)

    # ----------------------------------------------------------------------------------- orders

    def place_order(self, acct: PaperAccount, req: OrderRequest) -> PaperOrder:
        """Validate and accept an order; a marketable one executes before this returns."""
        with self.changes():
            spec = self.spec(req.symbol)
            symbol = spec.symbol
            m = self.markets[symbol]
            if req.link_id and req.link_id in acct.orders_by_link:
                raise PaperError(E.DUPLICATE_LINK_ID, "OrderLinkedID is duplicate")
            hedge = acct.hedge(symbol)
            idx = self._check_idx(hedge, req.position_idx)
            market = req.order_type == MARKET
            tif = "IOC" if market else (req.time_in_force or "GTC")
            price = ZERO
            if not market:
                if req.price is None:
                    raise params_error("price", "is required for Limit orders")
                self._check_price(spec, req.price, "price")
                price = req.price
            reducing = req.reduce_only or req.close_on_trigger or (hedge and req.side is not _idx_side(idx))
            close_all = req.qty == 0 and req.reduce_only and req.close_on_trigger
            qty = (spec.max_mkt_qty if market else spec.max_qty) if close_all else req.qty
            if not close_all:
                self._check_qty(spec, qty, market)
            conditional = req.trigger_price is not None and req.trigger_price != 0
            if conditional:
                assert req.trigger_price is not None
                if req.trigger_direction not in (1, 2):
                    raise params_error("triggerDirection")
                self._check_price(spec, req.trigger_price, "triggerPrice")
                self._check_direction(m, req.trigger_direction, req.trigger_price, req.trigger_by)
                if acct.conditional_count.get(symbol, 0) >= MAX_CONDITIONAL:
                    raise PaperError(
                        E.TOO_MANY_CONDITIONAL, "The number of stop orders exceeds maximum limit allowed"
                    )
            else:
                active = len(acct.open_by_symbol.get(symbol, ())) - acct.conditional_count.get(symbol, 0)
                if active >= MAX_ACTIVE:
                    raise PaperError(E.TOO_MANY_ACTIVE, "The number of active orders exceeds maximum limit")
            pos = acct.positions.get((symbol, idx))
            if req.stop_loss is not None:
                if reducing:
                    raise params_error("stopLoss", "is not allowed on an order that reduces a position")
                base = price if not market else (req.trigger_price if conditional else m.last)
                assert base is not None
                self._check_stop_side(spec, req.side, False, req.stop_loss, base, req.sl_trigger_by)
            if reducing:
                if pos is None or pos.size == 0:
                    raise E.reduce_only_no_position()
                if pos.side is req.side:
                    raise E.reduce_only_not_satisfied()
            else:
                ref = price if not market else (req.trigger_price if conditional else m.last)
                assert ref is not None
                if qty * ref < spec.min_notional:
                    raise PaperError(
                        E.MIN_NOTIONAL,
                        f"Order does not meet minimum order value {spec.min_notional}{SETTLE_COIN}",
                    )
                if not conditional:
                    self._check_margin(acct, symbol, idx, req.side, qty, ref)
            now = self.now_ms()
            self._seq += 1
            self._prio += 1
            order = PaperOrder(
                seq=self._seq,
                order_id=str(uuid.UUID(int=(self._order_salt << 64) | self._seq)),
                link_id=req.link_id,
                account=acct,
                spec=spec,
                side=req.side,
                order_type=req.order_type,
                tif=tif,
                qty=qty,
                price=price,
                position_idx=idx,
                reduce_only=req.reduce_only,
                close_on_trigger=req.close_on_trigger,
                reducing=reducing,
                created_ms=now,
                updated_ms=now,
                last_price_on_created=m.last,
                prio=self._prio,
                close_all=close_all,
                stop_loss=req.stop_loss or ZERO,
                sl_trigger_by=req.sl_trigger_by if req.stop_loss else "",
            )
            if conditional:
                assert req.trigger_price is not None
                order.trigger_price = req.trigger_price
                order.trigger_direction = req.trigger_direction
                order.trigger_by = req.trigger_by
                order.stop_order_type = STOP
                order.create_type = "CreateByStopOrder"
                order.status = St.UNTRIGGERED
            self._register(order)
            if conditional:
                acct.conditional_count[symbol] = acct.conditional_count.get(symbol, 0) + 1
                self._book(symbol).add_conditional(order)
            else:
                self._activate(order, now, [])
            return order

    def amend_order(
        self, acct: PaperAccount, req: AmendRequest, *, allow_conditional: bool = True
    ) -> PaperOrder:
        with self.changes():
            spec = self.spec(req.symbol)
            order = self.find_order(acct, req.order_id, req.link_id)
            if order is None or not order.is_open or order.symbol != spec.symbol:
                raise E.order_not_found("replace")
            untriggered = order.status is St.UNTRIGGERED
            if not allow_conditional and order.is_conditional:
                raise params_error("request", "amend-batch does not support conditional orders")
            qty, price = order.qty, order.price
            trigger, trigger_by = order.trigger_price, order.trigger_by
            close_all = order.close_all
            if req.qty is not None:
                self._check_qty(spec, req.qty, order.order_type == MARKET)
                if req.qty <= order.cum_qty:
                    raise PaperError(
                        E.AMEND_BELOW_FILLED,
                        "The modified contract quantity cannot be less than or equal to the filled quantity",
                    )
                qty, close_all = req.qty, False
            if req.price is not None:
                if order.order_type == MARKET:
                    raise params_error("price", "cannot be amended on a Market order")
                self._check_price(spec, req.price, "price")
                price = req.price
            if req.trigger_price is not None or req.trigger_by is not None:
                if not untriggered:
                    raise params_error(
                        "triggerPrice", "can only be amended on an untriggered conditional order"
                    )
                if req.trigger_price is not None:
                    self._check_price(spec, req.trigger_price, "triggerPrice")
                    trigger = req.trigger_price
                trigger_by = req.trigger_by or trigger_by
            if (qty, price, trigger, trigger_by) == (
                order.qty,
                order.price,
                order.trigger_price,
                order.trigger_by,
            ):
                raise PaperError(
                    E.PARAMS, "The order remains unchanged as the parameters entered match the existing ones."
                )
            m = self.markets[spec.symbol]
            if untriggered and (trigger, trigger_by) != (order.trigger_price, order.trigger_by):
                self._check_direction(m, order.trigger_direction, trigger, trigger_by)
            if not order.reducing and not untriggered:
                lev = self.leverage_of(acct, spec.symbol, order.position_idx)
                need = round8((qty - order.cum_qty) * price / lev)
                if need - order.reserved_im > self.available(acct):
                    raise PaperError(E.INSUFFICIENT_BALANCE, "ab not enough for new order")
            now = self.now_ms()
            SymbolBook.remove(order)
            if price != order.price or trigger != order.trigger_price or qty > order.qty:
                self._prio += 1
                order.prio = self._prio  # a changed price or a larger qty loses queue priority
            order.qty, order.price, order.close_all = qty, price, close_all
            order.trigger_price, order.trigger_by = trigger, trigger_by
            order.updated_ms = now
            order.view = None
            self._note("order", order)
            pos = acct.positions.get((spec.symbol, order.position_idx))
            if pos is not None:
                self._note("position", pos)
            if untriggered:
                self._book(spec.symbol).add_conditional(order)
            else:
                self._rest_or_take(order, now, [])
            return order

    def cancel_order(
        self, acct: PaperAccount, symbol: str, order_id: str = "", link_id: str = ""
    ) -> PaperOrder:
        with self.changes():
            spec = self.spec(symbol)
            order = self.find_order(acct, order_id, link_id)
            if order is None or not order.is_open or order.symbol != spec.symbol:
                raise E.order_not_found("cancel")
            self._cancel(order, self.now_ms(), CANCEL_BY_USER)
            return order

    def cancel_all(
        self,
        acct: PaperAccount,
        *,
        symbol: str | None = None,
        base_coin: str | None = None,
        settle_coin: str | None = None,
        order_filter: str | None = None,
        stop_order_type: str | None = None,
    ) -> list[PaperOrder]:
        with self.changes():
            index: SeqIndex[PaperOrder] | None
            if symbol:
                self.spec(symbol)
                index = acct.open_by_symbol.get(symbol)
            elif base_coin or settle_coin:
                if settle_coin and not base_coin and settle_coin != SETTLE_COIN:
                    raise params_error("settleCoin")
                index = acct.open_orders
            else:
                raise params_error("symbol", "is required: one of symbol, baseCoin or settleCoin")
            if index is None:
                return []
            chosen = [
                o
                for o in index.newest_first()
                if (not base_coin or o.spec.base_coin == base_coin)
                and matches_filter(o, order_filter)
                and (
                    not stop_order_type
                    or (o.stop_order_type == stop_order_type and o.status is St.UNTRIGGERED)
                )
            ][:MAX_CANCEL_ALL]
            now = self.now_ms()
            for order in chosen:
                if order.is_open:
                    self._cancel(order, now, CANCEL_BY_USER)
            return chosen

    def find_order(self, acct: PaperAccount, order_id: str = "", link_id: str = "") -> PaperOrder | None:
        """By orderId (it wins when both are given) or orderLinkId; 10001 when neither is given."""
        if order_id:
            return acct.orders_by_id.get(order_id)
        if link_id:
            return acct.orders_by_link.get(link_id)
        raise PaperError(E.PARAMS, "params error: OrderId or orderLinkId is required")

    # ------------------------------------------------------------------------------- positions

    def set_trading_stop(self, acct: PaperAccount, req: TradingStopRequest) -> None:
        """Take-profit / stop-loss of a position. Full: one TP and one SL, system conditional orders
        that close the whole position at market whatever its size by then (a new value replaces
        the old, "0" clears, an unchanged one is 34040). Partial: each call adds a TP and/or SL
        order for tpSize/slSize (Market, or Limit at tp/slLimitPrice), at most 20 per position.
        Trailing stops are answered with 10001 by the caller."""
        with self.changes():
            spec = self.spec(req.symbol)
            symbol = spec.symbol
            idx = self._check_idx(acct.hedge(symbol), req.position_idx)
            pos = acct.positions.get((symbol, idx))
            if pos is None or pos.size == 0 or pos.side is None:
                raise PaperError(E.PARAMS, "can not set tp/sl/ts for zero position")
            m = self.markets[symbol]
            if req.tpsl_mode == "Partial":
                self._partial_stops(pos, req)
                return
            tp_by = req.tp_trigger_by or pos.tp_trigger_by
            sl_by = req.sl_trigger_by or pos.sl_trigger_by
            changed = False
            side = pos.side
            for kind, value, by, current in (
                ("TakeProfit", req.take_profit, tp_by, pos.take_profit),
                ("StopLoss", req.stop_loss, sl_by, pos.stop_loss),
            ):
                if value is None:
                    continue
                if value != 0:
                    self._check_stop_side(
                        m.spec, side, kind == "TakeProfit", value, self._trigger_base(m, by), by
                    )
                if value != current or (
                    value != 0 and by != (pos.tp_trigger_by if kind == "TakeProfit" else pos.sl_trigger_by)
                ):
                    changed = True
            if not changed:
                raise PaperError(E.NOT_MODIFIED, "not modified")
            now = self.now_ms()
            if req.take_profit is not None:
                pos.tp_trigger_by = tp_by
                self._set_position_stop(pos, TAKE_PROFIT, req.take_profit, tp_by, now)
            if req.stop_loss is not None:
                pos.sl_trigger_by = sl_by
                self._set_position_stop(pos, STOP_LOSS, req.stop_loss, sl_by, now)
            pos.updated_ms = now
            pos.view = None
            self._note("position", pos)

    def _check_stop_side(
        self, spec: InstrumentSpec, side: Side, take_profit: bool, value: Decimal, base: Decimal, by: str
    ) -> None:
        """A TP above (long) / below (short) `base`, a SL the other way; else 10001. `base` is the
        trigger price source for a position's TP/SL (`_trigger_base`), the price an order opens at
        for the stop attached to it."""
        kind = "TakeProfit" if take_profit else "StopLoss"
        self._check_price(spec, value, "takeProfit" if take_profit else "stopLoss")
        want_above = take_profit == (side is Side.BUY)
        if (value > base) != want_above or value == base:
            rel = "higher" if want_above else "lower"
            raise PaperError(
                E.PARAMS,
                f"{kind}:{E.e8(value)} set for {side.value} position should {rel} than "
                f"base_price:{E.e8(base)}??{by}",
            )

    @staticmethod
    def _trigger_base(m: SymbolMarket, by: str) -> Decimal:
        """The price a position's TP/SL triggers on: the mark (or index) price, else the last."""
        return m.mark if by in (MARK_PRICE, INDEX_PRICE) else m.last

    def _partial_stops(self, pos: PaperPosition, req: TradingStopRequest) -> None:
        spec = pos.spec
        m = self.markets[spec.symbol]
        assert pos.side is not None
        if req.tp_size is not None and req.sl_size is not None and req.tp_size != req.sl_size:
            raise params_error("slSize", "must equal tpSize in Partial mode")
        legs = []
        for take_profit, value, by, size, order_type, limit in (
            (True, req.take_profit, req.tp_trigger_by, req.tp_size, req.tp_order_type, req.tp_limit_price),
            (False, req.stop_loss, req.sl_trigger_by, req.sl_size, req.sl_order_type, req.sl_limit_price),
        ):
            if value is None or value == 0:
                continue
            prefix = "tp" if take_profit else "sl"
            by = by or LAST_PRICE
            self._check_stop_side(m.spec, pos.side, take_profit, value, self._trigger_base(m, by), by)
            if size is None:
                raise params_error(f"{prefix}Size", "is required in Partial mode")
            self._check_qty(spec, size, True)
            if size > pos.size:
                raise params_error(f"{prefix}Size", "must not exceed the position size")
            price = ZERO
            if order_type == LIMIT:
                if limit is None:
                    raise params_error(f"{prefix}LimitPrice", f"is required with {prefix}OrderType Limit")
                self._check_price(spec, limit, f"{prefix}LimitPrice")
                price = limit
            legs.append((take_profit, value, by, size, order_type, price))
        if not legs:
            raise params_error("takeProfit", "or stopLoss is required in Partial mode")
        held = sum(1 for o in pos.reducing_orders.values() if o.stop_order_type.startswith("Partial"))
        if held + len(legs) > MAX_PARTIAL_TPSL:
            raise PaperError(E.PARAMS, f"the number of Partial TP/SL orders exceeds {MAX_PARTIAL_TPSL}")
        now = self.now_ms()
        for take_profit, value, by, size, order_type, price in legs:
            kind = PARTIAL_TAKE_PROFIT if take_profit else PARTIAL_STOP_LOSS
            self._new_position_stop(pos, kind, value, by, now, qty=size, order_type=order_type, price=price)
        pos.updated_ms = now
        pos.view = None
        self._note("position", pos)

    def _attach_stop(self, pos: PaperPosition, order: PaperOrder, now: int) -> None:
        """A fill of an order with an attached stop-loss sets it as the position's own (Full mode),
        replacing the one it held, whatever that was."""
        if pos.stop_loss == order.stop_loss and pos.sl_trigger_by == order.sl_trigger_by:
            return
        pos.sl_trigger_by = order.sl_trigger_by
        self._set_position_stop(pos, STOP_LOSS, order.stop_loss, order.sl_trigger_by, now)
        assert pos.sl_order is not None
        pos.sl_order.attached_from = order.link_id
        pos.updated_ms = now
        pos.view = None  # journalled with the fill

    def _set_position_stop(self, pos: PaperPosition, kind: str, value: Decimal, by: str, now: int) -> None:
        existing = pos.tp_order if kind == TAKE_PROFIT else pos.sl_order
        if existing is not None and existing.is_open:
            self._cancel(existing, now, CANCEL_BY_USER)
        if value == 0:
            return
        order = self._new_position_stop(pos, kind, value, by, now)
        if kind == TAKE_PROFIT:
            pos.tp_order, pos.take_profit = order, value
        else:
            pos.sl_order, pos.stop_loss = order, value

    def _new_position_stop(
        self,
        pos: PaperPosition,
        kind: str,
        value: Decimal,
        by: str,
        now: int,
        *,
        qty: Decimal | None = None,
        order_type: str = MARKET,
        price: Decimal = ZERO,
    ) -> PaperOrder:
        """A system conditional order closing the position: all of it whatever its size (qty None,
        Full mode) or `qty` (Partial)."""
        assert pos.side is not None
        acct, spec = pos.account, pos.spec
        rising = (
            kind in (TAKE_PROFIT, PARTIAL_TAKE_PROFIT)
            if pos.side is Side.BUY
            else kind in (STOP_LOSS, PARTIAL_STOP_LOSS)
        )
        full = qty is None
        self._seq += 1
        self._prio += 1
        order = PaperOrder(
            seq=self._seq,
            order_id=str(uuid.UUID(int=(self._order_salt << 64) | self._seq)),
            link_id="",
            account=acct,
            spec=spec,
            side=pos.side.opposite,
            order_type=order_type,
            tif="IOC" if order_type == MARKET else "GTC",
            qty=spec.max_mkt_qty if qty is None else qty,
            price=price,
            position_idx=pos.idx,
            reduce_only=True,
            close_on_trigger=full,
            reducing=True,
            created_ms=now,
            updated_ms=now,
            last_price_on_created=self.markets[spec.symbol].last,
            prio=self._prio,
            close_all=full,
            trigger_price=value,
            trigger_direction=1 if rising else 2,
            trigger_by=by,
            stop_order_type=kind,
            create_type=f"CreateBy{kind}",
            status=St.UNTRIGGERED,
        )
        self._register(order)
        self._book(spec.symbol).add_conditional(order)
        return order

    def switch_mode(self, acct: PaperAccount, *, symbol: str | None, coin: str | None, mode: int) -> None:
        with self.lock:
            if mode not in (0, 3):
                raise params_error("mode")
            hedge = mode == 3
            if symbol:
                symbols: Iterable[str] = (self.spec(symbol).symbol,)
            elif coin:
                if coin != SETTLE_COIN:
                    raise params_error("coin")
                symbols = self.symbols
            else:
                raise params_error("symbol", "is required: symbol or coin")
            symbols = tuple(symbols)
            if all(acct.hedge(s) is hedge for s in symbols):
                raise PaperError(E.MODE_NOT_MODIFIED, "Position mode is not modified")
            targets = set(symbols)
            if any(p.size > 0 for p in acct.positions.values() if p.symbol in targets):
                raise PaperError(
                    E.POSITION_EXISTS, "There is an existing position, position mode cannot be switched"
                )
            if any(len(acct.open_by_symbol.get(s, ())) for s in targets):
                raise PaperError(E.ORDERS_EXIST, "There are open orders, position mode cannot be switched")
            if symbol:
                acct.hedge_by_symbol[symbols[0]] = hedge
            else:
                acct.hedge_default = hedge
                acct.hedge_by_symbol.clear()

    def set_leverage(self, acct: PaperAccount, symbol: str, buy: Decimal, sell: Decimal) -> None:
        with self.changes():
            spec = self.spec(symbol)
            for field, value in (("buyLeverage", buy), ("sellLeverage", sell)):
                if not (1 <= value <= spec.max_leverage):
                    raise params_error(field, f"must be between 1 and {spec.max_leverage}")
            if not acct.hedge(spec.symbol) and buy != sell:
                raise params_error("buyLeverage", "must equal sellLeverage in one-way mode")
            current = acct.leverage.get(spec.symbol, (self.default_leverage, self.default_leverage))
            if current == (buy, sell):
                raise PaperError(E.LEVERAGE_NOT_MODIFIED, "leverage not modified")
            acct.leverage[spec.symbol] = (buy, sell)
            for (sym, idx), pos in acct.positions.items():
                if sym == spec.symbol:
                    pos.leverage = sell if idx == 2 else buy
                    refresh_margin(pos)
                    pos.view = None
                    self._note("position", pos)
                    self._note("wallet", acct)
            for order in acct.open_by_symbol.get(spec.symbol, SeqIndex()).values():
                if order.reserved_im:
                    self._reserve(order)

    # -------------------------------------------------------------------------------- internals

    @staticmethod
    def _check_idx(hedge: bool, idx: int) -> int:
        if (hedge and idx not in (1, 2)) or (not hedge and idx != 0):
            raise PaperError(E.PARAMS, "position idx not match position mode")
        return idx

    @staticmethod
    def _check_price(spec: InstrumentSpec, price: Decimal, field: str) -> None:
        if price <= 0:
            raise params_error(field)
        if not on_step(price, spec.tick_size):
            raise PaperError(
                E.PARAMS, f"params error: {field} {price} is not a multiple of tickSize {spec.tick_size}"
            )
        if price > spec.top_price:
            raise PaperError(110003, f"Order price is out of permissible range: {field}")

    @staticmethod
    def _check_qty(spec: InstrumentSpec, qty: Decimal, market: bool) -> None:
        if qty <= 0:
            raise params_error("qty")
        if qty < spec.min_qty:
            raise PaperError(E.PARAMS, "The number of contracts exceeds minimum limit allowed")
        top = spec.max_mkt_qty if market else spec.max_qty
        if qty > top:
            raise PaperError(
                E.PARAMS,
                "The number of contracts exceeds maximum limit allowed: too large, "
                f"order_qty:{E.e8(qty)} > max_qty:{E.e8(top)}",
            )
        if not on_step(qty, spec.qty_step):
            raise PaperError(E.PARAMS, f"Qty invalid: {qty} is not a multiple of qtyStep {spec.qty_step}")

    @staticmethod
    def _check_direction(m: SymbolMarket, direction: int, trigger: Decimal, by: str) -> None:
        current = m.mark if by in (MARK_PRICE, INDEX_PRICE) else m.last
        if direction == 1 and trigger <= current:
            raise E.expect_rising(trigger, current, by)
        if direction == 2 and trigger >= current:
            raise E.expect_falling(trigger, current, by)

    def _check_margin(
        self, acct: PaperAccount, symbol: str, idx: int, side: Side, qty: Decimal, price: Decimal
    ) -> None:
        pos = acct.positions.get((symbol, idx))
        opening = qty
        if pos is not None and pos.side is not None and pos.side is not side:
            opening = max(ZERO, qty - pos.size)  # the part that reduces needs no margin
        need = round8(opening * price / self.leverage_of(acct, symbol, idx))
        if need > self.available(acct):
            raise PaperError(E.INSUFFICIENT_BALANCE, "ab not enough for new order")

    def _register(self, order: PaperOrder) -> None:
        acct, symbol = order.account, order.symbol
        acct.orders_by_id[order.order_id] = order
        if order.link_id:
            acct.orders_by_link[order.link_id] = order
        acct.history.add(order.seq, order)
        _index(acct.history_by_symbol, symbol).add(order.seq, order)
        acct.open_orders.add(order.seq, order)
        _index(acct.open_by_symbol, symbol).add(order.seq, order)
        if order.reducing:
            self.position(acct, order.spec, order.position_idx).reducing_orders[order.seq] = order
        journal = self._journal
        if journal is not None:
            journal.append(("order", order))
            pos = acct.positions.get((symbol, order.position_idx))
            if pos is not None:
                journal.append(("position", pos))

    def _activate(self, order: PaperOrder, now: int, fills: list[PaperExecution]) -> None:
        """A new (or just triggered) order meets the market."""
        if order.order_type == MARKET:
            self._execute(order, self.markets[order.symbol].last, False, now, fills)
            if order.is_open:
                self._cancel(order, now, CANCEL_BY_REDUCE_ONLY if order.reducing else "UNKNOWN")
            return
        self._rest_or_take(order, now, fills)

    def _rest_or_take(self, order: PaperOrder, now: int, fills: list[PaperExecution]) -> None:
        last = self.markets[order.symbol].last
        marketable = last <= order.price if order.side is Side.BUY else last >= order.price
        if marketable:
            if order.tif == "PostOnly":
                self._cancel(order, now, "UNKNOWN", "EC_PostOnlyWillTakeLiquidity")
                return
            if order.tif == "FOK" and self._fillable(order) < order.leaves:
                self._cancel(order, now, "UNKNOWN", "EC_CancelForNoFullFill")
                return
            self._execute(order, last, False, now, fills)
            if order.is_open:
                self._cancel(order, now, CANCEL_BY_REDUCE_ONLY if order.reducing else "UNKNOWN")
            return
        if order.tif == "IOC":
            self._cancel(order, now, "UNKNOWN", "EC_NoImmediateQtyToFill")
            return
        if order.tif == "FOK":
            self._cancel(order, now, "UNKNOWN", "EC_CancelForNoFullFill")
            return
        self._book(order.symbol).add_limit(order)
        self._reserve(order)

    def _fillable(self, order: PaperOrder) -> Decimal:
        if not order.reducing:
            return order.leaves
        pos = order.account.positions.get((order.symbol, order.position_idx))
        if pos is None or pos.side is None or pos.side is order.side:
            return ZERO
        return pos.size if order.close_all else min(order.leaves, pos.size)

    def _reserve(self, order: PaperOrder) -> None:
        """Initial margin held by a resting opening limit order (released as it fills or closes)."""
        im = ZERO
        if order.is_open and not order.reducing and order.order_type == LIMIT and order.ladder is not None:
            lev = self.leverage_of(order.account, order.symbol, order.position_idx)
            im = round8(order.leaves * order.price / lev)
        if im != order.reserved_im:
            order.account.order_im += im - order.reserved_im
            order.reserved_im = im
            self._note("wallet", order.account)

    def _trigger(self, order: PaperOrder, now: int, fills: list[PaperExecution]) -> None:
        acct = order.account
        if order.stop_order_type == STOP:
            acct.conditional_count[order.symbol] -= 1
        order.status = St.TRIGGERED
        order.updated_ms = now
        order.view = None
        if self._journal is not None:  # a passing state: its row is taken now, not at the end
            self._journal.append(("order_state", (order.account, dict(order_view(order)))))
        if not order.reducing:
            m = self.markets[order.symbol]
            price = order.price if order.order_type == LIMIT else m.last
            try:
                self._check_margin(acct, order.symbol, order.position_idx, order.side, order.leaves, price)
            except PaperError:
                order.reject_reason = "EC_InsufficientMargin"
                self._close(order, St.REJECTED, now)
                return
        order.status = St.NEW
        self._activate(order, now, fills)

    def _execute(
        self,
        order: PaperOrder,
        price: Decimal,
        maker: bool,
        now: int,
        fills: list[PaperExecution],
        cap: Decimal | None = None,
    ) -> Decimal:
        """Fill what the order may fill at `price` (at most `cap`); returns the executed qty
        (0: the position allows nothing)."""
        acct = order.account
        pos = self.position(acct, order.spec, order.position_idx)
        fillable = self._fillable(order)
        if fillable <= 0:
            return ZERO
        if order.close_all:
            order.qty = order.cum_qty + fillable
        qty = fillable if cap is None else min(fillable, cap)
        value = qty * price
        rate = self.maker_fee if maker else self.taker_fee
        fee = round8(value * rate)
        old_side = pos.side
        closed, pnl = apply_fill(pos, order.side, qty, price, fee, now)
        if order.stop_loss and pos.size > 0 and pos.side is order.side:
            self._attach_stop(pos, order, now)
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.updated_ms = now
        order.view = None
        m = self.markets[order.symbol]
        m.volume += qty
        m.turnover += value
        m.view = None
        self._exec_seq += 1
        execution = PaperExecution(
            seq=self._exec_seq,
            exec_id=str(uuid.UUID(int=(self._exec_salt << 64) | self._exec_seq)),
            account=acct,
            spec=order.spec,
            order_id=order.order_id,
            link_id=order.link_id,
            side=order.side,
            order_type=order.order_type,
            stop_order_type=order.stop_order_type,
            create_type=order.create_type,
            order_price=order.price,
            order_qty=order.qty,
            leaves_qty=order.qty - order.cum_qty,
            price=price,
            qty=qty,
            value=value,
            fee=fee,
            fee_rate=rate,
            is_maker=maker,
            closed_size=closed,
            mark_price=m.mark,
            time_ms=now,
            pnl=pnl,
        )
        acct.executions.add(execution.seq, execution)
        fills.append(execution)
        journal = self._journal
        if journal is not None:
            journal.append(("execution", execution))
            journal.append(("order", order))
            journal.append(("position", pos))
            journal.append(("wallet", acct))
        if order.cum_qty >= order.qty:
            self._close(order, St.FILLED, now)
        else:
            order.status = St.PARTIALLY_FILLED
            self._reserve(order)
        if pos.size > 0:
            acct.open_positions.add(pos.key)
        else:
            acct.open_positions.discard(pos.key)
        if pos.size == 0 or pos.side is not old_side:
            # flat: every reducing order of it goes; flipped: those that would now increase it
            for other in list(pos.reducing_orders.values()):
                if pos.size == 0 or other.side is pos.side:
                    self._cancel(
                        other, now, CANCEL_BY_TPSL_CLEAR if other.is_position_tpsl else CANCEL_BY_REDUCE_ONLY
                    )
        return qty

    def _cancel(
        self, order: PaperOrder, now: int, cancel_type: str, reject_reason: str | None = None
    ) -> None:
        if order.status is St.UNTRIGGERED:
            if order.stop_order_type == STOP:
                order.account.conditional_count[order.symbol] -= 1
            status = St.DEACTIVATED
        else:
            status = St.CANCELLED
        order.cancel_type = cancel_type
        if reject_reason:
            order.reject_reason = reject_reason
        self._close(order, status, now)

    def _close(self, order: PaperOrder, status: St, now: int) -> None:
        acct, symbol = order.account, order.symbol
        order.status = status
        order.updated_ms = now
        order.view = None
        self._note("order", order)
        SymbolBook.remove(order)
        if order.reserved_im:
            acct.order_im -= order.reserved_im
            order.reserved_im = ZERO
            self._note("wallet", acct)
        acct.open_orders.remove(order.seq)
        acct.open_by_symbol[symbol].remove(order.seq)
        pos = acct.positions.get((symbol, order.position_idx))
        if pos is not None:
            pos.reducing_orders.pop(order.seq, None)
            if pos.tp_order is order:
                pos.tp_order, pos.take_profit = None, ZERO
                pos.view = None
                self._note("position", pos)
            elif pos.sl_order is order:
                pos.sl_order, pos.stop_loss = None, ZERO
                pos.view = None
                self._note("position", pos)
        acct.recent_closed.append(order)


def matches_filter(order: PaperOrder, order_filter: str | None) -> bool:
    """orderFilter of realtime / cancel-all: Order, StopOrder, tpslOrder, or None / OpenOrder (all)."""
    if not order_filter or order_filter == "OpenOrder":
        return True
    if order_filter == "Order":
        return order.status is not St.UNTRIGGERED
    if order_filter == "StopOrder":
        return order.status is St.UNTRIGGERED
    if order_filter == "tpslOrder":
        return order.is_position_tpsl
    return False


def _idx_side(idx: int) -> Side:
    return Side.SELL if idx == 2 else Side.BUY


def _index(table: dict[str, SeqIndex[PaperOrder]], symbol: str) -> SeqIndex[PaperOrder]:
    index = table.get(symbol)
    if index is None:
        index = table[symbol] = SeqIndex()
    return index
