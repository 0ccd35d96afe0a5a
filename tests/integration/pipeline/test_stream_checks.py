"""The stream process on the real stack: the paper exchange's private streams over WebSocket, a real
Redis, a real Celery worker. The tiers are set to 300 s here, so whatever reacts within the test's
waits was called by a push, not by the schedule."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from decimal import Decimal as D

import orjson
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from config import keys
from core.ids import link_id, monitor_id
from core.models import OrderRole, Tier
from exchange.bybit.stream import StreamEvent
from tasks.checks import check_pushed
from tasks.stream import StreamWatch, run_stream_process
from workers import deadline
from workers.checker import read_counts
from workers.deadline import Deadline
from workers.lag import STREAM_LAG
from workers.stream_triggers import JOIN_AGE_S, QUEUED_TTL_S, CheckCoalescer

from .plans import conservative_long

SLOW = 300.0


@pytest.fixture
def stack_overrides():
    return {"tier_intervals": {t: SLOW for t in Tier}}


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


def first_check_done(stack, mid):
    due = stack.rt.registry.next_due(mid)
    return due is not None and due[1] > time.time() + SLOW / 2


def test_a_fill_is_acted_on_at_its_push_not_at_the_next_tier_check(stack, watch):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: first_check_done(stack, m.id), what="the first tier check (the next is 300 s away)")
    pushes_before = watch.health()["main"]["pushes"]

    stack.prices(BTCUSDT="59990")  # the first entry fills: its pushes call a check at once
    # (the position's stop is set before the check saves the monitor: wait for both)
    stack.wait(
        lambda: stack.stop_sent(m.id) and live(stack, m.id).built_qty == D("0.010"),
        timeout=30,
        what="the stop, placed on the push",
    )
    # the fill was pushed, and pushes queued checks (a check already queued by the entries' own
    # pushes may be the one that carried the fill: coalesced, so not necessarily a new one)
    assert watch.health()["main"]["pushes"] > pushes_before
    assert watch.health()["main"]["checks"] > 0

    stack.prices(BTCUSDT="62100")  # TP1 fills: seen on its push too
    stack.wait(lambda: live(stack, m.id).tp_hits == (1,), timeout=30, what="TP1 seen on its push")


def test_the_coalescer_keeps_one_check_queued_per_account_and_loses_nothing(redis_client):
    c = CheckCoalescer(redis_client, prefix="t-stream")
    assert c.note("main", ["m1"]) is True  # nothing queued: enqueue
    assert c.note("main", ["m2", "m1"]) is False  # already queued: the ids ride along
    assert c.note("other", ["m9"]) is True  # accounts are apart
    assert c.note("main", []) is False  # nothing to check
    assert c.take("main") == ["m1", "m2"]
    assert c.take("main") == []  # a duplicate delivery finds nothing left
    assert not redis_client.exists(keys.stream_queued("t-stream", "main"))
    # a push during the running check queues exactly one more
    assert c.note("main", ["m3"]) is True
    assert c.note("main", ["m3"]) is False
    assert c.take("main") == ["m3"]
    # a queued flag whose message was lost frees itself
    assert 0 < redis_client.ttl(keys.stream_queued("t-stream", "other")) <= 30


def test_a_tier_check_joins_a_queued_check_only_while_it_is_queued(redis_client):
    c = CheckCoalescer(redis_client, prefix="t-join")
    assert c.join_queued("main", ["t1"]) is False  # nothing queued: the tier check runs itself
    assert c.take("main") == []
    assert c.note("main", ["m1"]) is True
    assert c.join_queued("main", ["t2", "t1"]) is True
    assert c.join_queued("main", []) is False
    assert c.take("main") == ["m1", "t1", "t2"]  # the queued check checks them all
    assert c.join_queued("main", ["t3"]) is False  # taken: that check has started
    assert c.note("main", ["m4"]) is True  # so a push after it queues one more, as before
    # a flag queued longer ago than JOIN_AGE_S may be one whose message was lost: not joined
    flag = keys.stream_queued("t-join", "main")
    redis_client.pexpire(flag, int((QUEUED_TTL_S - JOIN_AGE_S) * 1000) - 100)
    assert c.join_queued("main", ["t5"]) is False
    assert c.take("main") == ["m4"]


def test_streams_off_is_the_system_without_them(stack):
    off = replace(stack.rt, settings=stack.settings.model_copy(update={"streams": False}))
    stop = threading.Event()
    stop.set()
    run_stream_process(stack.app, off, stop)  # idles until stopped: opens nothing, publishes nothing
    assert not stack.rt.redis.exists(keys.stream_health(stack.rt.prefix))


def _order_row(lid: str, qty: str, updated_ms: int) -> dict[str, object]:
    return {
        "orderId": f"o-{lid}",
        "orderLinkId": lid,
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Limit",
        "qty": qty,
        "cumExecQty": "0",
        "orderStatus": "New",
        "price": "62000",
        "updatedTime": str(updated_ms),
    }


def push(row: dict[str, object], received_at: float, created_ms: int) -> StreamEvent:
    return StreamEvent(
        "message",
        "private:burst",
        "order",
        [row],
        account="burst",
        received_at=received_at,
        created_ms=created_ms,
    )


def test_a_burst_of_pushes_is_handled_as_one_batch_every_push_kept_one_check_queued(stack):
    """Pushes that wait together are handled together: each into the view (newer wins within the
    batch as across batches), one coalesced check for the account, every push's lag recorded."""
    published: list[str] = []
    watch = StreamWatch(stack.rt, published.append)  # not started: its handler is called directly
    now = time.time()
    ms = int(now * 1000)
    m1, m2 = sorted(monitor_id("burst", "BTCUSDT", 0, n) for n in ("1", "2"))
    a, b = link_id(m1, OrderRole.TP, 1, 1), link_id(m2, OrderRole.TP, 1, 1)
    pushes = [
        push(_order_row(a, "0.010", ms - 30), now, ms - 30),
        push(_order_row(b, "0.020", ms - 20), now, ms - 20),
        push(_order_row(a, "0.007", ms - 10), now, ms - 10),
        push(_order_row(a, "0.009", ms - 40), now, ms - 40),
    ]
    before = stack.rt.latency.summaries(STREAM_LAG, now=time.time(), window_s=60).get("private")
    watch.handle(pushes)

    assert published == ["burst"]  # one check for the whole burst
    assert CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix).take("burst") == [m1, m2]
    rows = stack.rt.redis.hgetall(keys.view_orders(stack.rt.prefix, "burst"))
    assert orjson.loads(rows[a])["qty"] == "0.007"  # the newest push of it, not the last to come
    assert orjson.loads(rows[b])["qty"] == "0.020"
    assert watch.health()["burst"]["pushes"] == 4
    after = stack.rt.latency.summaries(STREAM_LAG, now=time.time(), window_s=60)["private"]
    assert after.count - (before.count if before else 0) == 4

    # a push after the check took the queued ones queues exactly one more
    watch.handle(pushes[:1])
    assert published == ["burst", "burst"]


