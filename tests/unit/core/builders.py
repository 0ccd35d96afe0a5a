"""Hand-built domain values for core unit tests (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from core.models import (
    EntryLevel,
    ExchangeOrder,
    ExchangeOrderStatus,
    Instrument,
    Monitor,
    OwnedOrder,
    Plan,
    Position,
    Side,
    Snapshot,
    TakeProfitLevel,
    Ticker,
)

D = Decimal
BTC = Instrument("BTCUSDT", tick_size=D("0.10"), qty_step=D("0.001"), min_qty=D("0.001"), max_qty=D("1190"))
ETH = Instrument("ETHUSDT", tick_size=D("0.01"), qty_step=D("0.01"), min_qty=D("0.01"), max_qty=D("7240"))
INSTRUMENTS = {i.symbol: i for i in (BTC, ETH)}


def conservative_long(**kw) -> Plan:
    base = dict(
        symbol="BTCUSDT",
        side=Side.BUY,
        entries=(
            EntryLevel(D("0.010"), D("60000")),
            EntryLevel(D("0.010"), D("59500")),
            EntryLevel(D("0.010"), D("59000")),
        ),
        take_profits=(
            TakeProfitLevel(D("62000"), D("0.85")),
            TakeProfitLevel(D("63000"), D("0.05")),
            TakeProfitLevel(D("64000"), D("0.05")),
            TakeProfitLevel(D("65000"), D("0.05")),
        ),
        stop_loss=D("58000"),
        preset="conservative",
    )
    base.update(kw)
    return Plan(**base)


def conservative_short(**kw) -> Plan:
    base = dict(
        symbol="BTCUSDT",
        side=Side.SELL,
        entries=(
            EntryLevel(D("0.010"), D("60000")),
            EntryLevel(D("0.010"), D("60500")),
            EntryLevel(D("0.010"), D("61000")),
        ),
        take_profits=(
            TakeProfitLevel(D("58000"), D("0.85")),
            TakeProfitLevel(D("57000"), D("0.05")),
            TakeProfitLevel(D("56000"), D("0.05")),
            TakeProfitLevel(D("55000"), D("0.05")),
        ),
        stop_loss=D("62000"),
        preset="conservative",
    )
    base.update(kw)
    return Plan(**base)


def fast_long(qty: str = "0.030", **kw) -> Plan:
    base = dict(
        symbol="BTCUSDT",
        side=Side.BUY,
        entries=(EntryLevel(D(qty)),),
        take_profits=(TakeProfitLevel(D("62000"), D("1")),),
        stop_loss=D("58000"),
        preset="fast",
    )
    base.update(kw)
    return Plan(**base)


def ex_order(
    o: OwnedOrder,
    symbol: str = "BTCUSDT",
    *,
    filled: Decimal | None = None,
    status: ExchangeOrderStatus | None = None,
    position_idx: int = 0,
    **kw,
) -> ExchangeOrder:
    """The exchange's view of one of our orders."""
    f = o.filled if filled is None else filled
    if status is None:
        status = (
            ExchangeOrderStatus.UNTRIGGERED
            if o.trigger_price
            else (ExchangeOrderStatus.PARTIALLY_FILLED if f > 0 else ExchangeOrderStatus.NEW)
        )
    fields = dict(
        order_id="x" + o.link_id,
        link_id=o.link_id,
        symbol=symbol,
        side=o.side,
        order_type="Limit" if o.price else "Market",
        qty=o.qty,
        filled=f,
        status=status,
        price=o.price,
        trigger_price=o.trigger_price,
        reduce_only=o.role.value != "E",
        position_idx=position_idx,
    )
    fields.update(kw)
    return ExchangeOrder(**fields)


def snapshot(
    *,
    taken_at: float,
    account: str = "main",
    positions: Iterable[Position] = (),
    open_orders: Iterable[ExchangeOrder] = (),
    closed: Iterable[ExchangeOrder] = (),
    looked_up: Iterable[str] = (),
    price: str | None = None,
    symbol: str = "BTCUSDT",
) -> Snapshot:
    tickers = {}
    if price is not None:
        tickers[symbol] = Ticker(symbol, D(price), D(price))
    closed = list(closed)
    return Snapshot(
        account=account,
        taken_at=taken_at,
        positions={(p.symbol, p.position_idx): p for p in positions},
        open_orders={o.link_id: o for o in open_orders},
        instruments=INSTRUMENTS,
        tickers=tickers,
        closed_orders={o.link_id: o for o in closed},
        looked_up=frozenset(looked_up) | {o.link_id for o in closed},
    )


def long_position(
    size: str, avg: str = "60000", symbol: str = "BTCUSDT", idx: int = 0, side: Side = Side.BUY
) -> Position:
    return Position(symbol, idx, side, D(size), D(avg), mark_price=None)


def open_view(m: Monitor, **filled_by_link: Decimal) -> list[ExchangeOrder]:
    """Every live order of the monitor as the exchange would list it (no fills unless given)."""
    return [
        ex_order(o, m.plan.symbol, filled=filled_by_link.get(o.link_id), position_idx=m.plan.position_idx)
        for o in m.orders
        if o.status.live and o.status.value != "cancelling"
    ]
