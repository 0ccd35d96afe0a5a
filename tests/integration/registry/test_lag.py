"""Latency histograms: bucket arithmetic (pure) and per-tier percentiles over a window (Redis)."""

from __future__ import annotations

import math

import pytest

from core.models import Tier
from workers.lag import (
    CHECK_LAG,
    GROWTH,
    MAX_BUCKET,
    Histogram,
    LatencyRecorder,
    bucket_of,
    bucket_upper,
)
from workers.registry import Claimed


@pytest.mark.parametrize("value", [0.0011, 0.0015, 0.01, 0.0999, 0.5, 1.0, 2.0, 12.0, 59.9, 3600.0])
def test_a_value_lies_in_its_bucket(value: float) -> None:
    b = bucket_of(value)
    assert bucket_upper(b - 1) < value <= bucket_upper(b) * (1 + 1e-12)
    assert bucket_upper(b) <= value * GROWTH * (1 + 1e-12)  # at most 5 % above


def test_tiny_negative_and_huge_values_are_clamped() -> None:
    assert bucket_of(0.0) == bucket_of(-3.0) == bucket_of(0.001) == 0
    assert bucket_of(math.nan) == 0
    assert bucket_of(1e12) == MAX_BUCKET


def test_quantiles_of_an_empty_histogram_are_zero() -> None:
    assert Histogram().p50_s == 0.0 and Histogram().mean_s == 0.0
    with pytest.raises(ValueError, match="q: must be in"):
        Histogram().quantile(0)


def test_percentiles_and_counts_per_tier(redis_client) -> None:
    rec = LatencyRecorder(redis_client)
    rec.record_many(CHECK_LAG, [("critical", 0.01 * i) for i in range(1, 101)], now=1000.0)
    rec.record_many(CHECK_LAG, [("standard", 2.0)] * 9 + [("standard", 8.0)], now=1003.0)
    rec.record(CHECK_LAG, "standard", 0.25, now=1004.0)

    got = rec.summaries(CHECK_LAG, now=1005.0, window_s=60)
    assert set(got) == {"critical", "standard"}
    crit = got["critical"]
    assert crit.count == 100
    assert crit.mean_s == pytest.approx(0.505)
    assert 0.50 <= crit.p50_s <= 0.50 * GROWTH
    assert 0.99 <= crit.p99_s <= 0.99 * GROWTH
    std = got["standard"]
    assert std.count == 11
    assert 2.0 <= std.p50_s <= 2.0 * GROWTH
    assert 8.0 <= std.p99_s <= 8.0 * GROWTH
    assert rec.summary(CHECK_LAG, "idle", now=1005.0).count == 0


def test_window_leaves_old_samples_out(redis_client) -> None:
    rec = LatencyRecorder(redis_client, slot_s=10)
    rec.record("reaction", "all", 9.0, now=500.0)  # long ago
    rec.record("reaction", "all", 0.2, now=995.0)
    rec.record("reaction", "all", 0.3, now=1001.0)
    recent = rec.summary("reaction", "all", now=1005.0, window_s=60)
    assert recent.count == 2
    assert recent.p99_s < 1.0
    assert rec.summary("reaction", "all", now=1005.0, window_s=600).count == 3
    assert 0 < redis_client.ttl("tpsl:lat:reaction:all:100") <= 3600 + 10


def test_record_lags_counts_due_claims_per_tier_not_ride_alongs(redis_client) -> None:
    rec = LatencyRecorder(redis_client)
    claimed = [
        Claimed("m1", "main", Tier.CRITICAL, 99.0, 1.0),
        Claimed("m2", "main", Tier.CRITICAL, 99.5, 0.5),
        Claimed("m3", "main", Tier.IDLE, 80.0, 20.0),
        Claimed("m4", "main", Tier.STANDARD, 100.5, 0.0, ride_along=True),
    ]
    assert rec.record_lags(claimed, now=100.0) == 3
    got = rec.summaries(CHECK_LAG, now=100.0, window_s=60)
    assert {k: v.count for k, v in got.items()} == {"critical": 2, "idle": 1}
    assert 20.0 <= got["idle"].p50_s <= 21.0
    assert rec.labels(CHECK_LAG) == ["critical", "idle"]


def test_bad_names_and_values_are_refused(redis_client) -> None:
    rec = LatencyRecorder(redis_client)
    with pytest.raises(ValueError, match="metric: must be a non-empty string"):
        rec.record("check lag", "critical", 1.0, now=1.0)
    with pytest.raises(ValueError, match="label: must be a non-empty string"):
        rec.record(CHECK_LAG, "", 1.0, now=1.0)
    with pytest.raises(ValueError, match="value_s: must be a finite number"):
        rec.record(CHECK_LAG, "critical", math.inf, now=1.0)
    with pytest.raises(ValueError, match="window_s: must be > 0"):
        rec.summaries(CHECK_LAG, now=1.0, window_s=0)
