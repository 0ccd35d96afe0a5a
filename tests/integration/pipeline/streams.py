"""What the stream side of a test stack shows: the pushed prices and the reads the view served."""

from __future__ import annotations

from decimal import Decimal

from workers.checker import read_counts
from workers.stream_prices import StreamPrices


def pushed_mark(stack, symbol: str) -> Decimal | None:
    """The mark the ticker stream last wrote for `symbol`, None when it holds none (or stopped)."""
    held = StreamPrices(stack.rt.redis, prefix=stack.rt.prefix).all().get(symbol)
    return held[0].mark_price if held else None


def view_reads(stack) -> int:
    """Account reads the stream view served (no REST call), every account."""
    return sum(read_counts(stack.rt)["view_reads"].values())
