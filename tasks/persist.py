"""Persistence tasks: critical events committed before the message is acked; the periodic flush."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy.exc import SQLAlchemyError

from core.codec import event_from_dict
from persistence.records import BadRecord, MonitorRecord
from workers.notifiers import notifiers_from, pooled_session
from workers.quarantine import Refused, check_record, quarantine
from workers.ttl_cache import invalidate_accounts_quietly

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    from tasks.app import runtime

    @app.task(
        shared=False,
        name="tpsl.persist_critical",
        bind=True,
        max_retries=None,
        soft_time_limit=20,
        time_limit=30,
    )
    def persist_critical(self: Any, events: list[dict[str, Any]], monitors: list[dict[str, Any]]) -> int:
        rt = runtime(app)
        records, refused = _checked_records(rt, monitors)
        events = [e for e in events if e.get("monitor_id") not in refused]
        try:
            written = rt.writer.write_critical([event_from_dict(e) for e in events], records)
            # the dashboard's history reads see the committed events from now on
            invalidate_accounts_quietly(rt, {e["account"] for e in events})
            return written
        except SQLAlchemyError as e:
            # the database is away: keep the events (a retry is a new message, published before ack)
            delay = min(60, 2 ** min(self.request.retries, 6))
            log.warning("critical events not written (%s); retrying in %d s", type(e).__name__, delay)
            raise self.retry(exc=e, countdown=delay) from None

    @app.task(shared=False, name="tpsl.flush", soft_time_limit=50, time_limit=60)
    def flush() -> dict[str, int]:
        result = runtime(app).writer.flush()
        return {"monitors": result.monitors, "events": result.events, "transactions": result.transactions}

    @app.task(shared=False, name="tpsl.alert", bind=True, max_retries=5, soft_time_limit=20, time_limit=30)
    def alert(self: Any, event: dict[str, Any]) -> int:
        rt = runtime(app)
        session = _session()
        sent = 0
        for notifier in notifiers_from(rt.settings, session):
            try:
                notifier.send(event)
                sent += 1
            except Exception as e:
                log.warning("alert through %r failed: %s", notifier, e)
                raise self.retry(countdown=min(300, 5 * 2**self.request.retries)) from None
        return sent


def _checked_records(rt: Runtime, monitors: list[dict[str, Any]]) -> tuple[list[MonitorRecord], set[Any]]:
    """The records of a message, each decoded and its plan re-validated (a message is not trusted
    for having been sent by a worker); those that fail are quarantined. (records, refused ids)."""
    records: list[MonitorRecord] = []
    refused: set[Any] = set()
    for m in monitors:
        mid = m.get("id") if isinstance(m, dict) else None
        try:
            record = MonitorRecord.from_dict(m)
            check_record(rt, record)
        except (BadRecord, Refused) as exc:  # its own columns, or its monitor
            refused.add(mid)
            quarantine(rt, mid, m.get("account") if isinstance(m, dict) else None, exc, source="persist")
            continue
        records.append(record)
    return records, refused


_SESSION = None
_SESSION_LOCK = threading.Lock()


def _session() -> Any:
    """The process's alert session (one, whichever thread of the threads pool asks first)."""
    global _SESSION
    if _SESSION is None:
        with _SESSION_LOCK:
            if _SESSION is None:
                _SESSION = pooled_session()
    return _SESSION
