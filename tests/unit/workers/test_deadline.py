"""The soft deadline of a task on a thread (workers/deadline.py) and the threads pool's watchdog
(tasks/time_limits.py): the task's own code stops at a safe point past its deadline; the watchdog
only logs, and never raises into the task's thread."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from tasks.time_limits import ThreadTimeLimits, limits_of
from workers import deadline
from workers.deadline import Deadline


class Clock:
    """A clock the test moves."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def on_a_thread(body: Any) -> dict[str, Any]:
    """Run `body(out)` on a thread of its own (as the threads pool runs a task); what it left in `out`,
    and the exception it ended with under "raised"."""
    out: dict[str, Any] = {"raised": None}

    def run() -> None:
        try:
            body(out)
        except BaseException as e:
            out["raised"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert not t.is_alive()
    return out


# ------------------------------------------------------------------------------------ the deadline


def test_a_deadline_passes_on_its_own_clock() -> None:
    clock = Clock()
    d = Deadline.after(5.0, clock, task="tpsl.check", task_id="t1")
    assert d.remaining() == 5.0 and not d.passed()
    d.check()
    clock.t += 4.9
    d.check()
    assert d.remaining() == pytest.approx(0.1)
    clock.t += 0.1
    assert d.passed() and d.remaining() == 0.0
    with pytest.raises(SoftTimeLimitExceeded, match=r"tpsl\.check\[t1\]: soft time limit passed"):
        d.check()


def test_without_a_deadline_nothing_stops() -> None:
    assert deadline.current() is None
    deadline.check()
    assert deadline.passed() is False
    assert deadline.remaining() is None
    assert deadline.bound(10.0) == 10.0


def test_the_running_deadline_is_the_one_checked_and_bounds_waits() -> None:
    clock = Clock()
    with deadline.running(Deadline.after(3.0, clock)) as d:
        assert deadline.current() is d
        assert deadline.remaining() == 3.0
        assert deadline.bound(10.0) == 3.0 and deadline.bound(1.0) == 1.0
        deadline.check()
        clock.t += 3.0
        assert deadline.passed() and deadline.bound(10.0) == 0.0
        with pytest.raises(SoftTimeLimitExceeded):
            deadline.check()
    assert deadline.current() is None
    deadline.check()


def test_a_nested_deadline_gives_back_the_outer_one() -> None:
    clock = Clock()
    outer, inner = Deadline.after(10.0, clock), Deadline.after(1.0, clock)
    with deadline.running(outer):
        with deadline.running(inner):
            assert deadline.current() is inner
        assert deadline.current() is outer


def test_each_thread_sees_only_its_own_deadline() -> None:
    clock = Clock()
    with deadline.running(Deadline.after(0.0, clock)):  # passed already, here
        seen = on_a_thread(lambda out: out.update(current=deadline.current(), passed=deadline.passed()))
        assert seen["current"] is None and seen["passed"] is False
        assert deadline.passed()


# ------------------------------------------------------------------------------ the threads pool


def test_a_task_on_a_thread_gets_its_deadline_and_stops_at_its_next_safe_point() -> None:
    clock = Clock()
    limits = ThreadTimeLimits(clock=clock)

    def task(out: dict[str, Any]) -> None:
        limits.start("t1", "tpsl.check", 20.0, 30.0)
        try:
            try:
                deadline.check()  # a safe point within the limit: goes on
                out["remaining"] = deadline.remaining()
                clock.t += 25.0  # one long call: nothing interrupts it
                limits.sweep()  # the watchdog looks meanwhile: it logs, it raises nothing here
                out["call done"] = True
                deadline.check()  # the next safe point: stops
                out["after the safe point"] = True
            finally:
                out["finally"] = True
        finally:
            limits.finish()
            out["deadline after"] = deadline.current()

    out = on_a_thread(task)
    assert out["remaining"] == 20.0
    assert out["call done"] is True
    assert isinstance(out["raised"], SoftTimeLimitExceeded)
    assert "after the safe point" not in out
    assert out["finally"] is True
    assert out["deadline after"] is None  # the thread's next task starts clean
    assert limits.running() == 0


def test_the_next_task_of_the_thread_has_its_own_deadline() -> None:
    clock = Clock()
    limits = ThreadTimeLimits(clock=clock)

    def two_tasks(out: dict[str, Any]) -> None:
        limits.start("t1", "tpsl.check", 1.0, 2.0)
        clock.t += 5.0
        out["first passed"] = deadline.passed()
        limits.finish()
        limits.start("t2", "tpsl.check", 1.0, 2.0)
        out["second passed"] = deadline.passed()
        deadline.check()
        limits.finish()

    out = on_a_thread(two_tasks)
    assert out["raised"] is None
    assert out["first passed"] is True and out["second passed"] is False


def test_the_watchdog_logs_the_soft_and_the_hard_limit_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limits = ThreadTimeLimits(clock=clock)
    caplog.set_level(logging.WARNING, logger="tasks.time_limits")
    started, release = threading.Event(), threading.Event()

    def task(out: dict[str, Any]) -> None:
        limits.start("abc-123", "tpsl.check", 20.0, 30.0)
        try:
            started.set()
            release.wait(10)
        finally:
            limits.finish()

    t = threading.Thread(target=on_a_thread, args=(task,))
    t.start()
    assert started.wait(10)
    try:
        assert limits.sweep() == 1020.0  # the next limit to watch: the soft one
        clock.t += 19.0
        limits.sweep()
        assert [r for r in caplog.records if r.name == "tasks.time_limits"] == []
        clock.t += 1.0
        assert limits.sweep() == 1030.0  # warned; the hard limit is next
        clock.t += 10.0
        assert limits.sweep() is None
        clock.t += 10.0
        limits.sweep()
        lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tasks.time_limits"]
        assert lines == [
            (
                logging.WARNING,
                "task tpsl.check[abc-123]: soft time limit exceeded; it stops at its next safe point",
            ),
            (
                logging.ERROR,
                "task tpsl.check[abc-123]: still running at its hard time limit; a thread cannot be "
                "killed (threads pool), it goes on until it returns",
            ),
        ]
        assert limits.running() == 1
    finally:
        release.set()
        t.join(10)
    assert limits.running() == 0


def test_the_watchdog_raises_nothing_into_a_task_past_its_soft_limit() -> None:
    """On the real clock: a task that sleeps (a call) well past its soft limit, while the watchdog
    thread runs, finishes its call; it stops only where it checks."""
    limits = ThreadTimeLimits(clock=time.monotonic)

    def task(out: dict[str, Any]) -> None:
        limits.start("t1", "tpsl.check", 0.1, 5.0)
        try:
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                time.sleep(0.01)
            out["call done"] = True
            deadline.check()
        finally:
            limits.finish()

    out = on_a_thread(task)
    assert out["call done"] is True
    assert isinstance(out["raised"], SoftTimeLimitExceeded)
    assert limits.running() == 0


def test_the_main_thread_is_left_to_celery() -> None:
    clock = Clock()
    limits = ThreadTimeLimits(clock=clock)
    limits.start("t1", "tpsl.check", 0.05, 0.1)
    try:
        assert limits.running() == 0  # prefork children and the solo pool run tasks on the main thread
        assert deadline.current() is None
        clock.t += 1.0
        deadline.check()
    finally:
        limits.finish()


def test_limits_come_from_the_message_then_the_task_then_the_app() -> None:
    task = SimpleNamespace(request=SimpleNamespace(timelimit=(30, 20)), soft_time_limit=40, time_limit=60)
    assert limits_of(task, 50, 60) == (20.0, 30.0)
    task.request.timelimit = None
    assert limits_of(task, 50, 60) == (40.0, 60.0)
    assert limits_of(SimpleNamespace(), 50, 60) == (50.0, 60.0)
    assert limits_of(SimpleNamespace(), None, None) == (None, None)
