"""A paper engine under a hand-driven clock, and short helpers to place orders and walk prices."""

from __future__ import annotations

from decimal import Decimal

from core.models import Side
from exchange.paper.commands import OrderRequest
from exchange.paper.engine import PaperEngine
from exchange.paper.instruments import default_instruments
from exchange.paper.records import PaperAccount, PaperExecution, PaperOrder

D = Decimal
T0 = 1_700_000_000.0


class ManualClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Exchange:
    """One engine (real symbols + 3 synthetic ones), BTCUSDT at 65000 to start."""

    def __init__(self, *, extra_symbols: int = 3, seed: int = 0) -> None:
        self.clock = ManualClock()
        self.engine = PaperEngine(clock=self.clock, instruments=default_instruments(extra_symbols), seed=seed)

    def account(
        self, *, balance: str = "100000", hedge: bool = False, key: str | None = None
    ) -> PaperAccount:
        key = key or f"key{len(self.engine.accounts_by_key) + 1:04d}"
        return self.engine.create_account(key, f"secret-{key}", balance=D(balance), hedge_mode=hedge)

    def place(
        self,
        acct: PaperAccount,
        side: str,
        qty: str,
        *,
        symbol: str = "BTCUSDT",
        price: str | None = None,
        tif: str | None = None,
        link: str = "",
        idx: int = 0,
        reduce_only: bool = False,
        close_on_trigger: bool = False,
        trigger: str | None = None,
        direction: int = 0,
        trigger_by: str = "LastPrice",
    ) -> PaperOrder:
        return self.engine.place_order(
            acct,
            OrderRequest(
                symbol=symbol,
                side=Side(side),
                order_type="Market" if price is None else "Limit",
                qty=D(qty),
                price=None if price is None else D(price),
                time_in_force=tif,
                position_idx=idx,
                link_id=link,
                reduce_only=reduce_only,
                close_on_trigger=close_on_trigger,
                trigger_price=None if trigger is None else D(trigger),
                trigger_direction=direction,
                trigger_by=trigger_by,
            ),
        )

    def walk(self, *prices: str, symbol: str = "BTCUSDT", mark: str | None = None) -> list[PaperExecution]:
        """Set the last (and mark) price to each value in turn; all the fills on the way."""
        fills: list[PaperExecution] = []
        for p in prices:
            self.clock.advance(1)
            fills += self.engine.set_price(symbol, D(p), None if mark is None else D(mark))
        return fills

    def mark(self, price: str, symbol: str = "BTCUSDT") -> list[PaperExecution]:
        """Move only the mark price."""
        self.clock.advance(1)
        return self.engine.set_prices({}, {symbol: D(price)})

    def position(self, acct: PaperAccount, symbol: str = "BTCUSDT", idx: int = 0):
        return acct.positions.get((symbol, idx))

    def size(self, acct: PaperAccount, symbol: str = "BTCUSDT", idx: int = 0) -> Decimal:
        pos = self.position(acct, symbol, idx)
        return D(0) if pos is None else pos.size
