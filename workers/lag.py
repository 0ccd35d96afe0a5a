"""Latency histograms in Redis, shared by every process: check lag per tier, reaction latency, ….

Compact: a sample is one `HINCRBY` on a fixed log-scale bucket. Buckets grow by 5 % from 1 ms
(bucket b holds values in (1 ms·1.05^(b−1), 1 ms·1.05^b]; bucket 0 holds everything ≤ 1 ms), so a
percentile read back is the upper bound of its bucket: at most 5 % above the true value.

Keys: `<p>:lat:<metric>:<label>:<slot>` is a hash per time slot (`slot_s`, 10 s by default) with
fields `b<bucket>` (count), `n` (count) and `sum` (seconds); each expires after `retention_s`.
`<p>:lat:<metric>:labels` is the set of labels seen. A window is read as the whole slots that
overlap it (so a 60 s window covers 60–70 s of samples). Time is a parameter (`now`, epoch s).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from redis import Redis

from config import keys

if TYPE_CHECKING:
    from workers.registry import Claimed

GROWTH = 1.05
MIN_S = 0.001
MAX_BUCKET = 400  # 1 ms × 1.05^400 ≈ 3·10^5 s; anything larger is counted here
_LOG_GROWTH = math.log(GROWTH)

CHECK_LAG = "check_lag"  # claim time − due time of due monitors, per tier
CHECK_START_LAG = "check_start_lag"  # check task start − due time of its earliest due monitor, per tier
REACTION = "reaction"  # fill on the exchange → first follow-up acknowledged (the stop), per kind of fill
REACTION_ALL = "reaction_all"  # fill on the exchange → every follow-up of the pass acknowledged
REACTION_SEEN = "reaction_seen"  # fill on the exchange → the check that saw it started its read
STREAM_LAG = "stream_lag"  # a push made on the exchange → handled by the stream process (private | ticker)


def bucket_of(value_s: float) -> int:
    """The bucket a value (seconds) is counted in."""
    if not value_s > MIN_S:  # also NaN and negatives (clock skew): the lowest bucket
        return 0
    b = math.ceil(math.log(value_s / MIN_S) / _LOG_GROWTH - 1e-9)
    return min(max(b, 1), MAX_BUCKET)


def bucket_upper(b: int) -> float:
    """The largest value counted in bucket `b`, seconds."""
    return MIN_S * GROWTH**b


@dataclass(frozen=True, slots=True)
class Histogram:
    """Samples of one metric and label over a window."""

    counts: Mapping[int, int] = field(default_factory=dict)  # bucket → samples
    count: int = 0
    total_s: float = 0.0

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (0 < q ≤ 1) as its bucket's upper bound, seconds; 0.0 when empty."""
        if not 0 < q <= 1:
            raise ValueError(f"q: must be in (0, 1] (got {q!r})")
        if not self.count:
            return 0.0
        rank = math.ceil(q * self.count)
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return bucket_upper(b)
        return bucket_upper(max(self.counts))

    @property
    def p50_s(self) -> float:
        return self.quantile(0.50)

    @property
    def p99_s(self) -> float:
        return self.quantile(0.99)


def _name(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c == ":" for c in value):
        raise ValueError(f"{field_name}: must be a non-empty string without spaces or ':' (got {value!r})")
    return value


