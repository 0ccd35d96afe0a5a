"""What must survive: a check delivered twice, Redis emptied, the rollback switches, price approach."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

import pytest

from core.models import BreakevenState, Phase, Tier
from persistence.stats import persist_stats
from workers.checker import run_check
from workers.reconcile import reconcile
from workers.store import MonitorStore, encode

from .plans import conservative_long
from .streams import pushed_mark, view_reads


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


def links_on_exchange(stack, account="main"):
    return Counter(o["orderLinkId"] for o in stack.exchange_orders(account))


def test_a_check_replayed_from_stale_state_places_nothing_twice(stack):
    """The worst duplicate: a check whose state save was lost runs again from the old state. The
    same orderLinkIds go out again; the exchange refuses the duplicates and nothing is doubled."""
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.quiesce()  # no dispatcher: this test runs the checks itself
    stored = stack.rt.registry.get(m.id)
    before = MonitorStore(stack.rt.registry).load(m.id)
    stack.prices(BTCUSDT="59990")
    first = run_check(stack.rt, "main", [m.id])
    # the ladder, and in order mode the stop order (in position mode the stop came with the entry's
    # fill: attached to it)
    assert first.intents >= (3 if stack.on_position else 4)
    placed = links_on_exchange(stack)
    # the first check's save is lost: the registry goes back to the state it started from
    now_stored = stack.rt.registry.get(m.id)
    assert stack.rt.registry.save(m.id, stored.state_json, expected_version=now_stored.version)
    creates = stack.paper.admin.stats()["by_endpoint"].get("/v5/order/create-batch", 0)
    again = run_check(stack.rt, "main", [m.id])
    # it decided the same things again…
    assert again.intents >= (3 if stack.on_position else 4)
    assert links_on_exchange(stack) == placed  # …and the exchange holds each order once…
    # …because the read showed them open: not one create was sent again
    assert stack.paper.admin.stats()["by_endpoint"].get("/v5/order/create-batch", 0) == creates
    assert all(n == 1 for n in placed.values())
    assert before.monitor.version < live(stack, m.id).version
    third = run_check(stack.rt, "main", [m.id])
    assert third.intents == 0  # and then it is quiet


def test_the_same_check_delivered_twice_at_once(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.quiesce()
    stack.prices(BTCUSDT="59990")
    check = stack.app.tasks["tpsl.check"]
    for _ in range(2):
        check.apply_async(("main", [m.id]), queue="tier.critical")
    stack.wait(lambda: stack.stop_trigger(m.id) is not None, what="stop placed")
    stack.wait(lambda: all(o.status.value == "open" for o in live(stack, m.id).live_orders()))
    placed = links_on_exchange(stack)
    assert all(n == 1 for n in placed.values())
    assert sum(1 for lid in placed if "-SL-" in lid) == (0 if stack.on_position else 1)
    assert stack.stop_trigger(m.id) == D("58000")  # one stop, where the plan put it


class TestTierFollowsThePrice:
    """Polled, a price near a trigger makes a monitor critical: its fill is seen by reading. Read
    from the stream view it does not: the exchange pushes the fill, and the push calls a check."""

    @pytest.fixture(params=[False, True], ids=["polled", "pushed"])
    def stack_streams(self, request):
        return request.param

    def test_tier_follows_the_price(self, stack, stack_streams):
        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        for price in ("59990", "59400", "58900", "60500"):
            stack.prices(BTCUSDT=price)
        stack.wait(
            lambda: live(stack, m.id).phase is Phase.MONITORING and live(stack, m.id).tier is Tier.STANDARD,
            what="monitoring, standard tier",
        )
        stack.prices(BTCUSDT="61800")  # within 0.5 % of TP1 (62000)
        if stack_streams:
            stack.wait(lambda: pushed_mark(stack, "BTCUSDT") == D("61800"), what="the pushed price")
            reads = view_reads(stack)
            stack.wait(lambda: view_reads(stack) >= reads + 3, what="checks of the view at the new price")
            assert live(stack, m.id).tier is Tier.STANDARD
            assert stack.rt.registry.next_due(m.id)[0] is Tier.STANDARD
            return
        stack.wait(lambda: live(stack, m.id).tier is Tier.CRITICAL, what="critical near TP1")
        stack.wait(lambda: stack.rt.registry.next_due(m.id)[0] is Tier.CRITICAL, what="due set moved too")
        stack.prices(BTCUSDT="60500")
        stack.wait(lambda: live(stack, m.id).tier is Tier.STANDARD, what="back to standard")
        stack.wait(lambda: stack.rt.registry.next_due(m.id)[0] is Tier.STANDARD, what="due set moved back")


def test_redis_emptied_is_rebuilt_without_an_operator_and_catches_up_on_fills(stack, redis_client):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING)
    stack.wait(lambda: all(o.status.value == "open" for o in live(stack, m.id).live_orders()))
    stack.flush()  # the database has the monitor as it is now
    redis_client.flushdb()  # Redis lost everything: registry, queues, caches
    stack.prices(BTCUSDT="62100")  # TP1 fills while the registry is gone or being rebuilt
    # the dispatcher sees the registry's epoch gone and rebuilds it from the database, no operator
    stack.wait(lambda: stack.monitor(m.id) is not None, timeout=10, what="the registry rebuilt")
    # the epoch is written just after the monitors are put back (workers/reconcile.py)
    stack.wait(lambda: "restored" in (stack.rt.registry.epoch() or {}), timeout=10, what="the new epoch")
    rebuilt = stack.rt.registry.epoch()
    assert rebuilt is not None and rebuilt["restored"] == "1"
    # the next checks read each order's cumExecQty: the fill that happened meanwhile becomes events
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE, what="breakeven after rebuild")
    assert live(stack, m.id).tp_hits == (1,)

    def kinds() -> list[str]:
        # the check saves the state before it publishes the events: wait for them to be written
        stack.flush()
        return [e.kind for e in stack.events(m.id)]

    stack.wait(lambda: "breakeven_moved" in kinds(), what="the breakeven event in the database")
    written = kinds()
    assert written.count("tp_hit") == 1 and written.count("breakeven_moved") == 1
    assert reconcile(stack.rt).restored == 0  # idempotent


def test_registry_monitor_unknown_to_the_database_is_persisted(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    # an old Redis copy that the database never saw (e.g. the database was restored)
    item = MonitorStore(stack.rt.registry).load(m.id)
    assert item is not None and encode(item.monitor)
    with stack.rt.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM monitors WHERE id = :id"), {"id": m.id})
    assert stack.db_monitor(m.id) is None
    assert reconcile(stack.rt).persisted >= 1
    assert stack.db_monitor(m.id) is not None


class TestRollbackSwitches:
    @pytest.fixture
    def stack_overrides(self):
        return {
            "fixed_polling": True,
            "fixed_polling_interval_s": 0.3,
            "per_monitor_calls": True,
            "sync_saves": True,
            "cache_enabled": False,
            "pooling": False,
            "streams": False,
            "stop_mode": "order",
        }

    def test_the_plain_baseline_still_guards_positions(self, stack):
        assert stack.settings.baseline
        assert {stack.rt.registry.interval(t) for t in Tier} == {0.3}
        stack.prices(BTCUSDT="60500", ETHUSDT="2980")
        a = stack.create(conservative_long())
        for price in ("59990", "59400", "58900"):
            stack.prices(BTCUSDT=price)
        stack.wait(lambda: live(stack, a.id).phase is Phase.MONITORING)
        stack.prices(BTCUSDT="62100")
        stack.wait(lambda: live(stack, a.id).breakeven is BreakevenState.DONE, what="baseline breakeven")
        # synchronous saves: nothing waits in the coalescing buffer, every change was a transaction
        stats = persist_stats(stack.rt.redis, prefix="tpsl")
        assert not stack.rt.redis.hexists("tpsl:persist:pending", a.id)  # nothing of it waits
        assert stats["transactions"] >= stats["events_received"] / 2
        # written synchronously by the check itself (right after it saved the registry)
        stack.wait(lambda: stack.db_monitor(a.id).state["breakeven"] == "done", what="the row written")
        # per-monitor calls: the reads of this account were narrowed to the monitor's symbol
        by_endpoint = stack.paper.admin.stats()["by_endpoint"]
        assert by_endpoint.get("/v5/position/list", 0) > 0


def test_optimised_saves_coalesce(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900", "62100"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE)
    stats = persist_stats(stack.rt.redis, prefix="tpsl")
    assert stats["pending"] >= 1  # non-critical changes wait for the flush
    stack.quiesce()  # no check in between adds a change (position mode: the stop's read state, say)
    stack.flush()
    after = persist_stats(stack.rt.redis, prefix="tpsl")
    assert after["pending"] == 0
    assert after["events_received"] > after["transactions"]  # coalescing happened
    assert D(str(after["coalescing_ratio"])) > 1
