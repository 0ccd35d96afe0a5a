"""Monitors in and out of the registry (JSON state + compare-and-set) and into persistence rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from core.codec import monitor_from_dict, monitor_to_dict
from core.models import Monitor
from persistence.records import MonitorRecord
from workers.decoded import Decoded
from workers.registry import Registry, SaveItem

log = logging.getLogger(__name__)


def encode(m: Monitor) -> str:
    return orjson.dumps(monitor_to_dict(m)).decode()


def decode(state_json: str | bytes) -> Monitor:
    return monitor_from_dict(orjson.loads(state_json))


DECODED_MAX = 10_000  # monitors whose decoded state a process keeps (one entry per monitor)


class DecodedStates(Decoded[str, Monitor]):
    """The decoded state of each monitor this process read lately, by monitor id (workers/decoded.py):
    most monitors of an account check are unchanged since the last (at 625 monitors per account
    decoding was ~10 % of a fast worker's time)."""

    def __init__(self, maxsize: int = DECODED_MAX) -> None:
        super().__init__(decode, maxsize)


_decoded = DecodedStates()


def decoded(monitor_id: str, state_json: str) -> Monitor:
    """The monitor of a state text, from this process's memo when the monitor's text is unchanged."""
    return _decoded.get(monitor_id, state_json)


def decoded_states() -> DecodedStates:
    """This process's memo (statistics, tests)."""
    return _decoded


def record_of(m: Monitor) -> MonitorRecord:
    """The persistence row of a monitor (its whole state rides along as JSON)."""
    return MonitorRecord(
        id=m.id,
        account=m.account,
        symbol=m.plan.symbol,
        position_idx=m.plan.position_idx,
        side=m.plan.side.value,
        phase=m.phase.value,
        tier=m.tier.value,
        closed_reason=m.closed_reason.value if m.closed_reason else None,
        version=m.version,
        state=monitor_to_dict(m),
        mirror_of=m.mirror_of,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    monitor: Monitor
    token: int  # the registry's version: the compare-and-set token for the next save


class MonitorStore:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def load_many(self, ids: Iterable[str]) -> dict[str, Loaded]:
        out: dict[str, Loaded] = {}
        for mid, stored in self.registry.get_many(list(ids)).items():
            try:
                out[mid] = Loaded(decoded(mid, stored.state_json), stored.version)
            except Exception:  # a state we cannot read must not stop the others
                log.exception("monitor %s: unreadable state in the registry; skipped", mid)
        return out

    def load(self, mid: str) -> Loaded | None:
        return self.load_many([mid]).get(mid)

    def add(self, m: Monitor, due_at: float) -> bool:
        return self.registry.add(m.id, m.account, encode(m), m.tier, due_at)

    def save_many(self, items: Iterable[tuple[Loaded, Monitor]]) -> dict[str, bool]:
        """Compare-and-set each changed monitor; False for a monitor someone else wrote meanwhile
        (that writer wins; ours is recomputed from fresh state on the next pass)."""
        batch = [SaveItem(new.id, encode(new), old.token) for old, new in items if new != old.monitor]
        if not batch:
            return {}
        return self.registry.save_many(batch)
