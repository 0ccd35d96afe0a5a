"""The threads pool's soft time limit (tasks/time_limits.py): a task past it gets SoftTimeLimitExceeded
in its own thread, and runs its `finally`; a task that ends in time is never hit, not even later."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from celery.exceptions import SoftTimeLimitExceeded

from tasks.time_limits import ThreadTimeLimits, limits_of


def run_in_thread(limits: ThreadTimeLimits, soft_s: float, work_s: float, after_s: float = 0.0) -> dict:
    """A "task" of `work_s` seconds (short sleeps, as a task between calls) under a soft limit; then
    `after_s` seconds of the same thread's life after it ended. What happened, in a dict."""
    out: dict = {"raised": None, "finally": False, "after": None}

    def body() -> None:
        limits.start("t1", "tpsl.check", soft_s, soft_s * 2)
        try:
            try:
                end = time.monotonic() + work_s
                while time.monotonic() < end:
                    time.sleep(0.01)
            finally:
                out["finally"] = True
        except SoftTimeLimitExceeded as e:
            out["raised"] = e
        finally:
            limits.finish()
        try:
            end = time.monotonic() + after_s
            while time.monotonic() < end:
                time.sleep(0.01)
            out["after"] = "quiet"
        except SoftTimeLimitExceeded as e:  # must never happen: the task was over
            out["after"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join(10)
    assert not t.is_alive()
    return out


def test_a_task_past_its_soft_limit_gets_the_exception_in_its_thread() -> None:
    limits = ThreadTimeLimits()
    t0 = time.monotonic()
    out = run_in_thread(limits, soft_s=0.2, work_s=5.0)
    assert isinstance(out["raised"], SoftTimeLimitExceeded)
    assert out["finally"] is True  # its finally blocks ran (an account lock is released there)
    assert time.monotonic() - t0 < 4.0  # stopped at the limit, not after its 5 s of work
    assert limits.running() == 0


def test_a_task_within_its_limit_is_never_hit_even_after_it_ended() -> None:
    limits = ThreadTimeLimits()
    out = run_in_thread(limits, soft_s=0.3, work_s=0.05, after_s=0.6)
    assert out["raised"] is None and out["after"] == "quiet"
    assert limits.running() == 0


def test_the_main_thread_is_left_to_celery() -> None:
    limits = ThreadTimeLimits()
    limits.start("t1", "tpsl.check", 0.05, 0.1)
    try:
        assert limits.running() == 0  # prefork children and the solo pool run tasks on the main thread
        time.sleep(0.2)
    finally:
        limits.finish()


def test_limits_come_from_the_message_then_the_task_then_the_app() -> None:
    task = SimpleNamespace(request=SimpleNamespace(timelimit=(30, 20)), soft_time_limit=40, time_limit=60)
    assert limits_of(task, 50, 60) == (20.0, 30.0)
    task.request.timelimit = None
    assert limits_of(task, 50, 60) == (40.0, 60.0)
    assert limits_of(SimpleNamespace(), 50, 60) == (50.0, 60.0)
    assert limits_of(SimpleNamespace(), None, None) == (None, None)
