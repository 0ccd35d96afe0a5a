"""Reconcile: the registry (Redis), the database and the exchange agree again.

Run at worker start, by `tpsl reconcile`, by the maintenance run, and by the dispatcher the moment
it finds the registry's epoch key gone (Redis flushed, replaced, or restarted without persistence):
- open monitors the database knows but Redis lost (Redis flushed or replaced) are put back in the
  registry, due now in the critical tier: their next check reads each owned order's cumExecQty, so
  fills that happened while nothing ran become events like any other;
- a registry monitor older than its database row (Redis restored from an old copy) takes the row;
- registry monitors the database has never seen are written to it.
Nothing is restored or written on trust: each monitor is decoded and its plan re-validated against
the instrument (workers/quarantine.py); one that fails is quarantined and an operator alerted (a
registry monitor that fails also leaves the registry: it is not guarded by a plan nobody validated).
Idempotent; concurrent runs are serialised by a short Redis lock. The running task's soft deadline
(workers/deadline.py) is checked between the database's pages and between monitors, never between
the writes of one monitor: a run stopped there has restored nothing yet (the restores go in one
round trip at the end), each refresh it made is whole, and the next run does the rest.

The epoch (`<p>:registry:epoch`, a hash) is written by the first reconcile of a Redis and lives as
long as that Redis keeps its data: a reconcile that finds it gone and restores monitors has rebuilt
a lost registry, says so in a CRITICAL log line and a critical alert, and records the rebuild in the
new epoch (the dashboard shows it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from config import keys
from core.codec import monitor_from_dict
from core.errors import FixInput
from core.models import Instrument, Monitor, Phase, Tier
from core.plan import recheck_plan
from persistence.db import session_factory
from persistence.queries import list_monitors
from workers import deadline
from workers.locks import lock as redis_lock
from workers.locks import release_quietly
from workers.position_index import PositionIndex
from workers.quarantine import Refused, checked_monitor, quarantine
from workers.registry import NewMonitor
from workers.store import MonitorStore, encode, record_of

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    restored: int = 0  # put back into the registry from the database
    refreshed: int = 0  # registry copy older than the database: replaced
    persisted: int = 0  # registry monitors written to the database
    skipped: bool = False  # another reconcile was running
    quarantined: int = 0  # failed the plan re-validation: neither restored nor written
    rebuilt: bool = False  # the registry had been lost (no epoch) and monitors were restored


class _Instruments:
    """Instrument filters per account and symbol, for the plan re-validation (None when the
    exchange cannot say: then every rule but the grid and size limits is checked)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._by_account: dict[str, dict[str, Instrument] | None] = {}

    def get(self, monitor: Monitor) -> Instrument | None:
        acc = monitor.account
        if acc not in self._by_account:
            from workers.lifecycle import instruments

            try:
                self._by_account[acc] = instruments(self.rt, self.rt.account(acc))
            except Exception as e:  # an unknown account is refused by the check itself
                log.warning("reconcile: instruments of %s unavailable (%s)", acc, type(e).__name__)
                self._by_account[acc] = None
        known = self._by_account[acc]
        return None if known is None else known.get(monitor.plan.symbol)


def reconcile(rt: Runtime) -> ReconcileReport:
    report = ReconcileReport()
    lock = redis_lock(rt.redis, keys.reconcile_lock(rt.prefix), 120)
    if not lock.acquire(blocking=False):
        report.skipped = True
        return report
    try:
        lost = not rt.registry.present()
        _reconcile(rt, report)
        report.rebuilt = lost and report.restored > 0
        restored = report.restored if report.rebuilt else None
        if lost and rt.registry.start_epoch(rt.clock(), restored=restored) and report.rebuilt:
            _alert_rebuilt(rt, report)
    finally:
        release_quietly(lock)
    log.info(
        "reconcile: restored %d, refreshed %d, persisted %d",
        report.restored,
        report.refreshed,
        report.persisted,
    )
    return report


