"""When a stream view is due its background refresh (pure)."""

from __future__ import annotations

import pytest

from workers.view_refresh import is_due, refresh_every_s


@pytest.mark.parametrize(
    ("age_s", "due"),
    [
        (0.0, False),
        (29.9, False),
        (30.0, False),  # exactly half of stream_reconcile_s: not yet
        (30.1, True),
        (59.0, True),
        (1e9, True),  # never reconciled (reconciled_at 0)
    ],
)
def test_a_view_is_due_past_half_of_its_reconcile_period(age_s, due):
    assert is_due(1_000_000.0 - age_s, 1_000_000.0, 60.0) is due


def test_beat_asks_four_times_per_reconcile_period():
    # a view found due within a quarter after half its period is refreshed before a check finds it
    # too old, with a quarter left for the read itself
    assert refresh_every_s(60.0) == 15.0
    assert 60.0 / 2 + refresh_every_s(60.0) < 60.0
