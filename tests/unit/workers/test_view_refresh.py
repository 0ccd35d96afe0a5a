"""When a stream view is due its background refresh (pure)."""

from __future__ import annotations

import pytest

from workers.position_index import key_of, parse_key
from workers.view_refresh import is_due, refresh_every_s


@pytest.mark.parametrize(
    ("age_s", "due"),
    [
        (0.0, False),
        (44.9, False),
        (45.0, False),  # exactly three quarters of stream_reconcile_s: not yet
        (45.1, True),
        (59.0, True),
        (1e9, True),  # never reconciled (reconciled_at 0)
    ],
)
def test_a_view_is_due_past_three_quarters_of_its_reconcile_period(age_s, due):
    assert is_due(1_000_000.0 - age_s, 1_000_000.0, 60.0) is due


def test_beat_asks_eight_times_per_reconcile_period():
    # a view found due within an eighth after three quarters of its period is refreshed before a
    # check finds it too old, with an eighth left for the read itself
    assert refresh_every_s(60.0) == 7.5
    assert 60.0 * 3 / 4 + refresh_every_s(60.0) < 60.0


@pytest.mark.parametrize(
    ("key", "position"),
    [
        (key_of("BTCUSDT", 0), ("BTCUSDT", 0)),
        (key_of("ETHUSDT", 2), ("ETHUSDT", 2)),
        ("BTCUSDT", None),
        ("BTCUSDT|", None),
        ("|1", None),
        ("BTCUSDT|x", None),
    ],
)
def test_a_divergence_names_its_position_by_the_index_key(key, position):
    assert parse_key(key) == position