def _alert_rebuilt(rt: Runtime, report: ReconcileReport) -> None:
    log.critical(
        "registry lost (Redis flushed, replaced or restarted without persistence): rebuilt from the "
        "database, %d open monitors restored and due now",
        report.restored,
    )
    from workers.recorder import Recorder

    try:
        Recorder(rt).publisher.alert(
            {
                "kind": "registry_rebuilt",
                "account": None,
                "monitor_id": None,
                "payload": {"restored": report.restored},
                "critical": True,
            }
        )
    except Exception:
        log.exception("registry rebuilt, but the alert could not be sent")


def _open_rows(rt: Runtime) -> list[Any]:
    rows: list[Any] = []
    with session_factory(rt.engine)() as session:
        offset = 0
        while True:
            deadline.check()
            page = list_monitors(session, open_only=True, limit=500, offset=offset)
            rows.extend(page)
            if len(page) < 500:
                return rows
            offset += 500


RESTORE, REFRESH, KEEP = "restore", "refresh", "keep"


def registry_action(db_version: int, live_version: int | None) -> str:
    """What reconcile does with an open monitor of the database: RESTORE it when the registry lost
    it, REFRESH the registry's copy when the database holds a newer version (a save the registry
    lost), KEEP the registry's otherwise (it is the newer or the same: the registry leads)."""
    if live_version is None:
        return RESTORE
    return REFRESH if live_version < db_version else KEEP


def _reconcile(rt: Runtime, report: ReconcileReport) -> None:
    store = MonitorStore(rt.registry)
    now = rt.clock()
    rows = {r.id: r for r in _open_rows(rt)}
    live = store.load_many(rt.registry.ids())
    instruments = _Instruments(rt)
    lost: list[NewMonitor] = []
    for mid, row in list(rows.items()):
        deadline.check()
        try:
            db_monitor = monitor_from_dict(row.state)
        except Exception:
            log.exception("reconcile: database state of %s is unreadable; skipped", mid)
            continue
        if db_monitor.phase is Phase.CLOSED:
            continue
        try:
            checked_monitor(rt, row.state, instrument=instruments.get(db_monitor))
        except Refused as exc:
            quarantine(rt, mid, db_monitor.account, exc, source="reconcile: database")
            report.quarantined += 1
            continue
        item = live.get(mid)
        action = registry_action(db_monitor.version, None if item is None else item.monitor.version)
        if action is RESTORE:
            lost.append(NewMonitor(mid, db_monitor.account, encode(db_monitor), Tier.CRITICAL, now))
        elif (
            action is REFRESH
            and item is not None
            and rt.registry.save(mid, encode(db_monitor), expected_version=item.token)
        ):
            rt.registry.move_tier(mid, Tier.CRITICAL, now)
            report.refreshed += 1
    # one round trip for the lot: a rebuilt registry guards again within a tick
    report.restored += sum(rt.registry.add_many(lost).values())
    # every live monitor guards its position in the index the checks use to spot fills
    PositionIndex(rt.redis, prefix=rt.prefix).bind(
        item.monitor for item in store.load_many(rt.registry.ids()).values()
    )
    missing = []
    for mid, item in live.items():
        if mid in rows:
            continue
        deadline.check()
        try:
            rt.account(item.monitor.account)
            recheck_plan(item.monitor.plan, instruments.get(item.monitor))
        except FixInput as exc:  # a stored monitor whose account or plan no longer passes: corrupt state
            refused = Refused(exc.field, exc.problem)
            quarantine(rt, mid, item.monitor.account, refused, source="reconcile: registry")
            rt.registry.remove(mid)
            report.quarantined += 1
            continue
        missing.append(item.monitor)
    if missing:
        rt.writer.write_critical([], [record_of(m) for m in missing])
        report.persisted = len(missing)


def registry_state(rt: Runtime, monitor_id: str) -> dict[str, Any] | None:
    stored = rt.registry.get(monitor_id)
    return orjson.loads(stored.state_json) if stored else None
