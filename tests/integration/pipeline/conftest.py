"""Fixtures of the pipeline tests beyond the stack (tests/plugins/stack.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def watch(stack):
    """The stack's stream process (tests/plugins/stack.py starts it): each account's private
    stream, the tickers of every monitored symbol, pushes into the stream view and prices, checks
    published to the stack's worker. Yields once every private stream is up."""
    w = stack.watch
    assert w is not None, "this test needs the stream process: do not opt out with stack_streams"
    stack.wait(lambda: all(h["connected"] for h in w.health().values()), what="private streams up")
    w.heartbeat()
    return w
