"""Where a pass's events and changed monitors go.

- critical events → committed to the database by the check itself (`commit_critical`), before the
  monitor state that consumed them is saved in Redis: a check killed before that commit leaves the
  old state, so the next check sees the same facts and makes the same events (same ids) again; a
  check killed after it has nothing left to lose. No queue, no visibility timeout, no Redis
  durability stands between a fill and its row. Then the rows of their monitors, committed after
  the save. With the database away, both go to the `persist` queue (a persist worker retries and
  acks only after its commit);
- everything else → the coalescing buffer in Redis (last write wins per monitor), flushed in one
  transaction at most `coalesce_window_s` later;
- `sync_saves` (rollback switch): every event written now, one transaction each;
- critical events and alert-flagged ones → the `alerts` queue, when a notifier is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from core.codec import event_to_dict
from core.models import Event, Monitor
from workers.store import record_of
from workers.ttl_cache import invalidate_accounts_quietly

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """How events leave a process: Celery queues in workers, direct writes elsewhere."""

    def persist_critical(self, events: list[dict[str, Any]], monitors: list[dict[str, Any]]) -> None: ...

    def alert(self, event: dict[str, Any]) -> None: ...


def needs_alert(e: Event) -> bool:
    return e.critical or bool(e.payload.get("alert"))


class DirectPublisher:
    """For processes without a broker consumer (CLI, tests): writes and notifies in-line."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def persist_critical(self, events: list[dict[str, Any]], monitors: list[dict[str, Any]]) -> None:
        from core.codec import event_from_dict
        from persistence.records import MonitorRecord

        self.rt.writer.write_critical(
            [event_from_dict(e) for e in events], [MonitorRecord.from_dict(m) for m in monitors]
        )

    def alert(self, event: dict[str, Any]) -> None:
        log.info("alert: %s %s", event.get("kind"), event.get("monitor_id"))


class Recorder:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def commit_critical(self, events: Sequence[Event]) -> None:
        """Commit the critical events among `events` now (before the state that consumed them is
        saved). The database away: they are handed to the persist queue instead."""
        if self.rt.settings.sync_saves:
            return  # `record` writes every event at once anyway
        critical = [e for e in events if e.critical]
        if not critical:
            return
        try:
            self.rt.writer.write_critical(critical, [])
        except SQLAlchemyError as exc:
            log.warning(
                "%d critical events not committed by the check (%s); handed to the persist queue",
                len(critical),
                type(exc).__name__,
            )
            self.publisher.persist_critical([event_to_dict(e) for e in critical], [])

    @property
    def publisher(self) -> Publisher:
        return self.rt.publisher or DirectPublisher(self.rt)

    def _commit(self, events: Sequence[Event], rows: Sequence[Any]) -> None:
        try:
            self.rt.writer.write_critical(events, rows)
        except SQLAlchemyError as exc:
            log.warning("critical rows not committed (%s); handed to the persist queue", type(exc).__name__)
            self.publisher.persist_critical([event_to_dict(e) for e in events], [r.to_dict() for r in rows])

    def record(
        self, events: Sequence[Event], monitors: Iterable[Monitor], *, committed: bool = False
    ) -> None:
        """`committed`: the critical events were committed by `commit_critical` already; only the
        rows of their monitors are left to write."""
        by_id = {m.id: m for m in monitors}
        if not events and not by_id:
            return
        writer = self.rt.writer
        if self.rt.settings.sync_saves:
            # the plain behaviour: every event saved at once, each in its own transaction with its
            # monitor's row; a monitor that changed without an event is saved too
            for e in events:
                m = by_id.get(e.monitor_id)
                writer.write_critical([e], [record_of(m)] if m is not None else [])
            quiet = {e.monitor_id for e in events}
            for mid, m in by_id.items():
                if mid not in quiet:
                    writer.write_critical([], [record_of(m)])
        else:
            critical = [e for e in events if e.critical]
            if critical:
                ids = {e.monitor_id for e in critical}
                rows = [record_of(by_id[i]) for i in ids if i in by_id]
                self._commit([] if committed else critical, rows)
            rest = [e for e in events if not e.critical]
            if rest or by_id:
                writer.buffer(rest, [record_of(m) for m in by_id.values()])
        # a fill, a stop move or a close changes the account's positions and orders: the dashboard
        # must not serve its cached copies of them
        invalidate_accounts_quietly(self.rt, {e.account for e in events if e.critical})
        if not self.rt.settings.notifies:
            return  # no notifier: an alert task would find nowhere to send it
        for e in events:
            if needs_alert(e):
                self.publisher.alert(event_to_dict(e))
