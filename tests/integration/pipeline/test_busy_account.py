"""A tier check that finds its account busy (another check, a create or a remove holds it) does not
block its worker waiting for the lock, and is not dropped either: the same check runs again a
moment later, as soon as the account is free. The tiers are set to 300 s here, so a check that ran
within the test's waits was the retried one, not the next scheduled one."""

from __future__ import annotations

import time

import pytest

from config import keys
from core.models import Tier
from tasks.dispatch import publish_checks
from workers.checker import read_counts
from workers.dispatcher import CheckOrder
from workers.locks import hold_account
from workers.stream_triggers import CheckCoalescer

from .plans import conservative_long, conservative_short

SLOW = 300.0


@pytest.fixture
def stack_overrides():
    return {"tier_intervals": {t: SLOW for t in Tier}}


def reads(stack) -> int:
    return read_counts(stack.rt)["reads"].get("main", 0)


def test_a_check_of_a_busy_account_runs_once_the_account_is_free(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: reads(stack) >= 1, what="the first check of the new monitor")
    stack.quiesce()
    before = reads(stack)

    with hold_account(stack.rt, "main") as held:  # what a long check of the account would do
        assert held
        publish_checks(stack.app, stack.rt, [CheckOrder("main", Tier.CRITICAL, (m.id,), time.time())])
        time.sleep(3.0)  # longer than a worker ever waited for the lock before it gave up
        assert reads(stack) == before  # the account was never read behind the holder's back
    stack.wait(
        lambda: reads(stack) > before, timeout=10, what="the busy check, run again once the account is free"
    )


def test_a_busy_check_gives_up_when_its_message_expires(stack):
    """It retries for one interval of its tier at most: by then the dispatcher has claimed the next."""
    from tasks.checks import BUSY_RETRY_S, busy_retries

    assert busy_retries(stack.rt, "critical") == round(SLOW / BUSY_RETRY_S)
    assert busy_retries(stack.rt, None) == round(SLOW / BUSY_RETRY_S)  # unknown tier: the longest


def test_a_busy_check_is_sent_again_with_its_own_options_until_its_retries_are_spent(stack):
    """What the busy check does in place of Celery's raised retry: the same task, its queue and its
    expiry, one retry more; nothing once the retries are spent."""
    from kombu import Exchange, Queue

    from tasks.checks import run_again_later

    task = stack.app.tasks["tpsl.check"]
    # a queue no worker reads, so the message stays there for the test to see
    spare = Queue("t.busy.spare", Exchange("t.busy", type="direct"), routing_key="t.busy.spare")
    with stack.app.connection_for_write() as conn:
        spare.bind(conn.default_channel).declare()
    expires = "2099-01-01T00:00:00+00:00"
    task.push_request(
        id="busy-1",
        args=["main", []],
        kwargs={},
        retries=3,
        expires=expires,
        timelimit=(60, 40),
        delivery_info={"exchange": "t.busy", "routing_key": "t.busy.spare"},
    )
    try:
        assert run_again_later(task, 0.25, max_retries=3) is False
        assert run_again_later(task, 0.25, max_retries=4) is True
    finally:
        task.pop_request()
    with stack.app.connection_for_write() as conn:
        message = spare.bind(conn.default_channel).get(no_ack=True)
    assert message is not None
    headers = message.headers
    assert headers["id"] == "busy-1" and headers["task"] == "tpsl.check" and headers["retries"] == 4
    assert headers["expires"] == expires and headers["timelimit"] == [60, 40] and headers["eta"]
    assert message.decode()[0] == ["main", []]


def test_monitors_pushed_while_a_tier_check_held_the_account_are_checked_as_it_ends(stack):
    """A push's check that found the account busy put its monitors back in the pending set; the
    tier check holding the account hands them to a check of their own as it finishes, not to a
    retry some time later."""
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: reads(stack) >= 1, what="the first check of the new monitor")
    stack.quiesce()
    before = reads(stack)
    pending = CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix)
    # pushed while the account was busy: in the pending set, and no check left to run it (a queued
    # one would take the tier check's monitors as well: the next test)
    stack.rt.redis.sadd(keys.stream_pending(stack.rt.prefix, "main"), m.id)

    publish_checks(stack.app, stack.rt, [CheckOrder("main", Tier.CRITICAL, (m.id,), time.time())])
    stack.wait(
        lambda: reads(stack) >= before + 2, timeout=10, what="the tier check, then the pushed monitors"
    )
    assert pending.take("main") == []  # taken: handed on by the tier check, then checked


def test_a_tier_check_leaves_its_monitors_to_a_queued_push_check(stack):
    """A push's check is queued for the account and has not started: the tier check adds its
    monitors to it and reads nothing itself (one pass of the account for both, and the fill's check
    does not wait behind the tier check's)."""
    stack.prices(BTCUSDT="60500", ETHUSDT="2980")
    a = stack.create(conservative_long())
    b = stack.create(conservative_short())
    stack.wait(lambda: reads(stack) >= 1, what="the first checks of the new monitors")
    stack.quiesce()
    before = reads(stack)
    pending = CheckCoalescer(stack.rt.redis, prefix=stack.rt.prefix)
    assert pending.note("main", [a.id]) is True  # queued, its message not sent: it never starts here
    pending_key = keys.stream_pending(stack.rt.prefix, "main")

    publish_checks(stack.app, stack.rt, [CheckOrder("main", Tier.CRITICAL, (b.id,), time.time())])
    stack.wait(
        lambda: stack.rt.redis.sismember(pending_key, b.id),
        timeout=10,
        what="the tier check's monitor, joined",
    )
    time.sleep(0.5)
    assert reads(stack) == before  # the tier check read nothing itself
    assert pending.take("main") == sorted([a.id, b.id])


def test_a_check_buffers_its_rows_once_the_account_is_free(stack, monkeypatch):
    """The monitors' rows and the events that are not critical go to the coalescing buffer after
    the check has let the account go: a fill pushed meanwhile waits for the account's next check,
    not for that bookkeeping. The rows still reach the database (the newest version wins there)."""
    from workers.checker import run_check
    from workers.locks import account_lock_key

    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.wait(lambda: reads(stack) >= 1, what="the first check of the new monitor")
    stack.quiesce()  # the test checks alone from here
    lock_key = account_lock_key("main", prefix=stack.rt.prefix)
    writer = stack.rt.writer
    buffered_while: list[bool] = []
    real_buffer = writer.buffer

    def buffer(events, monitors):
        buffered_while.append(bool(stack.rt.redis.exists(lock_key)))
        return real_buffer(events, monitors)

    monkeypatch.setattr(writer, "buffer", buffer)
    stack.prices(BTCUSDT="59990")  # the first entry fills: the check sets the stop
    result = run_check(stack.rt, "main", [m.id])
    assert result.changed == 1
    assert buffered_while == [False]  # buffered once, with the account free
    stack.flush()
    assert stack.db_monitor(m.id).version == stack.monitor(m.id).version