def test_a_stream_that_stays_down_calls_a_check_of_every_monitor_of_its_account(stack):
    """Read from the view, a monitor waits in a slow tier (its fills are pushed). When the stream
    stays down, the account is polled at once: a check of all its monitors, which reads REST. A
    stream back within DOWN_CHECK_AFTER_S has its gap's check instead (one REST read, not two)."""
    from tasks.stream import DOWN_CHECK_AFTER_S

    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: first_check_done(stack, m.id), what="the first tier check (the next is 300 s away)")
    stack.quiesce()  # no dispatcher, no stream: only the checks published here
    published: list[str] = []
    now = [time.time()]
    watch = StreamWatch(stack.rt, published.append, clock=lambda: now[0])  # not started
    coalescer = CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix)

    def event(kind: str) -> StreamEvent:
        return StreamEvent(kind, "private:main", reason="dropped", account="main")

    # back within the grace: the gap's check, and nothing when the grace is over
    watch.handle([event("down")])
    now[0] += DOWN_CHECK_AFTER_S / 2
    assert watch.check_streams_down() == [] and published == []
    watch.handle([event("gap")])
    assert published == ["main"] and coalescer.take("main") == [m.id]
    now[0] += DOWN_CHECK_AFTER_S
    assert watch.check_streams_down() == [] and published == ["main"]

    # down for longer: one check of every monitor, once per outage
    watch.handle([event("down")])
    now[0] += DOWN_CHECK_AFTER_S
    assert watch.check_streams_down() == ["main"]
    assert published == ["main", "main"] and coalescer.take("main") == [m.id]
    now[0] += 60
    assert watch.check_streams_down() == [] and published == ["main", "main"]

    before = read_counts(stack.rt)
    CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix).note("main", [m.id])
    assert check_pushed(stack.app, stack.rt, "main") == 1
    after = read_counts(stack.rt)
    assert after["reads"]["main"] == before["reads"].get("main", 0) + 1  # by REST: the view is down
    assert after["view_reads"].get("main", 0) == before["view_reads"].get("main", 0)