class LatencyRecorder:
    """`LatencyRecorder(redis).record_many("check_lag", [("critical", 0.12), …], now=t)`."""

    def __init__(
        self,
        redis_client: Redis,
        *,
        prefix: str = keys.PREFIX,
        slot_s: float = 10.0,
        retention_s: float = 3600.0,
    ) -> None:
        if not (0 < slot_s <= retention_s < math.inf):
            raise ValueError(f"slot_s: must be > 0 and <= retention_s (got {slot_s!r}, {retention_s!r})")
        self.redis = redis_client
        self.prefix = prefix
        self.slot_s = float(slot_s)
        self.retention_s = float(retention_s)

    def _key(self, metric: str, label: str, slot: int) -> str:
        return keys.latency(self.prefix, metric, label, slot)

    def _labels_key(self, metric: str) -> str:
        return keys.latency_labels(self.prefix, metric)

    def _slot(self, t: float) -> int:
        return math.floor(t / self.slot_s)

    # -------------------------------------------------------------------------------------- write

    def record(self, metric: str, label: str, value_s: float, *, now: float) -> None:
        self.record_many(metric, [(label, value_s)], now=now)

    def record_many(self, metric: str, samples: Iterable[tuple[str, float]], *, now: float) -> None:
        """Count samples (label, seconds) at time `now`: one round trip, one HINCRBY per distinct
        (label, bucket)."""
        metric = _name("metric", metric)
        slot = self._slot(now)
        buckets: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        sums: dict[str, float] = defaultdict(float)
        for label, value in samples:
            _name("label", label)
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"value_s: must be a finite number of seconds (got {value!r})")
            buckets[label][bucket_of(v)] += 1
            sums[label] += max(v, 0.0)
        if not buckets:
            return
        ttl = math.ceil(self.retention_s + self.slot_s)
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self._labels_key(metric), *buckets)
        pipe.expire(self._labels_key(metric), ttl)
        for label, counts in buckets.items():
            key = self._key(metric, label, slot)
            for b, n in counts.items():
                pipe.hincrby(key, f"b{b}", n)
            pipe.hincrby(key, "n", sum(counts.values()))
            pipe.hincrbyfloat(key, "sum", sums[label])
            pipe.expire(key, ttl)
        pipe.execute()

    def record_lags(self, claimed: Iterable[Claimed], *, now: float) -> int:
        """Record the check lag of claimed monitors (`workers.registry.Claimed`) per tier; ride-alongs
        (early by design) are left out. Returns how many were recorded."""
        samples = [(c.tier.value, c.lag_s) for c in claimed if not c.ride_along]
        self.record_many(CHECK_LAG, samples, now=now)
        return len(samples)

    # --------------------------------------------------------------------------------------- read

    def labels(self, metric: str) -> list[str]:
        labels = self.redis.smembers(self._labels_key(_name("metric", metric)))
        return sorted(cast("set[str]", labels))  # the client decodes responses

    def summary(self, metric: str, label: str, *, now: float, window_s: float = 300.0) -> Histogram:
        return self.summaries(metric, now=now, window_s=window_s, labels=[label])[label]

    def summaries(
        self,
        metric: str,
        *,
        now: float,
        window_s: float = 300.0,
        labels: Iterable[str] | None = None,
    ) -> dict[str, Histogram]:
        """Histogram per label over the last `window_s` (whole slots), one round trip for the data.
        Labels default to every label recorded."""
        metric = _name("metric", metric)
        if not (0 < window_s <= self.retention_s):
            raise ValueError(
                f"window_s: must be > 0 and <= retention_s {self.retention_s} (got {window_s!r})"
            )
        names = self.labels(metric) if labels is None else [_name("label", x) for x in labels]
        slots = range(self._slot(now - window_s), self._slot(now) + 1)
        pipe = self.redis.pipeline(transaction=False)
        for label in names:
            for slot in slots:
                pipe.hgetall(self._key(metric, label, slot))
        replies = iter(pipe.execute()) if names else iter(())
        out: dict[str, Histogram] = {}
        for label in names:
            counts: dict[int, int] = defaultdict(int)
            n = 0
            total = 0.0
            for _ in slots:
                for k, v in next(replies).items():
                    f = k
                    if f == "n":
                        n += int(v)
                    elif f == "sum":
                        total += float(v)
                    elif f.startswith("b"):
                        counts[int(f[1:])] += int(v)
            out[label] = Histogram(dict(counts), n, total)
        return out
