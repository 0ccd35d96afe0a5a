"""Deterministic identities: monitor ids, orderLinkIds and event ids.

orderLinkId = ``tg<monitor id>-<role><level>-<generation>``, e.g. ``tg7kq2m9xa3f-TP2-1`` (≤ 36 chars,
Bybit's `[A-Za-z0-9_-]`). The same (monitor, role, level, generation) always gives the same id, so
a retried or duplicated check can never place an order twice: the exchange rejects the duplicate and
the client reports that as success. A repair bumps the generation: a fresh id.
"""

from __future__ import annotations

import hashlib
import re

from core.models import OrderRole

PREFIX = "tg"
MAX_LINK_ID = 36
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case, no i/l/o/u
_MONITOR_ID_LEN = 10
_LINK_RE = re.compile(r"^tg(?P<mid>[0-9a-z]{10})-(?P<role>E|TP|SL)(?P<level>\d{0,2})-(?P<gen>\d{1,4})$")


def _b32(digest: bytes, n: int) -> str:
    value = int.from_bytes(digest, "big")
    out = []
    for _ in range(n):
        value, r = divmod(value, 32)
        out.append(_ALPHABET[r])
    return "".join(out)


def monitor_id(account: str, symbol: str, position_idx: int, nonce: str) -> str:
    """A 10-char id for a new monitor. `nonce` makes a later monitor of the same position distinct
    (the caller passes e.g. the creation request id); the same inputs give the same id."""
    digest = hashlib.sha256(f"{account}|{symbol}|{position_idx}|{nonce}".encode()).digest()
    return _b32(digest, _MONITOR_ID_LEN)


def mirror_monitor_id(main_monitor_id: str, mirror_account: str) -> str:
    digest = hashlib.sha256(f"mirror|{main_monitor_id}|{mirror_account}".encode()).digest()
    return _b32(digest, _MONITOR_ID_LEN)


def link_id(monitor: str, role: OrderRole, level: int, generation: int) -> str:
    if role is OrderRole.SL:
        slot = "SL"
    else:
        if not 1 <= level <= 99:
            raise ValueError(f"level out of range: {level}")
        slot = f"{role.value}{level}"
    if not 1 <= generation <= 9999:
        raise ValueError(f"generation out of range: {generation}")
    lid = f"{PREFIX}{monitor}-{slot}-{generation}"
    assert len(lid) <= MAX_LINK_ID, lid
    return lid


def position_stop_id(monitor: str) -> str:
    """The name of a monitor's stop on the position itself (stop mode "position"): the stop slot at
    generation 0, which no order ever uses (orders start at generation 1). Never sent as an
    orderLinkId: it keys the answers to trading-stop calls."""
    return f"{PREFIX}{monitor}-SL-0"


def parse_link_id(lid: str) -> tuple[str, OrderRole, int, int] | None:
    """(monitor id, role, level, generation) of one of our orderLinkIds, or None if not ours."""
    m = _LINK_RE.match(lid)
    if m is None:
        return None
    role = OrderRole(m["role"])
    level = int(m["level"]) if m["level"] else 0
    if (role is OrderRole.SL) != (level == 0):
        return None
    return m["mid"], role, level, int(m["gen"])


_LOOK_UP_FIRST = {OrderRole.SL: 0, OrderRole.ENTRY: 1, OrderRole.TP: 2}


def look_up_priority(lid: str) -> tuple[int, str]:
    """Sort key for bounded look-ups of orders missing from the open list: stops first (a missing
    stop is only replaced once a look-up has shown it is not resting), then entries, then TPs."""
    parsed = parse_link_id(lid)
    return (_LOOK_UP_FIRST[parsed[1]] if parsed is not None else 3, lid)


def is_ours(lid: str) -> bool:
    return parse_link_id(lid) is not None


def event_id(monitor: str, kind: str, *discriminators: object) -> str:
    """Idempotency key of an event: the same fact always gets the same id."""
    raw = "|".join([monitor, kind, *(str(d) for d in discriminators)])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
