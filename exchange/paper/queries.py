"""Read side of the v5 API: filtered, newest-first pages with keyset cursors.

Cursors are URL-safe hex strings: the sequence number of the last row served (orders,
executions) or the hex of "symbol:idx" (positions). The next page starts strictly after it, so
rows added or removed between two pages neither shift nor repeat the rest. Callers hold the
engine lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.models import ExchangeOrderStatus as St
from exchange.paper.decimals import ZERO
from exchange.paper.engine import PaperEngine, matches_filter
from exchange.paper.errors import params_error
from exchange.paper.indexes import take
from exchange.paper.instruments import SETTLE_COIN
from exchange.paper.ledger import unrealised_pnl
from exchange.paper.records import PaperAccount, PaperExecution, PaperOrder, PaperPosition
from exchange.paper.views import (
    execution_json,
    instrument_json,
    maintenance_margin,
    order_json,
    position_json,
    ticker_json,
    wallet_view,
)

DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS
_SHORT_LIVED = frozenset({St.CANCELLED, St.REJECTED, St.DEACTIVATED})

Page = tuple[list[Any], str]  # rows (serialised JSON fragments) and the next cursor


def seq_cursor(seq: int) -> str:
    return format(seq, "x")


def read_seq_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        n = int(cursor, 16)
    except ValueError:
        raise params_error("cursor") from None
    if n <= 0:
        raise params_error("cursor")
    return n


def _position_cursor(key: tuple[str, int]) -> str:
    return f"{key[0]}:{key[1]}".encode().hex()


def _read_position_cursor(cursor: str | None) -> tuple[str, int] | None:
    if not cursor:
        return None
    try:
        symbol, _, idx = bytes.fromhex(cursor).decode().rpartition(":")
        return symbol, int(idx)
    except ValueError:
        raise params_error("cursor") from None


def time_window(start: int | None, end: int | None, now_ms: int) -> tuple[int, int]:
    """Bybit's ≤ 7-day window: default the last 7 days; one bound given → 7 days from it."""
    if start is None and end is None:
        return now_ms - WEEK_MS, now_ms + DAY_MS
    if start is None:
        assert end is not None
        return end - WEEK_MS, end
    if end is None:
        return start, start + WEEK_MS
    if end < start:
        raise params_error("endTime", "must not be before startTime")
    if end - start > WEEK_MS:
        raise params_error("endTime", "the window must be at most 7 days")
    return start, end


# ------------------------------------------------------------------------------------- market


def tickers(engine: PaperEngine, symbol: str | None) -> list[Any]:
    now = engine.now_ms()
    if symbol:
        return [ticker_json(engine.markets[engine.spec(symbol).symbol], now)]
    return [ticker_json(m, now) for m in engine.markets.values()]


