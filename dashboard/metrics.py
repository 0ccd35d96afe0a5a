"""`/metrics`: Prometheus text, read from Redis at scrape time so the figures are fleet-wide.

A custom collector (no process-local counters): a scrape reads what all workers and web processes
wrote to Redis — the operations figures of `OpsStats.snapshot()` (computed at most every 2 s in the
fleet), the rate-limit buckets of the configured accounts, and this process's HTTP pool. Families
(all prefixed `tpsl_`):

| metric                                        | type    | labels            |
|-----------------------------------------------|---------|-------------------|
| cache_hits_total / cache_misses_total / cache_waits_total | counter | component |
| exchange_calls_last_minute / exchange_errors_last_minute  | gauge   | account, endpoint |
| exchange_calls_per_minute (fleet, last complete minute)   | gauge   |                   |
| ratelimit_tokens (bucket level at its last use)           | gauge   | account, group    |
| ratelimit_backoff_seconds (time left of a back-off)       | gauge   | account, group    |
| http_connection_reuse_ratio, http_attempts_total, http_new_connections_total | gauge/counter | process |
| persist_events_received_total, persist_transactions_total | counter |                   |
| persist_coalescing_ratio, persist_pending                 | gauge   |                   |
| check_lag_p50_seconds / check_lag_p99_seconds / check_lag_samples | gauge | tier     |
| reaction_latency_p50_seconds / _p99_seconds / _samples    | gauge   | label             |
| reaction_all_latency_p50_seconds / _p99_seconds / _samples | gauge  | label             |
| monitors                                                  | gauge   | tier              |
| queue_depth                                               | gauge   | queue             |
| scrape_errors (sections that failed this scrape)          | gauge   | section           |

The HTTP pool figures are this web process's own (each worker logs its pool in `tpsl.stats`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dashboard.stats import OpsStats

log = logging.getLogger(__name__)


class FleetCollector:
    """The collector behind /metrics. `ops`: the figures (OpsStats); `clock`: epoch seconds."""

    def __init__(self, ops: OpsStats, *, clock: Callable[[], float] = time.time) -> None:
        self.ops = ops
        self.rt = ops.rt
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration time

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        errors = GaugeMetricFamily(
            "tpsl_scrape_errors", "Sections of this scrape that failed.", labels=["section"]
        )
        try:
            figures: dict[str, Any] | None = self.ops.snapshot()
        except Exception as exc:
            log.warning("metrics: operations figures unavailable: %s", type(exc).__name__)
            figures = None
        sections: list[tuple[str, Callable[[dict[str, Any], float], list[Metric]]]] = [
            ("cache", self._cache),
            ("exchange", self._exchange),
            ("persistence", self._persistence),
            ("latency", self._latency),
            ("monitors", self._monitors),
            ("queues", self._queues),
        ]
        for name, section in sections:
            try:
                if figures is None:
                    raise RuntimeError("no figures")
                yield from section(figures, now)
                errors.add_metric([name], 0)
            except Exception as exc:
                log.warning("metrics section %s failed: %s", name, type(exc).__name__)
                errors.add_metric([name], 1)
        for name, live in (("ratelimit", self._ratelimit), ("pool", self._pool), ("streams", self._streams)):
            try:
                yield from live(now)
                errors.add_metric([name], 0)
            except Exception as exc:
                log.warning("metrics section %s failed: %s", name, type(exc).__name__)
                errors.add_metric([name], 1)
        yield errors

    # ------------------------------------------------------------------------------- sections

    def _cache(self, figures: dict[str, Any], now: float) -> list[Metric]:
        hits = CounterMetricFamily(
            "tpsl_cache_hits", "Dashboard cache hits, fleet-wide.", labels=["component"]
        )
        misses = CounterMetricFamily(
            "tpsl_cache_misses", "Dashboard cache misses (loader calls), fleet-wide.", labels=["component"]
        )
        waits = CounterMetricFamily(
            "tpsl_cache_waits", "Reads served after waiting for another loader.", labels=["component"]
        )
        for component, c in figures["cache"]["components"].items():
            hits.add_metric([component], c["hits"])
            misses.add_metric([component], c["misses"])
            waits.add_metric([component], c["waits"])
        return [hits, misses, waits]

    def _exchange(self, figures: dict[str, Any], now: float) -> list[Metric]:
        calls = GaugeMetricFamily(
            "tpsl_exchange_calls_last_minute",
            "Exchange calls in the last complete minute, fleet-wide.",
            labels=["account", "endpoint"],
        )
        errs = GaugeMetricFamily(
            "tpsl_exchange_errors_last_minute",
            "Failed exchange calls in the last complete minute, fleet-wide.",
            labels=["account", "endpoint"],
        )
        ex = figures["exchange_calls"]
        for field, n in ex["by_endpoint"].items():
            account, _, endpoint = field.partition("|")
            calls.add_metric([account, endpoint], n)
        for field, n in ex.get("errors_by_endpoint", {}).items():
            account, _, endpoint = field.partition("|")
            errs.add_metric([account, endpoint], n)
        per_minute = GaugeMetricFamily(
            "tpsl_exchange_calls_per_minute", "Exchange calls in the last complete minute, all accounts."
        )
        per_minute.add_metric([], ex["last_minute"])
        return [calls, errs, per_minute]

    def _ratelimit(self, now: float) -> list[Metric]:
        """Buckets of the configured accounts (exchange.bybit.ratelimit.bucket_levels)."""
        from exchange.bybit.ratelimit import bucket_levels

        tokens = GaugeMetricFamily(
            "tpsl_ratelimit_tokens",
            "Units left in the (account, endpoint group) rolling second at its last use.",
            labels=["account", "group"],
        )
        backoff = GaugeMetricFamily(
            "tpsl_ratelimit_backoff_seconds",
            "Seconds left of a rate-limit back-off (0 when none).",
            labels=["account", "group"],
        )
        # the buckets live under the default prefix (exchange.bybit.factory builds them so)
        for b in bucket_levels(self.rt.redis, self.rt.accounts, now=now):
            if b.units_left is not None:
                tokens.add_metric([b.account, b.group], b.units_left)
            if b.backoff_s is not None:
                backoff.add_metric([b.account, b.group], b.backoff_s)
        return [tokens, backoff]

    def _streams(self, now: float) -> list[Metric]:
        from workers.stream_view import stream_view

        view = stream_view(self.rt)
        if view is None:
            return []
        up = GaugeMetricFamily(
            "tpsl_stream_up",
            "1 while the account's private stream is up (the stream process).",
            labels=["account"],
        )
        age = GaugeMetricFamily(
            "tpsl_stream_reconciled_age_seconds",
            "Seconds since REST last reconciled the account's stream view.",
            labels=["account"],
        )
        div = CounterMetricFamily(
            "tpsl_stream_divergence",
            "Differences REST found that the pushes should have brought (lost pushes).",
            labels=["account"],
        )
        for account in sorted(self.rt.accounts):
            st = view.state(account)
            up.add_metric([account], 1 if st["up"] else 0)
            if st["reconciled_at"]:
                age.add_metric([account], max(0.0, now - st["reconciled_at"]))
            div.add_metric([account], st["divergences"])
        return [up, age, div]

    def _pool(self, now: float) -> list[Metric]:
        c = self.ops.connections()
        reuse = GaugeMetricFamily(
            "tpsl_http_connection_reuse_ratio",
            "Share of exchange requests sent on a reused connection (this process).",
            labels=["process"],
        )
        attempts = CounterMetricFamily(
            "tpsl_http_attempts", "Exchange HTTP attempts (this process).", labels=["process"]
        )
        new = CounterMetricFamily(
            "tpsl_http_new_connections", "New exchange connections opened (this process).", labels=["process"]
        )
        if c["reuse_rate"] is not None:
            reuse.add_metric(["web"], c["reuse_rate"])
        attempts.add_metric(["web"], c["attempts"])
        new.add_metric(["web"], c["new_connections"])
        return [reuse, attempts, new]

    def _persistence(self, figures: dict[str, Any], now: float) -> list[Metric]:
        p = figures["persistence"]
        received = CounterMetricFamily("tpsl_persist_events_received", "Events handed to persistence.")
        received.add_metric([], p["events_received"])
        tx = CounterMetricFamily("tpsl_persist_transactions", "Database transactions that wrote events/rows.")
        tx.add_metric([], p["transactions"])
        pending = GaugeMetricFamily("tpsl_persist_pending", "Coalesced entries waiting for the next flush.")
        pending.add_metric([], p["pending"])
        out: list[Metric] = [received, tx, pending]
        if p["coalescing_ratio"] is not None:
            ratio = GaugeMetricFamily("tpsl_persist_coalescing_ratio", "Events received per transaction.")
            ratio.add_metric([], p["coalescing_ratio"])
            out.append(ratio)
        return out

    def _latency(self, figures: dict[str, Any], now: float) -> list[Metric]:
        out: list[Metric] = []
        for key, name, label, what in (
            ("check_lag", "tpsl_check_lag", "tier", "Check lag (claim time - due time)"),
            (
                "reaction",
                "tpsl_reaction_latency",
                "label",
                "Reaction latency (fill to the first follow-up answered)",
            ),
            (
                "reaction_all",
                "tpsl_reaction_all_latency",
                "label",
                "Reaction latency (fill to every follow-up of the pass answered)",
            ),
        ):
            p50 = GaugeMetricFamily(f"{name}_p50_seconds", f"{what}, median over 5 min.", labels=[label])
            p99 = GaugeMetricFamily(
                f"{name}_p99_seconds", f"{what}, 99th percentile over 5 min.", labels=[label]
            )
            n = GaugeMetricFamily(f"{name}_samples", f"{what}: samples in the window.", labels=[label])
            for item, f in figures[key].items():
                p50.add_metric([item], f["p50_s"])
                p99.add_metric([item], f["p99_s"])
                n.add_metric([item], f["samples"])
            out.extend([p50, p99, n])
        return out

    def _monitors(self, figures: dict[str, Any], now: float) -> list[Metric]:
        g = GaugeMetricFamily("tpsl_monitors", "Live monitors scheduled in each tier.", labels=["tier"])
        for tier, n in figures["monitors"]["by_tier"].items():
            g.add_metric([tier], n)
        return [g]

    def _queues(self, figures: dict[str, Any], now: float) -> list[Metric]:
        g = GaugeMetricFamily("tpsl_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        for q, n in figures["queues"].items():
            g.add_metric([q], n)
        return [g]


def metrics_registry(ops: OpsStats) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(ops))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
