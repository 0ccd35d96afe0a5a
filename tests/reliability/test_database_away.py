"""The database away when a check sees a critical event: the check cannot commit it, hands it to the
persist queue, and the persist worker commits it once the database is back."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tests.integration.pipeline.plans import conservative_long

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_critical_events_reach_the_database_through_the_queue_when_the_check_cannot_commit(stack, caplog):
    caplog.set_level(logging.WARNING, logger="workers.recorder")
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.prices(BTCUSDT="58900")
    stack.wait(lambda: stack.stop_trigger(m.id) is not None, what="the stop placed")
    path = stack.settings.database_dsn.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None, timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")  # no other writer gets in: the database is away for writes
    try:
        stack.prices(BTCUSDT="62100")  # TP1 fills: tp_hit and breakeven_moved are due
        stack.wait(
            lambda: "handed to the persist queue" in caplog.text,
            timeout=60,
            what="the check to give its critical events to the queue",
        )
    finally:
        blocker.rollback()
        blocker.close()

    def kinds() -> set[str]:
        return {e.kind for e in stack.events(m.id)}

    stack.wait(lambda: {"tp_hit", "breakeven_moved"} <= kinds(), timeout=60, what="the events committed")
