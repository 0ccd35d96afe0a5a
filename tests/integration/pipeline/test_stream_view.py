"""Checks that read the stream view instead of the exchange, on the real stack (paper exchange over
HTTP and WebSocket, Redis, a Celery worker): a whole lifecycle served by pushes and reconciled by
REST, and one with pushes lost on the way, which reconciliation catches; in position stop mode, a
stop whose pushes are lost is found and set once."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

import pytest

from core.models import BreakevenState, Phase, Tier
from workers.checker import read_counts
from workers.stream_view import stream_view

from .plans import conservative_long


@pytest.fixture
def stack_overrides():
    return {"stream_reconcile_s": 3.0}


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


def fully_built(stack, watch):
    """A conservative long whose three entries filled."""
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
        watch.heartbeat()
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="fully built")
    return m


def lifecycle(stack, watch, before_tp1=lambda: None):
    m = fully_built(stack, watch)
    before_tp1()
    stack.prices(BTCUSDT="62100")
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE, what="breakeven", timeout=40)
    mm = live(stack, m.id)
    assert stack.stop_trigger(m.id) > mm.avg_entry  # the stop order, or the position's stop-loss
    for price in ("63100", "64100", "65100"):
        stack.prices(BTCUSDT=price)
        watch.heartbeat()
    stack.wait(lambda: stack.monitor(m.id) is None, what="monitor finished", timeout=40)
    stack.flush()
    counts = Counter(e.kind for e in stack.events(m.id) if e.critical)
    assert counts["tp_hit"] == 4 and counts["breakeven_moved"] == 1 and counts["position_closed"] == 1
    return m


def test_a_lifecycle_read_from_the_stream_view(stack, watch):
    lifecycle(stack, watch)
    reads = read_counts(stack.rt)
    assert reads["view_reads"].get("main", 0) > 0  # checks were served by the view
    assert reads["reads"]["main"] > reads["view_reads"]["main"]  # and REST reconciled it
    assert stream_view(stack.rt).divergences("main") == 0  # a clean stream: nothing to correct


def test_pushes_lost_on_the_way_are_caught_by_reconciliation(stack, watch):
    # once the position is built, the next private pushes are lost: TP1's fill, and then the stop's
    # move to breakeven that the guard makes once a REST read showed it the fill. The view misses
    # them and no push calls a check; the periodic REST reads must find and correct them, and the
    # move is older than the divergence grace at the read after the one that saw TP1 (the reads are
    # 3 s apart), so at least that one is counted as a lost push
    def lose_pushes():
        stack.paper.admin.add_fault(endpoint="/v5/private", lose=True, count=40)

    lifecycle(stack, watch, before_tp1=lose_pushes)
    assert stream_view(stack.rt).divergences("main") > 0


class TestAPositionStopWhosePushesAreLost:
    @pytest.fixture
    def stack_overrides(self):
        return {"stream_reconcile_s": 8.0, "stop_mode": "position"}

    def test_the_reconciliation_finds_it_gone_and_the_guard_sets_it_once(self, stack, watch):
        """Every private push lost from a point on: a removal of the position's stop by hand is
        found by the reconciliation (the stop is compared), and the guard sets it again. That call
        is answered "set" and its push is lost too: the view's row, older than the call, cannot
        show it, so it is not sent again (each re-send would be answered "not modified") until a
        REST read shows it there."""
        from pybit.unified_trading import HTTP

        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        stack.prices(BTCUSDT="59990")  # the first entry fills: the position's stop is set
        stack.wait(lambda: live(stack, m.id).stop_seen == D("58000"), what="the position's stop seen")
        key = stack.creds["main"].api_key
        before = trading_stops(stack, key)

        stack.paper.admin.add_fault(endpoint="/v5/private", lose=True)  # every private push lost
        s = HTTP(api_key=key, api_secret=stack.creds["main"].api_secret, retry_delay=0.05)
        s.endpoint = stack.paper.base_url
        s.set_trading_stop(category="linear", symbol="BTCUSDT", stopLoss="0", tpslMode="Full", positionIdx=0)

        stack.wait(lambda: live(stack, m.id).stop_resets == 1, timeout=30, what="found gone, set again")
        stack.wait(lambda: stack.position_stop() == D("58000"), what="the stop back on the position")
        stack.wait(
            lambda: live(stack, m.id).stop_seen == D("58000") and live(stack, m.id).tier is not Tier.CRITICAL,
            timeout=30,
            what="a REST read showed it: settled",
        )
        assert trading_stops(stack, key) == before + 2  # the removal by hand, and the guard's one call
        assert stream_view(stack.rt).divergences("main") >= 2  # the removal, then the stop set again


def trading_stops(stack, key):
    account_id = stack.paper.admin.account(key)["id"]
    return stack.paper.admin.stats()["by_account"].get(account_id, {}).get("/v5/position/trading-stop", 0)


class TestAnOrderPushLost:
    @pytest.fixture
    def stack_overrides(self):
        return {"stream_reconcile_s": 60.0}  # the background refresh is 45 s away: it does not help

    def test_a_fill_whose_order_push_was_lost_is_read_by_rest_and_counted_once(self, stack, watch):
        """TP1 fills and its order push is lost; its execution and its position are pushed. The view
        then shows the position smaller than its open orders explain. Read from the view, that
        looks like a change by hand; the guard does not act on it as one, and reads the account by
        REST a moment later, which shows TP1 filled: counted once, long before any refresh."""
        m = fully_built(stack, watch)
        stack.paper.admin.add_fault(endpoint="/v5/private", lose=True, topic="order")
        stack.prices(BTCUSDT="62100")
        stack.wait(lambda: live(stack, m.id).tp_hits == (1,), timeout=15, what="TP1 seen (by REST)")
        stack.paper.admin.clear_faults()
        mm = live(stack, m.id)
        assert mm.built_qty == D("0.030") and mm.unexplained_at is None
        stack.flush()
        reasons = [e.payload.get("reason") for e in stack.events(m.id) if e.kind == "position_update"]
        assert "changed_outside" not in reasons
