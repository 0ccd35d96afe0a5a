"""Pure parts of the streams: the private URL's max_active_time."""

from __future__ import annotations

import pytest

from exchange.paper.streams import _max_active_time


@pytest.mark.parametrize(
    "query, expected",
    [
        (b"", 600.0),
        (b"max_active_time=45s", 45.0),
        (b"max_active_time=2m", 120.0),
        (b"max_active_time=90", 90.0),
        (b"max_active_time=5s", 30.0),  # Bybit's floor
        (b"max_active_time=20m", 600.0),  # and ceiling
        (b"max_active_time=soon", 600.0),  # unreadable: the default
        (b"other=1&max_active_time=1m", 60.0),
    ],
)
def test_max_active_time(query: bytes, expected: float) -> None:
    assert _max_active_time(query, 600.0) == expected
