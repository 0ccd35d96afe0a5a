"""What the pipeline hands to persistence: a monitor as one row (`MonitorRecord`) and account rows.

The pipeline converts a core Monitor into a MonitorRecord (its full JSON-able state goes in `state`,
which persistence stores without looking inside). Records check their fields on construction, so a
bad value fails where it is made, with the field named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from core.errors import InternalError
from core.models import AccountRole, CloseReason, Phase, Side, Tier

ID_MAX = 64

_SIDES = frozenset(s.value for s in Side)
_PHASES = frozenset(p.value for p in Phase)
_TIERS = frozenset(t.value for t in Tier)
_REASONS = frozenset(r.value for r in CloseReason)
_ROLES = frozenset(r.value for r in AccountRole)


def _plain(value: Any) -> Any:
    """An enum member as its plain value (StrEnum members are str already, but keep rows plain)."""
    return value.value if isinstance(value, Enum) else value


class BadRecord(InternalError):
    """A row or event the product built wrongly, or a message this code did not write: a bug to
    alert on, not input from a person. `field` names the bad field, `problem` what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def check_id(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadRecord(field, "must be a non-empty string")
    if len(value) > ID_MAX:
        raise BadRecord(field, f"is {len(value)} characters long, at most {ID_MAX} allowed")
    return value


def check_time(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(field, f"must be epoch seconds (a finite number), got {value!r}")
    return float(value)


def check_version(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRecord(field, f"must be an integer ≥ 0, got {value!r}")
    return value


def _one_of(field: str, value: Any, allowed: frozenset[str]) -> str:
    value = _plain(value)
    if value not in allowed:
        raise BadRecord(field, f"{value!r} is not one of {', '.join(sorted(allowed))}")
    return str(value)


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """One monitor as persisted. `version` orders records: an older one never replaces a newer one."""

    id: str
    account: str
    symbol: str
    position_idx: int
    side: str  # Buy | Sell
    phase: str  # a core Phase value
    tier: str  # a core Tier value
    closed_reason: str | None
    version: int
    state: Mapping[str, Any]  # the full JSON-able monitor state (opaque to persistence)
    mirror_of: str | None
    created_at: float
    updated_at: float

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_id("monitor.id", self.id)
        check_id("monitor.account", self.account)
        if not isinstance(self.symbol, str) or not self.symbol or len(self.symbol) > 32:
            raise BadRecord("monitor.symbol", f"must be a symbol of 1..32 characters, got {self.symbol!r}")
        if self.position_idx not in (0, 1, 2) or isinstance(self.position_idx, bool):
            raise BadRecord("monitor.position_idx", f"must be 0, 1 or 2, got {self.position_idx!r}")
        set_(self, "side", _one_of("monitor.side", self.side, _SIDES))
        set_(self, "phase", _one_of("monitor.phase", self.phase, _PHASES))
        set_(self, "tier", _one_of("monitor.tier", self.tier, _TIERS))
        if self.closed_reason is not None:
            set_(self, "closed_reason", _one_of("monitor.closed_reason", self.closed_reason, _REASONS))
        check_version("monitor.version", self.version)
        if not isinstance(self.state, Mapping):
            raise BadRecord("monitor.state", f"must be a JSON object (dict), got {type(self.state).__name__}")
        if self.mirror_of is not None:
            check_id("monitor.mirror_of", self.mirror_of)
        set_(self, "created_at", check_time("monitor.created_at", self.created_at))
        set_(self, "updated_at", check_time("monitor.updated_at", self.updated_at))

    @property
    def closed(self) -> bool:
        return self.phase == Phase.CLOSED.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "symbol": self.symbol,
            "position_idx": self.position_idx,
            "side": self.side,
            "phase": self.phase,
            "tier": self.tier,
            "closed_reason": self.closed_reason,
            "version": self.version,
            "state": dict(self.state),
            "mirror_of": self.mirror_of,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorRecord:
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except KeyError as exc:
            raise BadRecord(f"monitor.{exc.args[0]}", "is missing") from None


class AccountRow(NamedTuple):
    """An account as stored: `(id, role, mirror_of, ratio, base_url)`, built from an Account that
    config/accounts.py validated (the one place accounts are checked)."""

    id: str
    role: str  # main | mirror
    mirror_of: str | None
    ratio: str  # a decimal, as a string, or "equity"
    base_url: str
