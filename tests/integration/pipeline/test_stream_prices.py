"""The public ticker streams on the real stack (paper exchange over HTTP and WebSocket, Redis, a
Celery worker, the stream process): checks take their prices from the pushes instead of GET
/v5/market/tickers while those are fresh, and a price that enters a monitor's proximity band calls
a check of its account at once."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from core.models import Tier
from workers.checker import read_counts, run_check
from workers.stream_prices import StreamPrices

from .plans import conservative_long
from .streams import pushed_mark, view_reads

SLOW = 300.0
TICKERS = "/v5/market/tickers"


def ticker_calls(stack) -> int:
    return stack.paper.admin.stats()["by_endpoint"].get(TICKERS, 0)


def subscribed(stack, watch, symbol: str) -> None:
    """Wait until the stream process holds the symbol's ticker and has written its price."""
    stack.wait(lambda: symbol in watch.bands.symbols(), what=f"{symbol} among the watched symbols")
    stack.wait(lambda: pushed_mark(stack, symbol) is not None, what=f"{symbol}'s pushed price")


def checks(stack) -> int:
    return sum(read_counts(stack.rt)["reads"].values())


class TestProximityTrigger:
    """The tiers are set to 300 s: whatever checks the monitor within the test's waits was called by
    a push."""

    @pytest.fixture
    def stack_overrides(self):
        return {"tier_intervals": {t: SLOW for t in Tier}}

    def test_a_price_entering_the_band_calls_a_check_and_one_outside_or_hovering_does_not(self, stack, watch):
        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())  # entries at 60000 / 59500 / 59000, nothing filled
        stack.wait(
            lambda: (d := stack.rt.registry.next_due(m.id)) is not None and d[1] > time.time() + SLOW / 2,
            what="the first tier check (the next is 300 s away)",
        )
        subscribed(stack, watch, "BTCUSDT")
        stack.wait(
            lambda: (
                m.id in watch.bands.monitor_ids()
                and watch._versions.get(m.id) == stack.rt.registry.versions([m.id])[m.id]
            ),
            what="the monitor's bands, read after its first check",
        )
        # entries working, the price 0.83 % away: active if the first check polled, standard if it
        # read the view (the entries' fills are pushed); never critical
        first_tier = stack.monitor(m.id).tier
        assert first_tier in (Tier.ACTIVE, Tier.STANDARD)
        before = checks(stack)
        pushes = watch.public_health()["pushes"]

        # negative control: 60400 is 0.67 % from the first entry, outside the 0.5 % band
        stack.prices(BTCUSDT="60400")
        stack.wait(lambda: watch.public_health()["pushes"] > pushes, what="the push of 60400 handled")
        time.sleep(1.5)  # a check it had called would have run by now
        assert watch.public_health()["checks"] == 0
        assert checks(stack) == before
        assert stack.monitor(m.id).tier is first_tier

        # 60250 is 0.41 % from 60000: inside the band, not filled (a buy limit at 60000)
        pushes = watch.public_health()["pushes"]
        stack.prices(BTCUSDT="60250")
        reads = view_reads(stack)
        stack.wait(lambda: checks(stack) > before, what="the check the band entry called")
        # it read the stream view: a fill at the entry would be pushed and call a check of its own,
        # so neither the price nor the working entries make the monitor critical or active (a
        # polled account's would be)
        assert view_reads(stack) > reads
        time.sleep(1.0)  # the check has saved what it decided by now
        assert stack.monitor(m.id).tier is Tier.STANDARD
        assert watch.public_health()["checks"] == 1
        assert watch.public_health()["entered"] == 1
        assert stack.paper.admin.account(stack.creds["main"].api_key)["positions"] == []  # nothing filled
        entered_at = checks(stack)

        # hovering inside the band calls nothing more
        for price in ("60200", "60230", "60180"):
            pushes = watch.public_health()["pushes"]
            stack.prices(BTCUSDT=price)
            stack.wait(lambda p=pushes: watch.public_health()["pushes"] > p, what=f"the push of {price}")
        time.sleep(1.5)
        assert watch.public_health()["checks"] == 1
        assert checks(stack) == entered_at

        # out and in again: a second entry, a second check
        for price in ("60450", "60220"):
            pushes = watch.public_health()["pushes"]
            stack.prices(BTCUSDT=price)
            stack.wait(lambda p=pushes: watch.public_health()["pushes"] > p, what=f"the push of {price}")
        stack.wait(lambda: checks(stack) > entered_at, what="the check of the second entry")
        assert watch.public_health()["entered"] == 2


def test_checks_read_the_pushed_prices_and_rest_once_the_stream_is_gone(stack, watch):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    subscribed(stack, watch, "BTCUSDT")
    stack.prices(BTCUSDT="60480")
    stack.wait(lambda: pushed_mark(stack, "BTCUSDT") == D("60480"), what="the pushed price")

    stack.paper.admin.reset()  # the exchange's call counters only
    before = checks(stack)
    stack.wait(lambda: checks(stack) >= before + 5, what="five checks (the tiers run every 0.2-0.5 s)")
    result = run_check(stack.rt, "main", [m.id])
    assert result.skipped is None or result.skipped == "account busy"
    assert ticker_calls(stack) == 0  # every price came from the pushes
    assert stack.monitor(m.id) is not None

    # the stream process stops: its prices go unread at once, and checks read the REST cache
    stack.stop_streams()
    assert pushed_mark(stack, "BTCUSDT") is None
    before = checks(stack)
    stack.wait(lambda: checks(stack) >= before + 3, what="three checks more")
    assert ticker_calls(stack) > 0


def test_a_stale_price_is_not_read(stack, watch):
    """Fresh means confirmed within TPSL_TICKER_STREAM_FRESH_S: a price whose confirmations stopped
    (the process gone without a clean stop) falls back to REST once that old."""
    stack.prices(BTCUSDT="60500")
    stack.create(conservative_long())
    subscribed(stack, watch, "BTCUSDT")
    prices = StreamPrices(stack.rt.redis, prefix=stack.rt.prefix)
    bound = stack.settings.ticker_stream_fresh_s
    now = time.time()
    assert set(prices.fresh(["BTCUSDT"], now=now, max_age_s=bound)) == {"BTCUSDT"}
    assert prices.fresh(["BTCUSDT"], now=now + bound + 1.5, max_age_s=bound) == {}
    assert prices.fresh(["ETHUSDT"], now=now, max_age_s=bound) == {}  # not subscribed: no price
