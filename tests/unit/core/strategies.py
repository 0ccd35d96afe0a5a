"""Hypothesis strategies for the core domain, reusable by every core property test.

* `instruments()` – exchange filters on realistic grids.
* `plan_and_instrument()` / `plans()` – plans that pass core.plan.validate_plan against their
  instrument (limit ladders, market entries and adoptions; long and short; hedge or one-way).
* `monitors()`, `owned_orders()`, `events()`, `intents()`, `intent_results()`, `positions()`,
  `exchange_orders()`, `tickers()`, `snapshots()` – arbitrary but well-typed records (for codec round
  trips and state-machine inputs); decimals carry varied exponents (``0.010``, ``6E+4``, ``-0``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from core.ids import link_id
from core.models import (
    AmendOrder,
    BreakevenState,
    CancelOrder,
    CloseReason,
    EntryLevel,
    ErrorKind,
    Event,
    EventKind,
    ExchangeOrder,
    ExchangeOrderStatus,
    Instrument,
    IntentResult,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    Phase,
    PlaceOrder,
    Plan,
    Position,
    Side,
    Snapshot,
    TakeProfitLevel,
    Ticker,
    Tier,
)
from core.presets import PRESETS

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "1000PEPEUSDT")

# ---------------------------------------------------------------------------------------- scalars

times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
ids = st.text(alphabet="0123456789abcdefghjkmnpqrstvwxyz", min_size=10, max_size=10)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
sides = st.sampled_from(Side)


@st.composite
def decimals(draw: st.DrawFn, *, min_exp: int = -10, max_exp: int = 4, signed: bool = False) -> Decimal:
    """Finite decimals with any exponent, trailing zeros kept: 0.010, 6E+4, 123.4500, -0."""
    lo = -(10**12) if signed else 0
    coefficient = draw(st.integers(lo, 10**12))
    exponent = draw(st.integers(min_exp, max_exp))
    value = Decimal(coefficient).scaleb(exponent)
    if signed and coefficient == 0 and draw(st.booleans()):
        value = value.copy_negate()  # -0 must survive a round trip too
    return value


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# ------------------------------------------------------------------------------------ instruments


@st.composite
def instruments(draw: st.DrawFn, symbol: str | None = None) -> Instrument:
    tick = Decimal(draw(st.sampled_from(["0.0001", "0.001", "0.01", "0.10", "0.5", "1"])))
    step = Decimal(draw(st.sampled_from(["0.001", "0.01", "0.1", "1", "10"])))
    min_qty = step * draw(st.integers(1, 5))
    max_qty = min_qty * draw(st.integers(10**6, 10**8))
    return Instrument(
        symbol=symbol or draw(st.sampled_from(SYMBOLS)),
        tick_size=tick,
        qty_step=step,
        min_qty=min_qty,
        max_qty=max_qty,
        min_notional=Decimal(draw(st.sampled_from(["0", "5"]))),
        max_mkt_qty=draw(st.none() | st.just(max_qty / 2)),
    )


# ------------------------------------------------------------------------------------------ plans


def _ceil_div(a: Decimal, b: Decimal) -> int:
    q = a / b
    return int(q) + (0 if q == int(q) else 1)


@st.composite
def _fractions(draw: st.DrawFn, n: int) -> tuple[Decimal, ...]:
    """n positive fractions summing to exactly 1 (in hundredths or thousandths)."""
    units = draw(st.sampled_from([100, 1000]))
    cuts = sorted(draw(st.sets(st.integers(1, units - 1), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, units]
    scale = -2 if units == 100 else -3
    return tuple(Decimal(bounds[i + 1] - bounds[i]).scaleb(scale) for i in range(n))


@st.composite
def plan_and_instrument(
    draw: st.DrawFn,
    *,
    instrument: Instrument | None = None,
    side: Side | None = None,
    kind: str | None = None,
    max_entries: int = 5,
    max_take_profits: int = 6,
) -> tuple[Plan, Instrument]:
    """A plan valid for its instrument (validate_plan passes without a mark price).

    kind: "limit" (1..max_entries limit entries), "market" (one market entry) or "adopt" (none)."""
    inst = instrument or draw(instruments())
    side = side or draw(sides)
    kind = kind or draw(st.sampled_from(["limit", "limit", "market", "adopt"]))
    tick = inst.tick_size
    sign = side.sign
    base = draw(st.integers(5_000, 200_000))  # in ticks: the first (nearest) entry or the market

    entry_ticks: list[int] = []
    if kind == "limit":
        n = draw(st.integers(1, max_entries))
        entry_ticks = [base]
        for _ in range(n - 1):
            entry_ticks.append(entry_ticks[-1] - sign * draw(st.integers(1, 50)))
    prices = [tick * t for t in entry_ticks]

    entries: list[EntryLevel] = []
    if kind == "limit":
        for p in prices:
            units_min = _ceil_div(inst.min_qty, inst.qty_step)
            if inst.min_notional > 0:
                units_min = max(units_min, _ceil_div(inst.min_notional, p * inst.qty_step))
            units = draw(st.integers(units_min, units_min + 50))
            entries.append(EntryLevel(qty=inst.qty_step * units, price=p))
    elif kind == "market":
        units_min = _ceil_div(inst.min_qty, inst.qty_step)
        entries.append(EntryLevel(qty=inst.qty_step * draw(st.integers(units_min, units_min + 50))))

    if entry_ticks:
        nearest = max(entry_ticks) if side is Side.BUY else min(entry_ticks)
        deepest = min(entry_ticks) if side is Side.BUY else max(entry_ticks)
    else:  # market entry or adoption: `base` stands for the market price
        nearest = deepest = base

    n_tp = draw(st.integers(1, max_take_profits))
    tp_ticks = [nearest + sign * draw(st.integers(1, 500))]
    for _ in range(n_tp - 1):
        tp_ticks.append(tp_ticks[-1] + sign * draw(st.integers(1, 500)))
    fractions = draw(_fractions(n_tp))
    take_profits = tuple(
        TakeProfitLevel(price=tick * t, fraction=f) for t, f in zip(tp_ticks, fractions, strict=True)
    )
    sl_ticks = deepest - sign * draw(st.integers(1, 1_000))
    position_idx = draw(st.sampled_from([0, 1 if side is Side.BUY else 2]))
    plan = Plan(
        symbol=inst.symbol,
        side=side,
        entries=tuple(entries),
        take_profits=take_profits,
        stop_loss=tick * sl_ticks,
        breakeven_after=draw(st.none() | st.integers(1, n_tp)),
        fee_buffer=Decimal(draw(st.sampled_from(["0", "0.0008", "0.001", "0.0025"]))),
        adopt=kind == "adopt",
        position_idx=position_idx,
        mirror=draw(st.booleans()),
        entry_time_limit_s=draw(st.none() | st.floats(1, 86_400)) if kind == "limit" else None,
        preset=draw(st.none() | st.sampled_from(sorted(PRESETS))),
    )
    return plan, inst


def plans(**kwargs: Any) -> st.SearchStrategy[Plan]:
    return plan_and_instrument(**kwargs).map(lambda pi: pi[0])


# ---------------------------------------------------------------------------------------- monitor


@st.composite
def owned_orders(draw: st.DrawFn, monitor_id: str | None = None) -> OwnedOrder:
    mid = monitor_id or draw(ids)
    role = draw(st.sampled_from(OrderRole))
    level = 0 if role is OrderRole.SL else draw(st.integers(1, 10))
    generation = draw(st.integers(1, 50))
    return OwnedOrder(
        role=role,
        level=level,
        generation=generation,
        link_id=link_id(mid, role, level, generation),
        side=draw(sides),
        qty=draw(decimals()),
        price=draw(optional(decimals())),
        trigger_price=draw(optional(decimals())),
        filled=draw(decimals()),
        status=draw(st.sampled_from(OrderStatus)),
        changed_at=draw(times),
    )


@st.composite
def monitors(draw: st.DrawFn, plan: Plan | None = None) -> Monitor:
    mid = draw(ids)
    return Monitor(
        id=mid,
        account=draw(names),
        plan=plan or draw(plans()),
        phase=draw(st.sampled_from(Phase)),
        orders=tuple(draw(st.lists(owned_orders(mid), max_size=8))),
        position_size=draw(decimals()),
        closed_ahead=draw(decimals()),
        avg_entry=draw(optional(decimals())),
        built_qty=draw(decimals()),
        stop_price=draw(decimals()),
        breakeven=draw(st.sampled_from(BreakevenState)),
        breakeven_price=draw(optional(decimals())),
        tp_hits=tuple(draw(st.lists(st.integers(1, 10), max_size=10))),
        entries_closed=draw(st.booleans()),
        closed_reason=draw(optional(st.sampled_from(CloseReason))),
        created_at=draw(times),
        updated_at=draw(times),
        last_activity_at=draw(times),
        tier=draw(st.sampled_from(Tier)),
        version=draw(st.integers(0, 10**9)),
        mirror_of=draw(optional(ids)),
        ratio=draw(decimals(min_exp=-6, max_exp=0)),
        unexplained_at=draw(optional(times)),
        repairs=draw(st.integers(0, 100)),
        halted=draw(st.booleans()),
        last_price=draw(optional(decimals())),
    )


# ----------------------------------------------------------------------------------------- events

payload_values = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)


@st.composite
def events(draw: st.DrawFn) -> Event:
    return Event(
        id=draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        monitor_id=draw(ids),
        account=draw(names),
        kind=draw(st.sampled_from(EventKind)),
        at=draw(times),
        monitor_version=draw(st.integers(0, 10**9)),
        payload=draw(st.dictionaries(st.text(min_size=1, max_size=10), payload_values, max_size=6)),
    )


# ---------------------------------------------------------------------------------------- intents


@st.composite
def place_orders(draw: st.DrawFn) -> PlaceOrder:
    return PlaceOrder(
        account=draw(names),
        monitor_id=draw(ids),
        link_id=draw(names),
        symbol=draw(st.sampled_from(SYMBOLS)),
        side=draw(sides),
        qty=draw(decimals()),
        order_type=draw(st.sampled_from(["Limit", "Market"])),
        price=draw(optional(decimals())),
        trigger_price=draw(optional(decimals())),
        trigger_direction=draw(st.sampled_from([0, 1, 2])),
        trigger_by=draw(st.sampled_from(["LastPrice", "MarkPrice", "IndexPrice"])),
        reduce_only=draw(st.booleans()),
        close_on_trigger=draw(st.booleans()),
        position_idx=draw(st.sampled_from([0, 1, 2])),
        time_in_force=draw(st.sampled_from(["GTC", "IOC", "PostOnly"])),
    )


@st.composite
def amend_orders(draw: st.DrawFn) -> AmendOrder:
    return AmendOrder(
        account=draw(names),
        monitor_id=draw(ids),
        link_id=draw(names),
        symbol=draw(st.sampled_from(SYMBOLS)),
        qty=draw(optional(decimals())),
        price=draw(optional(decimals())),
        trigger_price=draw(optional(decimals())),
        conditional=draw(st.booleans()),
    )


cancel_orders = st.builds(
    CancelOrder, account=names, monitor_id=ids, link_id=names, symbol=st.sampled_from(SYMBOLS)
)


def intents() -> st.SearchStrategy[PlaceOrder | AmendOrder | CancelOrder]:
    return st.one_of(place_orders(), amend_orders(), cancel_orders)


intent_results = st.builds(
    IntentResult,
    link_id=names,
    ok=st.booleans(),
    error=optional(st.sampled_from(ErrorKind)),
    message=st.text(max_size=40),
    order_id=st.text(max_size=36),
)


# --------------------------------------------------------------------------------------- snapshot


@st.composite
def positions(draw: st.DrawFn, symbol: str | None = None, position_idx: int | None = None) -> Position:
    return Position(
        symbol=symbol or draw(st.sampled_from(SYMBOLS)),
        position_idx=draw(st.sampled_from([0, 1, 2])) if position_idx is None else position_idx,
        side=draw(optional(sides)),
        size=draw(decimals()),
        avg_price=draw(decimals()),
        mark_price=draw(optional(decimals())),
        unrealised_pnl=draw(decimals(signed=True)),
        realised_pnl=draw(decimals(signed=True)),
        leverage=draw(optional(decimals(max_exp=0))),
    )


@st.composite
def exchange_orders(draw: st.DrawFn, link: str | None = None) -> ExchangeOrder:
    return ExchangeOrder(
        order_id=draw(st.uuids().map(str)),
        link_id=link if link is not None else draw(names),
        symbol=draw(st.sampled_from(SYMBOLS)),
        side=draw(sides),
        order_type=draw(st.sampled_from(["Limit", "Market"])),
        qty=draw(decimals()),
        filled=draw(decimals()),
        status=draw(st.sampled_from(ExchangeOrderStatus)),
        price=draw(optional(decimals())),
        trigger_price=draw(optional(decimals())),
        reduce_only=draw(st.booleans()),
        position_idx=draw(st.sampled_from([0, 1, 2])),
        avg_price=draw(optional(decimals())),
        created_ms=draw(st.integers(0, 2**42)),
        updated_ms=draw(st.integers(0, 2**42)),
    )


@st.composite
def tickers(draw: st.DrawFn, symbol: str | None = None) -> Ticker:
    return Ticker(
        symbol=symbol or draw(st.sampled_from(SYMBOLS)),
        last_price=draw(decimals()),
        mark_price=draw(decimals()),
    )


def _orders_by_link(strategy_size: int) -> st.SearchStrategy[dict[str, ExchangeOrder]]:
    return st.lists(names, max_size=strategy_size, unique=True).flatmap(
        lambda links: st.tuples(*(exchange_orders(link=k) for k in links)).map(
            lambda orders: {o.link_id: o for o in orders}
        )
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    keys = draw(
        st.lists(st.tuples(st.sampled_from(SYMBOLS), st.sampled_from([0, 1, 2])), max_size=4, unique=True)
    )
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), max_size=3, unique=True))
    open_orders = draw(_orders_by_link(5))
    closed_orders = draw(_orders_by_link(3))
    return Snapshot(
        account=draw(names),
        taken_at=draw(times),
        positions={(s, i): draw(positions(s, i)) for s, i in keys},
        open_orders=open_orders,
        instruments={s: draw(instruments(s)) for s in symbols},
        tickers={s: draw(tickers(s)) for s in symbols},
        closed_orders=closed_orders,
        looked_up=frozenset(draw(st.lists(names, max_size=6))),
    )
