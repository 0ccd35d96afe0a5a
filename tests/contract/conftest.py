"""The contract suite runs every test against two sources of truth, through BybitClient's real HTTP
path (pooled session, signing, parsing, error mapping):

- `recorded`: Bybit v5 answers recorded from Bybit's API documentation (tests/fixtures/bybit/),
  served by tests/plugins/recorded_bybit.py — holds the parser to the real format;
- `paper`: the paper exchange (exchange/paper, fixture `paper` of tests/plugins/paper.py) — holds
  the simulator to the client.

A `Venue` hides how a scenario is set up on each: the paper exchange is seeded through the official
`pybit` SDK (an independent client) and its admin API; the recorded server is seeded with
documented rows. Tests only talk to the venue and to the client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from core.models import Account, Secret
from exchange.bybit import BybitClient, build_client
from exchange.bybit.session import SessionPool
from tests.plugins.recorded_bybit import TEST_KEY, TEST_SECRET, RecordedBybit, fixture_body

# contract tests exercise the exchange, not the client-side limiter (tests of their own cover it)
UNLIMITED = {"rate_read_per_s": 1e5, "rate_trade_per_s": 1e5, "rate_batch_orders_per_s": 1e5}


class StepClock:
    """Real time plus an offset the test moves (both servers check signatures against real time,
    so the offset stays below their 1 s future tolerance unless a test wants a skew)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Venue:
    name: str
    base_url: str
    account: Account
    clock: StepClock

    def client(self, clock: Any = None, **settings: Any) -> BybitClient:
        """A client on its own SessionPool (its statistics are this test's alone), on the venue's
        clock unless another is given."""
        s = Settings(**{**UNLIMITED, **settings})
        return build_client(self.base_url, s, clock=clock or self.clock, pool=SessionPool(s))

    # --- scenario
    def set_price(self, symbol: str, price: str) -> None:
        raise NotImplementedError

    def open_position(self, symbol: str, side: str, qty: str, price: str, idx: int = 0) -> None:
        raise NotImplementedError

    def add_order(self, **kw: Any) -> None:
        """kw: symbol, side, qty, price | trigger_price + trigger_direction, link_id (None: none),
        reduce_only, close_on_trigger, order_type, idx."""
        raise NotImplementedError

    def finish_order(self, link_id: str, symbol: str, how: str) -> None:
        """Take an open order off the book: "cancelled" or "filled"."""
        raise NotImplementedError

    def expect_rejection(self, link_id: str, code: int) -> None:
        """The exchange will refuse this order with `code` (the paper exchange decides by itself)."""

    # --- faults and observation
    def fault(
        self,
        path: str,
        *,
        ret_code: int | None = None,
        status: int | None = None,
        drop: bool = False,
        times: int = 1,
        reset_ms: int | None = None,
    ) -> None:
        raise NotImplementedError

    def calls(self, path: str) -> int:
        raise NotImplementedError

    def connections(self) -> int:
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Move time forward for the client and the exchange alike (no sleeping)."""
        self.clock.offset += seconds


class RecordedVenue(Venue):
    name = "recorded"

    def __init__(self, server: RecordedBybit) -> None:
        self.server = server
        self.base_url = server.base_url
        self.clock = StepClock()
        server.clock = self.clock  # signatures, headers and the client share one time
        self.account = Account(
            id="main", base_url=server.base_url, api_key=Secret(TEST_KEY), api_secret=Secret(TEST_SECRET)
        )

    def set_price(self, symbol: str, price: str) -> None:
        self.server.set_ticker(symbol, price)

    def open_position(self, symbol: str, side: str, qty: str, price: str, idx: int = 0) -> None:
        self.set_price(symbol, price)
        self.server.add_position(
            symbol=symbol, side=side, size=qty, avgPrice=price, markPrice=price, positionIdx=idx
        )

    def add_order(self, **kw: Any) -> None:
        conditional = kw.get("trigger_price") is not None
        self.server.add_order(
            symbol=kw["symbol"],
            side=kw["side"],
            qty=kw["qty"],
            leavesQty=kw["qty"],
            orderType=kw.get("order_type", "Market" if conditional else "Limit"),
            price=kw.get("price") or "0",
            orderLinkId=kw.get("link_id") or "",
            positionIdx=kw.get("idx", 0),
            reduceOnly=kw.get("reduce_only", False),
            closeOnTrigger=kw.get("close_on_trigger", False),
            orderStatus="Untriggered" if conditional else "New",
            triggerPrice=kw.get("trigger_price") or "0.00",
            triggerDirection=kw.get("trigger_direction", 0),
            stopOrderType="Stop" if conditional else "UNKNOWN",
        )

    def finish_order(self, link_id: str, symbol: str, how: str) -> None:
        with self.server.lock:
            row = next(o for o in self.server.open_orders if o["orderLinkId"] == link_id)
            self.server.open_orders.remove(row)
            if how == "filled":
                done = {**row, "orderStatus": "Filled", "cumExecQty": row["qty"], "leavesQty": "0"}
            else:
                done = {**row, "orderStatus": "Cancelled", "cancelType": "CancelByUser"}
            self.server.history.insert(0, done)

    def expect_rejection(self, link_id: str, code: int) -> None:
        self.server.reject_item(link_id, f"error_{code}")

    def fault(self, path, *, ret_code=None, status=None, drop=False, times=1, reset_ms=None) -> None:
        if drop:
            self.server.fail(path, kind="drop", times=times)
        elif status is not None:
            self.server.fail(path, status=status, times=times)
        else:
            self.server.fail(path, f"error_{ret_code}", times=times, reset_in_ms=reset_ms)

    def calls(self, path: str) -> int:
        return self.server.calls[path]

    def connections(self) -> int:
        return self.server.connections


class PaperVenue(Venue):
    name = "paper"

    def __init__(self, handle: Any) -> None:
        from pybit.unified_trading import HTTP

        self.handle = handle
        self.admin = handle.admin
        self.base_url = handle.base_url
        self.clock = StepClock()
        self.admin.set_rate_limits(enabled=False)
        creds = handle.new_account(balance=1_000_000)
        self.account = Account(
            id="main",
            base_url=self.base_url,
            api_key=Secret(creds.api_key),
            api_secret=Secret(creds.api_secret),
        )
        self.sdk = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
        self.sdk.endpoint = self.base_url
        self._symbols: dict[str, str] = {}

    def set_price(self, symbol: str, price: str) -> None:
        self.admin.set_prices({symbol: price})

    def open_position(self, symbol: str, side: str, qty: str, price: str, idx: int = 0) -> None:
        self.set_price(symbol, price)
        self.sdk.place_order(
            category="linear", symbol=symbol, side=side, orderType="Market", qty=qty, positionIdx=idx
        )

    def add_order(self, **kw: Any) -> None:
        params: dict[str, Any] = {
            "category": "linear",
            "symbol": kw["symbol"],
            "side": kw["side"],
            "qty": kw["qty"],
            "positionIdx": kw.get("idx", 0),
            "reduceOnly": kw.get("reduce_only", False),
        }
        if kw.get("link_id"):
            params["orderLinkId"] = kw["link_id"]
        if kw.get("trigger_price") is not None:
            params.update(
                orderType=kw.get("order_type", "Market"),
                triggerPrice=kw["trigger_price"],
                triggerDirection=kw["trigger_direction"],
                closeOnTrigger=kw.get("close_on_trigger", False),
            )
        else:
            params.update(orderType="Limit", price=kw["price"])
        self.sdk.place_order(**params)
        if kw.get("link_id"):
            self._symbols[kw["link_id"]] = kw["symbol"]

    def finish_order(self, link_id: str, symbol: str, how: str) -> None:
        if how == "cancelled":
            self.sdk.cancel_order(category="linear", symbol=symbol, orderLinkId=link_id)
            return
        order = self.sdk.get_open_orders(category="linear", symbol=symbol, orderLinkId=link_id)["result"][
            "list"
        ][0]
        self.admin.set_prices({symbol: order["price"]})  # the price reaches the limit: it fills

    def fault(self, path, *, ret_code=None, status=None, drop=False, times=1, reset_ms=None) -> None:
        spec: dict[str, Any] = {"endpoint": path, "count": times}
        if drop:
            spec["drop_connection"] = True
        elif status is not None:
            spec["http_status"] = status
        else:
            spec["ret_code"] = ret_code
            spec["ret_msg"] = fixture_body(f"error_{ret_code}")["retMsg"]
            if reset_ms is not None:
                spec["reset_after_ms"] = reset_ms
        self.admin.add_fault(**spec)

    def calls(self, path: str) -> int:
        return int(self.admin.stats()["by_endpoint"].get(path, 0))

    def connections(self) -> int:
        return int(self.admin.stats()["connections"])

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.admin.set_clock_offset(int(self.clock.offset * 1000))


@pytest.fixture(params=["recorded", "paper"])
def venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    if request.param == "recorded":
        server = request.getfixturevalue("recorded_bybit")
        yield RecordedVenue(server)
        return
    try:
        handle = request.getfixturevalue("paper")
    except pytest.FixtureLookupError:
        pytest.skip("paper exchange fixture (tests/plugins/paper.py) not available")
    yield PaperVenue(handle)


D = Decimal