def instruments(
    engine: PaperEngine,
    *,
    symbol: str | None,
    base_coin: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    if symbol:
        spec = engine.specs.get(symbol)
        return ([instrument_json(spec)] if spec is not None and status in (None, "Trading") else []), ""
    if status not in (None, "Trading"):
        return [], ""
    start = read_seq_cursor(cursor) or 0  # instruments: the cursor is the listing offset
    specs = [s for s in engine.specs.values() if not base_coin or s.base_coin == base_coin]
    page = specs[start : start + limit]
    nxt = seq_cursor(start + limit) if start + limit < len(specs) else ""
    return [instrument_json(s) for s in page], nxt


# ------------------------------------------------------------------------------------- orders


def open_orders(
    engine: PaperEngine,
    acct: PaperAccount,
    *,
    symbol: str | None,
    base_coin: str | None,
    order_id: str | None,
    link_id: str | None,
    open_only: int,
    order_filter: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """/v5/order/realtime. By orderId/orderLinkId it finds the order even after it closed."""
    if symbol:
        engine.spec(symbol)

    def keep(o: PaperOrder) -> bool:
        return (
            (not symbol or o.symbol == symbol)
            and (not base_coin or o.spec.base_coin == base_coin)
            and matches_filter(o, order_filter)
        )

    if order_id or link_id:
        order = engine.find_order(acct, order_id or "", link_id or "")
        return ([order_json(order)] if order is not None and keep(order) else []), ""
    before = read_seq_cursor(cursor)
    if open_only == 0:
        index = acct.open_by_symbol.get(symbol) if symbol else acct.open_orders
        if index is None:
            return [], ""
        if base_coin or order_filter:
            rows, more = take(index.newest_first(before), limit, keep)
        else:  # the index is exactly the answer: page it by slicing
            rows, more = index.page(before, limit)
    else:
        closed: Iterator[PaperOrder] = reversed(acct.recent_closed)
        if before is not None:
            closed = (o for o in closed if o.seq < before)
        recent = sorted((o for o in closed if not o.is_open), key=lambda o: -o.seq)
        rows, more = take(iter(recent), limit, keep)
    return [order_json(o) for o in rows], (seq_cursor(rows[-1].seq) if more else "")


def order_history(
    engine: PaperEngine,
    acct: PaperAccount,
    *,
    symbol: str | None,
    base_coin: str | None,
    order_id: str | None,
    link_id: str | None,
    status: str | None,
    order_filter: str | None,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """/v5/order/history: open and closed orders, newest first. Cancelled, Rejected and
    Deactivated orders are shown for 24 h after they closed (as on Bybit)."""
    now = engine.now_ms()
    if symbol:
        engine.spec(symbol)
    start, end = time_window(start_ms, end_ms, now)
    oldest_short_lived = now - DAY_MS

    def keep(o: PaperOrder) -> bool:
        return (
            start <= o.created_ms <= end
            and (not base_coin or o.spec.base_coin == base_coin)
            and (not status or o.status.value == status)
            and matches_filter(o, order_filter)
            and not (o.status in _SHORT_LIVED and o.updated_ms < oldest_short_lived)
        )

    if order_id or link_id:
        order = engine.find_order(acct, order_id or "", link_id or "")
        ok = order is not None and (not symbol or order.symbol == symbol) and keep(order)
        return ([order_json(order)] if ok and order is not None else []), ""
    index = acct.history_by_symbol.get(symbol) if symbol else acct.history
    if index is None:
        return [], ""
    rows, more = take(index.newest_first(read_seq_cursor(cursor)), limit, keep)
    return [order_json(o) for o in rows], (seq_cursor(rows[-1].seq) if more else "")


# ---------------------------------------------------------------------------------- positions


def positions(
    engine: PaperEngine,
    acct: PaperAccount,
    *,
    symbol: str | None,
    settle_coin: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """/v5/position/list: by symbol every row of it (flat ones too: 1 one-way, 2 hedge); by
    settleCoin only positions with size > 0, ordered by (symbol, positionIdx)."""
    if symbol:
        spec = engine.spec(symbol)
        mark = engine.markets[spec.symbol].mark
        rows = []
        for idx in (1, 2) if acct.hedge(spec.symbol) else (0,):
            pos = acct.positions.get((spec.symbol, idx))
            if pos is None:
                now = engine.now_ms()
                pos = PaperPosition(
                    account=acct,
                    spec=spec,
                    idx=idx,
                    leverage=engine.leverage_of(acct, spec.symbol, idx),
                    created_ms=now,
                    updated_ms=now,
                )
            rows.append(position_json(pos, mark))
        return rows, ""
    if not settle_coin:
        raise params_error("settleCoin", "or symbol is required")
    if settle_coin != SETTLE_COIN:
        return [], ""
    markets = engine.markets
    keys, more = acct.open_positions.page(_read_position_cursor(cursor), limit)
    positions_of = acct.positions
    out = [position_json(positions_of[key], markets[key[0]].mark) for key in keys]
    return out, (_position_cursor(keys[-1]) if more else "")


# ------------------------------------------------------------------------------ executions


def executions(
    engine: PaperEngine,
    acct: PaperAccount,
    *,
    symbol: str | None,
    base_coin: str | None,
    order_id: str | None,
    link_id: str | None,
    exec_type: str | None,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    cursor: str | None,
) -> Page:
    now = engine.now_ms()
    if symbol:
        engine.spec(symbol)
    start, end = time_window(start_ms, end_ms, now)
    if exec_type not in (None, "Trade"):
        return [], ""
    out: list[PaperExecution] = []
    more = False
    for e in acct.executions.newest_first(read_seq_cursor(cursor)):
        if e.time_ms > end:
            continue
        if e.time_ms < start:
            break  # executions are recorded in time order
        if (
            (symbol and e.symbol != symbol)
            or (base_coin and e.spec.base_coin != base_coin)
            or (order_id and e.order_id != order_id)
            or (link_id and e.link_id != link_id)
        ):
            continue
        if len(out) == limit:
            more = True
            break
        out.append(e)
    return [execution_json(e) for e in out], (seq_cursor(out[-1].seq) if more else "")


# -------------------------------------------------------------------------------- account


def wallet(engine: PaperEngine, acct: PaperAccount, coins: set[str] | None) -> dict[str, Any]:
    upl = ZERO
    mm = ZERO
    markets = engine.markets
    for key in acct.open_positions.after(None):
        pos = acct.positions[key]
        upl += unrealised_pnl(pos, markets[key[0]].mark)
        mm += maintenance_margin(pos)
    return wallet_view(acct, upl, mm, coins)
