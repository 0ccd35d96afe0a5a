"""The paper exchange as an in-process `ExchangePort`: no HTTP, same engine, same v5 rows.

Reads go through the same query functions the HTTP server answers with and are parsed by the Bybit
client's own parser, so a Snapshot taken here is the one the client would build from the server.
Writes call the engine's commands; refusals are mapped by the client's error map with the client's
idempotency rules (a duplicate orderLinkId on create and an unknown order on cancel are successes).

For simulations and for property tests that walk thousands of price paths: nothing here sleeps,
opens a socket or reads a clock other than the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import orjson

from core.errors import Duplicate, NotFound, TpslError
from core.models import (
    Account,
    AmendOrder,
    CancelOrder,
    ExchangeOrder,
    Execution,
    Instrument,
    IntentResult,
    PlaceOrder,
    Position,
    SetPositionStop,
    Snapshot,
    Ticker,
    WalletBalance,
)
from exchange.bybit import parse
from exchange.bybit.errors import map_error
from exchange.paper import queries
from exchange.paper.commands import AmendRequest, OrderRequest, TradingStopRequest
from exchange.paper.engine import PaperEngine
from exchange.paper.errors import PaperError
from exchange.paper.records import PaperAccount
from exchange.paper.views import order_json

_PAGE = 1_000_000  # one page is everything: no cursors in process
EXECUTIONS_KEPT_MS = 730 * queries.DAY_MS  # as Bybit: two years of executions


def _rows(fragments: Iterable[Any]) -> list[dict[str, Any]]:
    """The v5 JSON rows the server would send, as the client would receive them."""
    rows: list[dict[str, Any]] = orjson.loads(orjson.dumps(list(fragments)))
    return rows


class PaperPort:
    """`PaperPort(engine)`: an ExchangePort for accounts created on `engine`."""

    def __init__(self, engine: PaperEngine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return "PaperPort(in-process)"

    def _acct(self, account: Account) -> PaperAccount:
        acct = self.engine.account(account.api_key.reveal())
        if acct is None:
            raise TpslError(f"account {account.id} does not exist on this paper exchange")
        return acct

    # ------------------------------------------------------------------------------------ reads

    def snapshot(self, account: Account, *, symbol: str | None = None) -> Snapshot:
        taken_at = self.engine.clock()
        positions = self.positions(account, symbol=symbol)
        orders = self.open_orders(account, symbol=symbol)
        return Snapshot(
            account=account.id,
            taken_at=taken_at,
            positions={(p.symbol, p.position_idx): p for p in positions},
            open_orders={o.link_id: o for o in orders if o.link_id},
            instruments=self.instruments(),
        )

    def positions(self, account: Account, *, symbol: str | None = None) -> list[Position]:
        with self.engine.lock:
            rows, _ = queries.positions(
                self.engine, self._acct(account), symbol=symbol, settle_coin="USDT", limit=_PAGE, cursor=None
            )
        return [p for p in (parse.position(r) for r in _rows(rows)) if p.size > 0]

    def hedge_mode(self, account: Account, symbol: str) -> bool:
        with self.engine.lock:
            rows, _ = queries.positions(
                self.engine, self._acct(account), symbol=symbol, settle_coin=None, limit=_PAGE, cursor=None
            )
        return any(parse.position(r).position_idx in (1, 2) for r in _rows(rows))

    def open_orders(self, account: Account, *, symbol: str | None = None) -> list[ExchangeOrder]:
        with self.engine.lock:
            rows, _ = queries.open_orders(
                self.engine,
                self._acct(account),
                symbol=symbol,
                base_coin=None,
                order_id=None,
                link_id=None,
                open_only=0,
                order_filter=None,
                limit=_PAGE,
                cursor=None,
            )
        return [parse.order(r) for r in _rows(rows)]

    def lookup_orders(self, account: Account, link_ids: Iterable[str]) -> dict[str, ExchangeOrder]:
        acct = self._acct(account)
        found: dict[str, ExchangeOrder] = {}
        with self.engine.lock:
            for lid in link_ids:
                order = self.engine.find_order(acct, "", lid)
                if order is not None:
                    (row,) = _rows([order_json(order)])
                    found[lid] = parse.order(row)
        return found

    def lookup_some(
        self, account: Account, link_ids: Iterable[str], *, max_single: int | None = 20
    ) -> tuple[dict[str, ExchangeOrder], frozenset[str]]:
        wanted = frozenset(link_ids)
        return self.lookup_orders(account, wanted), wanted  # in process, every look-up is free

    def tickers(self) -> dict[str, Ticker]:
        with self.engine.lock:
            rows = _rows(queries.tickers(self.engine, None))
        return {t.symbol: t for t in (parse.ticker(r) for r in rows) if t is not None}

    def instruments(self) -> dict[str, Instrument]:
        with self.engine.lock:
            rows, _ = queries.instruments(
                self.engine, symbol=None, status=None, base_coin=None, limit=_PAGE, cursor=None
            )
        return {i.symbol: i for i in (parse.instrument(r) for r in _rows(rows))}

    def wallet_balance(self, account: Account) -> WalletBalance:
        with self.engine.lock:
            result = queries.wallet(self.engine, self._acct(account), None)
        return parse.wallet({"list": [orjson.loads(orjson.dumps(result))]}, account.id)

    def executions(self, account: Account, *, since_ms: int, symbol: str | None = None) -> list[Execution]:
        """Every fill since `since_ms`, oldest first, read week by week as the Bybit client does
        (the exchange answers at most 7 days per query)."""
        rows: list[Any] = []
        with self.engine.lock:
            now = self.engine.now_ms()
            start = max(int(since_ms), now - EXECUTIONS_KEPT_MS)
            while start <= now:
                end = min(start + queries.WEEK_MS - 1, now)
                page, _ = queries.executions(
                    self.engine,
                    self._acct(account),
                    symbol=symbol,
                    base_coin=None,
                    order_id=None,
                    link_id=None,
                    exec_type=None,
                    start_ms=start,
                    end_ms=end,
                    limit=_PAGE,
                    cursor=None,
                )
                rows.extend(page)
                start = end + 1
        found = [e for e in (parse.execution(r) for r in _rows(rows)) if e is not None]
        return sorted(found, key=lambda e: (e.exec_time_ms, e.exec_id))

    # ----------------------------------------------------------------------------------- writes

    def place(self, account: Account, orders: Sequence[PlaceOrder]) -> list[IntentResult]:
        acct = self._acct(account)

        def one(o: PlaceOrder) -> str:
            req = OrderRequest(
                symbol=o.symbol,
                side=o.side,
                order_type=o.order_type,
                qty=o.qty,
                price=o.price,
                time_in_force=o.time_in_force if o.order_type == "Limit" else None,
                position_idx=o.position_idx,
                link_id=o.link_id,
                reduce_only=o.reduce_only,
                close_on_trigger=o.close_on_trigger,
                trigger_price=o.trigger_price,
                trigger_direction=o.trigger_direction,
                trigger_by=o.trigger_by,
                stop_loss=o.stop_loss,
                sl_trigger_by=o.stop_loss_by,
            )
            return self.engine.place_order(acct, req).order_id

        return [self._answer(o.link_id, partial(one, o), ok_on=Duplicate) for o in orders]

    def amend(self, account: Account, orders: Sequence[AmendOrder]) -> list[IntentResult]:
        acct = self._acct(account)

        def one(o: AmendOrder) -> str:
            req = AmendRequest(
                symbol=o.symbol, link_id=o.link_id, qty=o.qty, price=o.price, trigger_price=o.trigger_price
            )
            return self.engine.amend_order(acct, req, allow_conditional=o.conditional).order_id

        return [self._answer(o.link_id, partial(one, o)) for o in orders]

    def cancel(self, account: Account, orders: Sequence[CancelOrder]) -> list[IntentResult]:
        acct = self._acct(account)

        def cancel_one(o: CancelOrder) -> str:
            return self.engine.cancel_order(acct, o.symbol, link_id=o.link_id).order_id

        return [
            self._answer(
                o.link_id,
                partial(cancel_one, o),
                ok_on=NotFound,
            )
            for o in orders
        ]

    def set_position_stop(self, account: Account, stops: Sequence[SetPositionStop]) -> list[IntentResult]:
        acct = self._acct(account)

        def one(o: SetPositionStop) -> str:
            req = TradingStopRequest(
                symbol=o.symbol,
                position_idx=o.position_idx,
                tpsl_mode="Full",
                stop_loss=o.trigger_price,
                sl_trigger_by=o.trigger_by,
            )
            self.engine.set_trading_stop(acct, req)
            return ""

        return [self._answer(o.link_id, partial(one, o)) for o in stops]

    def _answer(
        self, link_id: str, call: Callable[[], str], *, ok_on: type[TpslError] | None = None
    ) -> IntentResult:
        try:
            return IntentResult(link_id, True, order_id=call())
        except PaperError as e:
            err = map_error(200, e.code, e.message, {}, self.engine.clock())
            if err is None or (ok_on is not None and isinstance(err, ok_on)):
                return IntentResult(link_id, True)
            return IntentResult(link_id, False, err.kind, err.message)
