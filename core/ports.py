"""The ports core code is written against. Adapters live in `exchange/` (Bybit v5 over HTTP, and the
paper exchange speaks the same API); fakes for unit tests live beside the tests that use them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

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

Clock = Callable[[], float]
"""Returns epoch seconds. Injected wherever time is read; core never reads it, it receives `now`."""


@runtime_checkable
class ExchangePort(Protocol):
    """One exchange host. Every call names the account whose credentials it uses: an action for a
    monitor always goes through that monitor's own account.

    Failures raise `core.errors` exceptions (RetryLater, BackOff, StopAndAlert, …); a read that
    failed never returns an empty result. Per-item outcomes of batch calls are `IntentResult`s, with
    idempotent outcomes (duplicate orderLinkId on create, unknown order on cancel, amend that changes
    nothing) reported as ok=True.
    """

    def snapshot(self, account: Account, *, symbol: str | None = None) -> Snapshot:
        """Every position (size > 0) and every open order (incl. conditional) of the account, all pages,
        in a fixed number of calls whatever the number of positions. `symbol` narrows both reads to
        one symbol (the per-monitor baseline). Instruments are filled from the instrument cache."""
        ...

    def positions(self, account: Account, *, symbol: str | None = None) -> list[Position]: ...

    def hedge_mode(self, account: Account, symbol: str) -> bool:
        """Whether the account holds `symbol` in hedge mode (positionIdx 1 and 2) rather than one-way
        (positionIdx 0): read from the account's position rows of the symbol (flat ones included)."""
        ...

    def open_orders(self, account: Account, *, symbol: str | None = None) -> list[ExchangeOrder]: ...

    def lookup_orders(self, account: Account, link_ids: Iterable[str]) -> dict[str, ExchangeOrder]:
        """Final state of orders that left the open list (recent history, then by orderLinkId).
        A link id absent from the answer was not found on the exchange."""
        ...

    def lookup_some(
        self, account: Account, link_ids: Iterable[str], *, max_single: int | None = 20
    ) -> tuple[dict[str, ExchangeOrder], frozenset[str]]:
        """`lookup_orders` with a bound on per-order calls: (found, looked_up). An id in looked_up
        but not in found was not found; an id in neither was not looked up this time."""
        ...

    def tickers(self) -> dict[str, Ticker]:
        """Every linear ticker, one call."""
        ...

    def instruments(self) -> dict[str, Instrument]:
        """Filters of every linear symbol; cached for hours by the adapter."""
        ...

    def place(self, account: Account, orders: Sequence[PlaceOrder]) -> list[IntentResult]: ...

    def amend(self, account: Account, orders: Sequence[AmendOrder]) -> list[IntentResult]: ...

    def cancel(self, account: Account, orders: Sequence[CancelOrder]) -> list[IntentResult]: ...

    def set_position_stop(self, account: Account, stops: Sequence[SetPositionStop]) -> list[IntentResult]:
        """The position's own Full-mode stop-loss (`Policy.stop_mode` "position"): one answer per
        stop; "not modified" is ok, a stop the price is already through is TRIGGER_PASSED, a flat
        position NO_POSITION."""
        ...

    def wallet_balance(self, account: Account) -> WalletBalance: ...

    def executions(self, account: Account, *, since_ms: int, symbol: str | None = None) -> list[Execution]:
        """Every fill of the account (or of one symbol) since `since_ms`, oldest first."""
        ...
