"""What comes back from a message or from storage is checked again before it can trade.

A monitor record that arrives in a persist task, and every monitor reconcile would restore or write,
is decoded and its plan re-validated (core.plan.recheck_plan). One that fails is *quarantined*: it is
not written or restored, a note of it is kept in Redis (`tpsl:quarantine`, at most QUARANTINE_MAX
entries: monitor id → when, where from, the field and the problem; never the state itself), it is
logged and an operator is alerted (`monitor_quarantined`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson

from config import keys
from core.codec import CodecError, monitor_from_dict
from core.errors import FixInput, InternalError
from core.models import Instrument, Monitor
from core.plan import recheck_plan
from persistence.records import BadRecord

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

QUARANTINE_MAX = 1000
KIND = "monitor_quarantined"


def quarantine_key(prefix: str) -> str:
    return keys.quarantine(prefix)


class Refused(InternalError):
    """A stored or sent monitor that fails its re-check: corrupt state, or a record nobody should have
    written (not input from a person). `field` and `problem` say what failed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def checked_monitor(
    rt: Runtime, state: Mapping[str, Any], *, instrument: Instrument | None = None
) -> Monitor:
    """The monitor of a stored state, decoded and its plan re-validated; Refused when it fails."""
    try:
        monitor = monitor_from_dict(state)
        rt.account(monitor.account)  # a known account
        recheck_plan(monitor.plan, instrument)
    except (CodecError, FixInput) as exc:
        raise Refused(exc.field, exc.problem) from exc
    return monitor


def check_record(rt: Runtime, record: Any) -> Monitor:
    """A persisted MonitorRecord: its state is a valid monitor with a valid plan, and the record's
    own columns say the same as the state."""
    monitor = checked_monitor(rt, record.state)
    field = disagreement(record, monitor)
    if field is not None:
        raise Refused(field, "the record and its state disagree")
    return monitor


def disagreement(record: Any, monitor: Monitor) -> str | None:
    """The first column of a record (id, account, symbol, side) that its state's monitor does not
    say the same, None when they agree."""
    for field, column, inside in (
        ("id", record.id, monitor.id),
        ("account", record.account, monitor.account),
        ("symbol", record.symbol, monitor.plan.symbol),
        ("side", record.side, monitor.plan.side.value),
    ):
        if column != inside:
            return field
    return None


def quarantine(rt: Runtime, monitor_id: Any, account: Any, exc: Refused | BadRecord, *, source: str) -> None:
    """Keep a note, log it, alert an operator. Never raises (a failing note must not block the rest)."""
    mid = str(monitor_id)[:64] if monitor_id else "?"
    acc = str(account)[:32] if account else None
    note = {"at": time.time(), "source": source, "account": acc, "field": exc.field, "problem": exc.problem}
    log.error("monitor %s quarantined (%s): %s: %s", mid, source, exc.field, exc.problem)
    try:
        key = quarantine_key(rt.prefix)
        if cast(int, rt.redis.hlen(key)) < QUARANTINE_MAX or rt.redis.hexists(key, mid):
            rt.redis.hset(key, mid, orjson.dumps(note).decode())
    except Exception as e:
        log.warning("quarantine note of %s not kept: %s", mid, type(e).__name__)
    try:
        from workers.recorder import Recorder

        Recorder(rt).publisher.alert(
            {
                "kind": KIND,
                "account": acc,
                "monitor_id": mid,
                "critical": True,
                "at": note["at"],
                "payload": {"reason": source, "message": f"{exc.field}: {exc.problem}"[:300]},
            }
        )
    except Exception as e:
        log.warning("quarantine alert of %s not sent: %s", mid, type(e).__name__)


def quarantined(rt: Runtime) -> dict[str, dict[str, Any]]:
    """The quarantine notes by monitor id."""
    raw = cast("dict[str, str]", rt.redis.hgetall(quarantine_key(rt.prefix)))  # decoded text
    return {k: orjson.loads(v) for k, v in raw.items()}