def test_a_pushed_round_stopped_by_its_soft_deadline_gives_its_monitors_back(stack):
    """Nothing noted is dropped: the round took the pushed monitors from the coalescer, and the
    deadline stopped it before it read; they go to a check of their own, which reads the account."""
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: first_check_done(stack, m.id), what="the first tier check (the next is 300 s away)")
    stack.quiesce()  # no dispatcher, no stream: only the checks sent here
    reads = read_counts(stack.rt)["reads"].get("main", 0)
    CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix).note("main", [m.id])  # as a push would
    passed = Deadline(at=0.0, clock=lambda: 1.0)
    with deadline.running(passed), pytest.raises(SoftTimeLimitExceeded):
        check_pushed(stack.app, stack.rt, "main")
    stack.wait(
        lambda: read_counts(stack.rt)["reads"].get("main", 0) == reads + 1,
        what="the check its monitors were handed to",
    )


def test_a_fill_whose_position_push_lags_holds_back_its_symbol_not_the_account(stack, watch):
    """Bybit pushes a fill's execution and its position as separate messages. A check that finds
    the first without the second checks the account's other symbols from the view and leaves that
    symbol's monitors to the check the position push calls: no REST read of the whole account (in
    a burst of fills, seconds). A position push that never comes: the task checks them again once
    the wait is over, and that check finds the fill old and reads the account by REST."""
    from tasks.checks import check_behind_later
    from workers.checker import run_check
    from workers.stream_view import BEHIND_WAIT_S, stream_view

    from .plans import conservative_short

    stack.prices(BTCUSDT="60500", ETHUSDT="2950")
    btc = stack.create(conservative_long())
    eth = stack.create(conservative_short())
    for m in (btc, eth):
        stack.wait(lambda m=m: first_check_done(stack, m.id), what="the first tier checks")
    view = stream_view(stack.rt)
    assert view is not None
    stack.wait(
        lambda: view.read("main", now=time.time(), instruments=dict) is not None, what="the view reconciled"
    )

    def rest_reads() -> int:
        counts = read_counts(stack.rt)
        return counts["reads"].get("main", 0) - counts["view_reads"].get("main", 0)

    before = rest_reads()
    view.apply_fills("main", [("BTCUSDT", int(time.time() * 1000))])  # its position push: not yet
    result = run_check(stack.rt, "main", [btc.id, eth.id])
    assert result.skipped is None
    assert result.behind == [btc.id] and [m.id for m in result.monitors] == [eth.id]
    assert rest_reads() == before  # ETHUSDT's monitor was checked from the view

    # the push never comes: the check the task queued finds the fill old and reads REST
    check_behind_later(stack.app, "main", result.behind)
    stack.wait(lambda: rest_reads() > before, timeout=BEHIND_WAIT_S + 10, what="the REST read a moment later")
    # that read settled the fill: the view is read again, every symbol
    again = run_check(stack.rt, "main", [btc.id, eth.id])
    assert again.behind == [] and {m.id for m in again.monitors} == {btc.id, eth.id}
    assert rest_reads() == before + 1


