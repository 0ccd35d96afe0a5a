"""One ExchangePort contract, two implementations of the paper exchange: the Bybit client over real
HTTP and the in-process PaperPort the core's walks use. Whatever one answers, the other must too."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from config.settings import Settings
from core.models import (
    Account,
    AmendOrder,
    CancelOrder,
    ExchangeOrderStatus,
    PlaceOrder,
    Secret,
    Side,
)
from core.ports import ExchangePort
from exchange.bybit import build_client
from exchange.bybit.session import SessionPool
from exchange.paper.engine import PaperEngine
from exchange.paper.port import PaperPort

UNLIMITED = {"rate_read_per_s": 1e5, "rate_trade_per_s": 1e5, "rate_batch_orders_per_s": 1e5}


@pytest.fixture(params=["http", "in_process"])
def port_and_prices(request):
    """(port, account, set_price) for each implementation."""
    if request.param == "http":
        paper = request.getfixturevalue("paper")
        creds = paper.new_account(balance=1_000_000)
        paper.admin.set_rate_limits(enabled=False)
        account = Account("main", paper.base_url, Secret(creds.api_key), Secret(creds.api_secret))
        s = Settings(**UNLIMITED)
        port = build_client(paper.base_url, s, pool=SessionPool(s))

        def set_price(symbol: str, price: str) -> None:
            paper.admin.set_prices({symbol: price})

        return port, account, set_price
    engine = PaperEngine(clock=time.time)
    engine.create_account("k-in-process", "s-in-process", balance="1000000")
    account = Account("main", "paper://", Secret("k-in-process"), Secret("s-in-process"))

    def set_price(symbol: str, price: str) -> None:
        engine.set_prices({symbol: D(price)})

    return PaperPort(engine), account, set_price


def place(account, lid, side, qty, **kw):
    return PlaceOrder(
        account=account.id, monitor_id="m", link_id=lid, symbol="BTCUSDT", side=side, qty=D(qty), **kw
    )


def test_the_same_answers_through_both_ports(port_and_prices):
    port, account, set_price = port_and_prices
    assert isinstance(port, ExchangePort)
    set_price("BTCUSDT", "60000")
    assert port.instruments()["BTCUSDT"].qty_step == D("0.001")
    assert port.tickers()["BTCUSDT"].last_price == D("60000")

    # an entry that fills at once, a resting take-profit, a stop
    results = port.place(
        account,
        [
            place(account, "c-entry", Side.BUY, "0.020", order_type="Market", time_in_force="IOC"),
            place(account, "c-tp", Side.SELL, "0.020", price=D("62000"), reduce_only=True),
            place(
                account,
                "c-sl",
                Side.SELL,
                "0.020",
                order_type="Market",
                trigger_price=D("58000"),
                trigger_direction=2,
                reduce_only=True,
                close_on_trigger=True,
            ),
        ],
    )
    assert [r.ok for r in results] == [True, True, True]
    snap = port.snapshot(account)
    assert snap.position("BTCUSDT", 0).size == D("0.020")
    assert set(snap.open_orders) == {"c-tp", "c-sl"}
    assert snap.open_orders["c-sl"].status is ExchangeOrderStatus.UNTRIGGERED
    assert snap.open_orders["c-sl"].trigger_price == D("58000")

    # idempotent outcomes: a duplicate create, an amend of the stop, a cancel of an unknown order
    again = port.place(
        account, [place(account, "c-tp", Side.SELL, "0.020", price=D("62000"), reduce_only=True)]
    )
    assert again[0].ok
    amended = port.amend(
        account,
        [
            AmendOrder(
                account.id, "m", "c-sl", "BTCUSDT", qty=D("0.010"), trigger_price=D("58500"), conditional=True
            )
        ],
    )
    assert amended[0].ok
    assert port.snapshot(account).open_orders["c-sl"].trigger_price == D("58500")
    gone = port.cancel(
        account,
        [
            CancelOrder(account.id, "m", "never-existed", "BTCUSDT"),
            CancelOrder(account.id, "m", "c-tp", "BTCUSDT"),
        ],
    )
    assert [r.ok for r in gone] == [True, True]

    # orders that left the open list are found by look-up with their final state
    found = port.lookup_orders(account, ["c-entry", "c-tp", "nope"])
    assert found["c-entry"].status is ExchangeOrderStatus.FILLED and found["c-entry"].filled == D("0.020")
    assert found["c-tp"].status is ExchangeOrderStatus.CANCELLED
    assert "nope" not in found

    # a refused order is a per-item failure naming what to do
    bad = port.place(
        account, [place(account, "c-bad", Side.BUY, "0.001", price=D("61000"), reduce_only=True)]
    )
    assert not bad[0].ok and bad[0].error is not None
    assert port.wallet_balance(account).wallet_balance > 0


def test_a_paper_exchange_without_limits_does_not_pace_the_client(paper):
    """Limits switched off: the answers' headers report an unlimited quota, so the client (which
    paces itself by them) sends 60 take-profit creates at once, none left for a later pass."""
    creds = paper.new_account(balance=1_000_000)
    paper.admin.set_rate_limits(enabled=False)
    paper.admin.set_prices({"BTCUSDT": "60000"})
    account = Account("main", paper.base_url, Secret(creds.api_key), Secret(creds.api_secret))
    s = Settings(**UNLIMITED)
    port = build_client(paper.base_url, s, pool=SessionPool(s))
    for n in range(3):
        orders = [
            place(account, f"tgaaaaaaaaaa-TP{i}-{n + 1}", Side.SELL, "0.001", price=D(70000 + i))
            for i in range(1, 21)
        ]
        results = port.place(account, orders)
        assert all(r.ok for r in results), [r.message for r in results if not r.ok][:2]
