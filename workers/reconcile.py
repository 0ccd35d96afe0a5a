"""Reconcile: the registry (Redis), the database and the exchange agree again.

Run at worker start and by `tpsl reconcile`:
- open monitors the database knows but Redis lost (Redis flushed or replaced) are put back in the
  registry, due now in the critical tier: their next check reads each owned order's cumExecQty, so
  fills that happened while nothing ran become events like any other;
- a registry monitor older than its database row (Redis restored from an old copy) takes the row;
- registry monitors the database has never seen are written to it.
Idempotent; concurrent runs are serialised by a short Redis lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from core.codec import monitor_from_dict
from core.models import Phase, Tier
from persistence.db import session_factory
from persistence.queries import list_monitors
from workers.locks import lock as redis_lock
from workers.locks import release_quietly
from workers.position_index import PositionIndex
from workers.store import MonitorStore, encode, record_of

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    restored: int = 0  # put back into the registry from the database
    refreshed: int = 0  # registry copy older than the database: replaced
    persisted: int = 0  # registry monitors written to the database
    skipped: bool = False  # another reconcile was running


def reconcile(rt: Any) -> ReconcileReport:
    report = ReconcileReport()
    lock = redis_lock(rt.redis, f"{rt.prefix}:lock:reconcile", 120)
    if not lock.acquire(blocking=False):
        report.skipped = True
        return report
    try:
        _reconcile(rt, report)
    finally:
        release_quietly(lock)
    log.info(
        "reconcile: restored %d, refreshed %d, persisted %d",
        report.restored,
        report.refreshed,
        report.persisted,
    )
    return report


def _open_rows(rt: Any) -> list[Any]:
    rows: list[Any] = []
    with session_factory(rt.engine)() as session:
        offset = 0
        while True:
            page = list_monitors(session, open_only=True, limit=500, offset=offset)
            rows.extend(page)
            if len(page) < 500:
                return rows
            offset += 500


def _reconcile(rt: Any, report: ReconcileReport) -> None:
    store = MonitorStore(rt.registry)
    now = rt.clock()
    rows = {r.id: r for r in _open_rows(rt)}
    live = store.load_many(rt.registry.ids())
    for mid, row in rows.items():
        try:
            db_monitor = monitor_from_dict(row.state)
        except Exception:
            log.exception("reconcile: database state of %s is unreadable; skipped", mid)
            continue
        if db_monitor.phase is Phase.CLOSED:
            continue
        item = live.get(mid)
        if item is None:
            if rt.registry.add(mid, db_monitor.account, encode(db_monitor), Tier.CRITICAL, now):
                report.restored += 1
        elif item.monitor.version < db_monitor.version and rt.registry.save(
            mid, encode(db_monitor), expected_version=item.token
        ):
            rt.registry.move_tier(mid, Tier.CRITICAL, now)
            report.refreshed += 1
    # every live monitor guards its position in the index the checks use to spot fills
    PositionIndex(rt.redis, prefix=rt.prefix).bind(
        item.monitor for item in store.load_many(rt.registry.ids()).values()
    )
    missing = [item.monitor for mid, item in live.items() if mid not in rows]
    if missing:
        rt.writer.write_critical([], [record_of(m) for m in missing])
        report.persisted = len(missing)


def registry_state(rt: Any, monitor_id: str) -> dict[str, Any] | None:
    stored = rt.registry.get(monitor_id)
    return orjson.loads(stored.state_json) if stored else None
