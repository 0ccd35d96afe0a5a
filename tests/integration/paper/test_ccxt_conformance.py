"""Conformance with ccxt's `bybit` class (a dev dependency), unmodified, with only its URLs pointed at
the paper exchange: its default flow — load_markets (coin info, the key's and the account's unified
status, instruments of every category), tickers, balance, market / limit / trigger orders, amend,
positions, open orders, cancels, trades, closed orders, leverage."""

from __future__ import annotations

import ccxt
import pytest

from tests.plugins.paper import PaperHandle

BTC = "BTC/USDT:USDT"


@pytest.fixture
def exchange(paper: PaperHandle):
    creds = paper.new_account(balance=50_000)
    ex = ccxt.bybit({"apiKey": creds.api_key, "secret": creds.api_secret})
    for name in list(ex.urls["api"]):
        ex.urls["api"][name] = paper.base_url  # the only change: Bybit's rate limits stay on
    return ex


def test_ccxt_default_flow(paper: PaperHandle, exchange) -> None:
    markets = exchange.load_markets()
    btc = markets[BTC]
    assert (btc["id"], btc["type"], btc["linear"], btc["settle"]) == ("BTCUSDT", "swap", True, "USDT")
    assert btc["precision"]["price"] == 0.1 and btc["limits"]["amount"]["min"] == 0.001
    assert "USDT" in exchange.currencies

    ticker = exchange.fetch_ticker(BTC)
    assert ticker["last"] == 65000.0 and ticker["bid"] < ticker["ask"]
    assert set(exchange.fetch_tickers([BTC, "ETH/USDT:USDT"])) == {BTC, "ETH/USDT:USDT"}

    balance = exchange.fetch_balance()
    assert balance["USDT"]["total"] == 50_000.0 and balance["USDT"]["free"] == 50_000.0
    assert exchange.options["enableUnifiedAccount"] is True  # from /v5/user/query-api + account/info

    exchange.set_leverage(5, BTC)
    market = exchange.create_order(BTC, "market", "buy", 0.01)
    limit = exchange.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "ccxt-limit-1"})
    trigger = exchange.create_order(
        BTC,
        "market",
        "sell",
        0.01,
        None,
        {"triggerPrice": 62000, "triggerDirection": "descending", "reduceOnly": True},
    )
    assert all(o["id"] for o in (market, limit, trigger))

    (position,) = exchange.fetch_positions([BTC])
    assert (position["side"], position["contracts"], position["entryPrice"], position["leverage"]) == (
        "long",
        0.01,
        65000.0,
        5.0,
    )

    edited = exchange.edit_order(limit["id"], BTC, "limit", "buy", 0.02, 60500)
    assert edited["id"] == limit["id"]
    opened = {o["id"]: o for o in exchange.fetch_open_orders(BTC)}
    assert set(opened) == {limit["id"], trigger["id"]}
    assert (opened[limit["id"]]["price"], opened[limit["id"]]["amount"]) == (60500.0, 0.02)
    assert opened[limit["id"]]["clientOrderId"] == "ccxt-limit-1"
    assert opened[trigger["id"]]["triggerPrice"] == 62000.0 and opened[trigger["id"]]["reduceOnly"] is True

    fetched = exchange.fetch_open_order(limit["id"], BTC)  # what ccxt advises over fetch_order
    assert (fetched["status"], fetched["price"]) == ("open", 60500.0)
    cancelled = exchange.cancel_order(limit["id"], BTC)
    assert cancelled["id"] == limit["id"]
    exchange.cancel_all_orders(BTC)
    assert exchange.fetch_open_orders(BTC) == []

    (trade,) = exchange.fetch_my_trades(BTC)
    assert (trade["order"], trade["side"], trade["amount"], trade["price"]) == (
        market["id"],
        "buy",
        0.01,
        65000.0,
    )
    assert trade["fee"]["currency"] == "USDT" and trade["fee"]["cost"] > 0
    closed = {o["id"]: o["status"] for o in exchange.fetch_closed_orders(BTC)}
    assert closed[market["id"]] == "closed"
    assert {o["id"]: o["status"] for o in exchange.fetch_canceled_orders(BTC)}[limit["id"]] == "canceled"

    exchange.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    (flat,) = exchange.fetch_positions([BTC])  # with a symbol Bybit lists the flat row too
    assert flat["contracts"] == 0.0 and flat["info"]["side"] == ""
