"""The stream process on the real stack: the paper exchange's private streams over WebSocket, a real
Redis, a real Celery worker. The tiers are set to 300 s here, so whatever reacts within the test's
waits was called by a push, not by the schedule."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from decimal import Decimal as D

import pytest

from config import keys
from core.models import Tier
from tasks.stream import run_stream_process
from workers.stream_triggers import CheckCoalescer

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


def test_streams_off_is_the_system_without_them(stack):
    off = replace(stack.rt, settings=stack.settings.model_copy(update={"streams": False}))
    stop = threading.Event()
    stop.set()
    run_stream_process(stack.app, off, stop)  # idles until stopped: opens nothing, publishes nothing
    assert not stack.rt.redis.exists(keys.stream_health(stack.rt.prefix))