class TestViewRefresh:
    """The views are reconciled by a task of their own, so a check never reads a whole account by
    REST while it holds it (workers/view_refresh.py)."""

    @pytest.fixture
    def stack_overrides(self):
        return {"tier_intervals": {t: SLOW for t in Tier}, "stream_reconcile_s": 2.0}

    def test_a_view_refreshed_in_the_background_keeps_checks_off_rest(self, stack, watch):
        from workers.checker import run_check
        from workers.stream_view import stream_view
        from workers.view_refresh import refresh_view, views_due

        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        stack.wait(lambda: first_check_done(stack, m.id), what="the first tier check")
        view = stream_view(stack.rt)
        assert view is not None

        def reconciled_at() -> float:
            return view.state("main")["reconciled_at"]

        def rest_reads() -> int:
            counts = read_counts(stack.rt)
            return counts["reads"].get("main", 0) - counts["view_reads"].get("main", 0)

        stack.wait(lambda: reconciled_at() > 0, what="the view reconciled")
        first = reconciled_at()
        assert refresh_view(stack.rt, "main") is None  # not due: reconciled a moment ago
        stack.wait(lambda: "main" in views_due(stack.rt), timeout=5, what="3/4 of stream_reconcile_s")
        assert refresh_view(stack.rt, "main") == []  # read, reconciled, nothing to correct
        assert reconciled_at() > first
        # beat's tick, through the worker: each due view refreshed by a task of its own
        stack.wait(lambda: "main" in views_due(stack.rt), timeout=5, what="due again")
        second = reconciled_at()
        stack.app.tasks["tpsl.refresh_views"].delay()
        stack.wait(lambda: reconciled_at() > second, timeout=10, what="the refresh by the worker")
        # past stream_reconcile_s since the check's own REST read, a check still reads the view
        assert time.time() - first > 2.0
        before = rest_reads()
        assert run_check(stack.rt, "main", [m.id]).skipped is None
        assert rest_reads() == before

    def test_a_divergence_the_refresh_finds_calls_a_check_of_its_monitor(self, stack, watch):
        """A push lost: the refresh puts the view right and checks the monitor it touches, as the
        push would have called, rather than leave it to the monitor's next tier check."""
        from core.ids import parse_link_id
        from workers.stream_view import DIVERGENCE_GRACE_MS, stream_view
        from workers.view_refresh import views_due

        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        stack.wait(lambda: first_check_done(stack, m.id), what="the first tier check")
        view = stream_view(stack.rt)
        assert view is not None
        orders = keys.view_orders(stack.rt.prefix, "main")
        ours = [lid for lid in stack.rt.redis.hkeys(orders) if (parse_link_id(lid) or ("",))[0] == m.id]
        assert ours, "the monitor's orders are in the view"
        time.sleep(DIVERGENCE_GRACE_MS / 1000)  # older than the grace: a push should have brought it
        stack.rt.redis.hdel(orders, ours[0])  # its push was lost
        stack.wait(lambda: "main" in views_due(stack.rt), timeout=5, what="the view due a refresh")
        views_before = read_counts(stack.rt)["view_reads"].get("main", 0)

        found = stack.app.tasks["tpsl.refresh_view"]("main")  # the task's body, here

        assert found == 1
        assert stack.rt.redis.hexists(orders, ours[0])  # the view put right
        stack.wait(
            lambda: read_counts(stack.rt)["view_reads"].get("main", 0) > views_before,
            timeout=10,
            what="the check of the monitor the divergence touched",
        )

    def test_the_monitors_divergences_touch(self, stack):
        """An order's by its orderLinkId, a position's by the monitor guarding it; an order not
        ours and a position no monitor guards touch none."""
        from workers.position_index import PositionIndex
        from workers.stream_view import Divergence
        from workers.view_refresh import touched_by

        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        PositionIndex(stack.rt.redis, prefix=stack.rt.prefix).bind([live(stack, m.id)])
        order = Divergence("order_missing", link_id(m.id, OrderRole.TP, 1, 1), "-", "New 0/0.01 @62000")
        position = Divergence("position_differs", "BTCUSDT|0", "-", "Buy 0.01 @60000")
        unguarded = Divergence("position_gone", "ETHUSDT|0", "Sell 1 @3000", "-")
        foreign = Divergence("order_gone", "someone-elses-order", "New 0/1 @1", "not open")

        assert touched_by(stack.rt, "main", [order]) == {m.id}
        assert touched_by(stack.rt, "main", [position]) == {m.id}
        assert touched_by(stack.rt, "main", [unguarded, foreign]) == set()
        assert touched_by(stack.rt, "other", [position]) == set()  # the index is per account
