"""Fixtures of the pipeline tests beyond the stack (tests/plugins/stack.py)."""

from __future__ import annotations

import pytest

from exchange.bybit.stream import StreamTiming
from tasks.stream import StreamWatch, publish_stream_check


@pytest.fixture
def watch(stack):
    """The stream process's work, in this test process: each account's private stream, pushes into
    the stream view and checks published to the stack's worker. Yields once every stream is up."""
    w = StreamWatch(stack.rt, lambda account: publish_stream_check(stack.app, account), timing=StreamTiming())
    w.start()
    try:
        stack.wait(lambda: all(h["connected"] for h in w.health().values()), what="private streams up")
        w.heartbeat()
        yield w
    finally:
        w.stop()
