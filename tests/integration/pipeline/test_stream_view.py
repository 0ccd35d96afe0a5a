"""Checks that read the stream view instead of the exchange, on the real stack (paper exchange over
HTTP and WebSocket, Redis, a Celery worker): a whole lifecycle served by pushes and reconciled by
REST, and one with pushes lost on the way, which reconciliation catches."""

from __future__ import annotations

from collections import Counter

import pytest

from core.models import BreakevenState, Phase
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


def lifecycle(stack, watch, before_tp1=lambda: None):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
        watch.heartbeat()
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="fully built")
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
