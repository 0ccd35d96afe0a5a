"""The event writer: critical events committed at once, the rest coalesced in Redis and flushed.

- `write_critical(events, monitors)`: one transaction — events inserted (a duplicate id is ignored),
  monitor rows upserted under the version guard — committed before it returns (the Celery task acks
  after that), so a critical event is never only in memory.
- `buffer(events, monitors)`: non-critical events and monitor rows go to the Redis pending hash,
  last write wins per monitor (an older version arriving late changes nothing).
- `flush()`: takes the pending hash atomically and writes it in ONE transaction; on failure gives the
  entries back (newer pending entries win) and re-raises, so the next flush writes them.
- `write(events, monitors, sync=...)`: routes each part; `sync=True` (the `sync_saves` rollback
  switch) writes everything at once, one transaction per call.

Counters go to Redis (`persistence.stats`). The writer is safe to share between threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Engine

from config import keys
from core.models import Event
from persistence import stats as counters
from persistence.db import write_transaction
from persistence.pending import PendingStore, Taken, encode_entry
from persistence.records import BadRecord, MonitorRecord
from persistence.stats import persist_stats
from persistence.upserts import event_row, insert_events, monitor_row, upsert_monitors

log = logging.getLogger(__name__)

__all__ = ["EventWriter", "FlushResult", "WriteResult", "persist_stats"]


@dataclass(frozen=True, slots=True)
class FlushResult:
    monitors: int  # monitor rows inserted or updated
    events: int  # events newly inserted
    transactions: int  # database transactions (0 when there was nothing to flush, else 1)
    entries: int = 0  # pending entries (one per monitor) taken and written


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int  # events newly inserted now
    buffered: int  # pending entries changed (non-critical path)


Row = dict[str, Any]


def _rows(events: Sequence[Event], monitors: Sequence[MonitorRecord]) -> tuple[list[Row], list[Row]]:
    """Database rows of events and monitor records, every field checked (BadRecord names the bad one)."""
    for m in monitors:
        if not isinstance(m, MonitorRecord):
            raise BadRecord("monitors", f"expected MonitorRecord items, got {type(m).__name__}")
    return [event_row(e) for e in events], [monitor_row(m) for m in monitors]


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        redis_client: redis.Redis,
        *,
        prefix: str = keys.PREFIX,
        lease_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`lease_s`: how long a flusher owns the entries it took; after that a later flush treats
        them as left behind by a dead flusher and writes them. Keep it above the flush task's time
        limit."""
        self.engine = engine
        self.redis = redis_client
        self.prefix = prefix
        self.clock = clock
        self.pending = PendingStore(redis_client, prefix=prefix, lease_s=lease_s)

    # ------------------------------------------------------------------------------ critical path

    def write_critical(self, events: Sequence[Event], monitors: Sequence[MonitorRecord]) -> int:
        """Insert `events` and upsert `monitors` in one committed transaction. Returns the events
        newly inserted (duplicates of stored ids are ignored)."""
        event_rows, monitor_rows = _rows(events, monitors)
        return self._write_now(event_rows, monitor_rows)

    def _write_now(self, event_rows: list[Row], monitor_rows: list[Row]) -> int:
        if not event_rows and not monitor_rows:
            return 0
        with write_transaction(self.engine) as conn:
            inserted = insert_events(conn, event_rows)
            written = upsert_monitors(conn, monitor_rows)
        n_critical = sum(1 for r in event_rows if r["critical"])
        counters.add(
            self.redis,
            self.prefix,
            {
                counters.RECEIVED_CRITICAL: n_critical,
                counters.RECEIVED_NONCRITICAL: len(event_rows) - n_critical,
                counters.EVENTS_WRITTEN: inserted,
                counters.MONITOR_ROWS_WRITTEN: written,
                counters.TRANSACTIONS: 1,
            },
        )
        return inserted

    # -------------------------------------------------------------------------- coalesced path

    def buffer(self, events: Sequence[Event], monitors: Sequence[MonitorRecord]) -> int:
        """Put non-critical events and monitor rows in the pending hash: per monitor, the newest
        row and the newest event are kept. Returns the pending entries changed."""
        event_rows, monitor_rows = _rows(events, monitors)
        for row in event_rows:
            if row["critical"]:
                raise BadRecord("event.kind", f"{row['kind']} is critical: write it with write_critical")
        return self._buffer(event_rows, monitor_rows)

    def _buffer(self, event_rows: list[Row], monitor_rows: list[Row]) -> int:
        if not event_rows and not monitor_rows:
            return 0
        newest_event: dict[str, Row] = {}
        for row in event_rows:
            seen = newest_event.get(row["monitor_id"])
            if seen is None or (row["monitor_version"], row["at"]) >= (seen["monitor_version"], seen["at"]):
                newest_event[row["monitor_id"]] = row
        newest_monitor: dict[str, Row] = {}
        for row in monitor_rows:
            seen = newest_monitor.get(row["id"])
            if seen is None or row["version"] >= seen["version"]:
                newest_monitor[row["id"]] = row
        ids = sorted(newest_event.keys() | newest_monitor.keys())
        entries = [(mid, encode_entry(newest_monitor.get(mid), newest_event.get(mid))) for mid in ids]
        return self.pending.put(entries, count=(counters.RECEIVED_NONCRITICAL, len(event_rows)))

    def flush(self) -> FlushResult:
        """Write everything pending in one transaction. On failure the taken entries are merged
        back into the pending hash (without replacing newer ones) and the error is re-raised."""
        taken = self.pending.take(self.clock())
        if not taken.keys:
            return FlushResult(0, 0, 0, 0)
        event_rows = [e.event for e in taken.entries if e.event is not None]
        monitor_rows = [e.monitor for e in taken.entries if e.monitor is not None]
        inserted = 0
        written = 0
        transactions = 0
        try:
            if event_rows or monitor_rows:
                with write_transaction(self.engine) as conn:
                    inserted = insert_events(conn, event_rows)
                    written = upsert_monitors(conn, monitor_rows)
                transactions = 1
        except BaseException:
            self._give_back(taken)
            raise
        try:
            self.pending.done(taken)
        except redis.RedisError as exc:  # written already; the lease makes a later flush redo it
            log.warning("flush written but its processing keys were not released: %s", exc)
        result = FlushResult(written, inserted, transactions, len(taken.entries))
        counters.add(
            self.redis,
            self.prefix,
            {
                counters.EVENTS_WRITTEN: result.events,
                counters.MONITOR_ROWS_WRITTEN: result.monitors,
                counters.TRANSACTIONS: transactions,
                counters.FLUSHES: transactions,
                counters.ENTRIES_FLUSHED: result.entries,
            },
        )
        if result.entries:
            log.info(
                "flushed %d pending entries: %d events, %d monitor rows, %d transaction(s)",
                result.entries,
                result.events,
                result.monitors,
                transactions,
            )
        return result

    def _give_back(self, taken: Taken) -> None:
        try:
            n = self.pending.give_back(taken)
        except redis.RedisError as exc:  # the lease hands them to a later flush
            log.error("flush failed and its entries could not be given back yet: %s", exc)
            n = 0
        else:
            log.warning("flush failed: %d entries are pending again for the next flush", n)
        counters.add(self.redis, self.prefix, {counters.FLUSH_FAILURES: 1, counters.ENTRIES_GIVEN_BACK: n})

    # -------------------------------------------------------------------------------- routing

    def write(self, events: Sequence[Event], monitors: Sequence[MonitorRecord], *, sync: bool) -> WriteResult:
        """Critical events and the monitors they belong to are written now; the rest is buffered.
        `sync=True` writes everything now in one transaction (no coalescing). Every event and record
        is checked before anything is written."""
        event_rows, monitor_rows = _rows(events, monitors)
        if sync:
            return WriteResult(self._write_now(event_rows, monitor_rows), 0)
        critical = [r for r in event_rows if r["critical"]]
        now_ids = {r["monitor_id"] for r in critical}
        written = (
            self._write_now(critical, [m for m in monitor_rows if m["id"] in now_ids]) if critical else 0
        )
        buffered = self._buffer(
            [r for r in event_rows if not r["critical"]], [m for m in monitor_rows if m["id"] not in now_ids]
        )
        return WriteResult(written, buffered)

    # --------------------------------------------------------------------------------- figures

    def stats(self) -> dict[str, Any]:
        return persist_stats(self.redis, prefix=self.prefix)

    def coalescing_ratio(self) -> float | None:
        """Events received per database transaction (None before the first transaction)."""
        return counters.coalescing_ratio(self.stats())
