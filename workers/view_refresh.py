"""The stream views reconciled by REST in the background, so a check never has to do it.

A check reads an account from its stream view only while REST reconciled the view within
`stream_reconcile_s` (workers/stream_view.py); past that, the check reads the whole account by REST
itself and reconciles the view. That read lists every open order of the account (20 pages at 1,000
orders, about a second), and the check holds the account while it runs: every fill pushed meanwhile
waits behind it. So the views are reconciled here instead, by a task of their own that holds
nothing: beat's `tpsl.refresh_views` (every eighth of `stream_reconcile_s`) queues a
`tpsl.refresh_view` for each account whose stream is up and whose view was reconciled more than
three quarters of `stream_reconcile_s` ago, and that task reads the account and reconciles its
view: about as often as the checks did (every 45-53 s by default, against 60 s and the wait for the
next check), with an eighth of the period left for the read itself (seconds for an account with
thousands of open orders). A check reads REST itself only when this falls behind (no worker took
the maintenance queue, a read failed or took longer) or after a reconnect (the view is untrusted
until a read that started after it).

Reconciling races nothing: the view's rows are newer-wins (a push newer than the read's start
stays), the same as when a check reconciles.

A difference the pushes should have brought (a divergence: a push lost) is the only way a change
reaches the view without a push, and no push calls a check for it. So the task calls one for the
monitors the divergences touch (`touched_by`: the owner of the order's orderLinkId, the monitor
guarding the position), as their pushes would have: a lost push is acted on at the refresh, not at
those monitors' next tier check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.errors import TpslError
from core.ids import parse_link_id
from workers.position_index import PositionIndex, parse_key
from workers.stream_view import Divergence, stream_view

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def refresh_every_s(reconcile_s: float) -> float:
    """How often beat asks which views are due (an eighth of `stream_reconcile_s`)."""
    return reconcile_s / 8


def is_due(reconciled_at: float, now: float, reconcile_s: float) -> bool:
    """Whether a view reconciled at `reconciled_at` is due a refresh (pure): past three quarters of
    its `reconcile_s`, so the refresh is done before a check would find the view too old."""
    return now - reconciled_at > reconcile_s * 3 / 4


def views_due(rt: Runtime) -> list[str]:
    """The accounts whose stream is up and whose view is due a refresh (none with streams off)."""
    view = stream_view(rt)
    if view is None:
        return []
    now, reconcile_s = rt.clock(), rt.settings.stream_reconcile_s
    due = []
    for account in rt.accounts:
        state = view.state(account)
        if state["up"] and is_due(state["reconciled_at"], now, reconcile_s):
            due.append(account)
    return due


def refresh_view(rt: Runtime, account_id: str) -> list[Divergence] | None:
    """Read the account by REST and reconcile its view; the divergences found, or None when nothing
    was done (streams off, an unknown account, the stream down, the view refreshed meanwhile, the
    read failed: the next tick, or a check, does it)."""
    view = stream_view(rt)
    account = rt.accounts.get(account_id)
    if view is None or account is None:
        return None
    state = view.state(account_id)
    if not state["up"] or not is_due(state["reconciled_at"], rt.clock(), rt.settings.stream_reconcile_s):
        return None  # a duplicate of a refresh already done, or nothing to reconcile
    try:
        snap = rt.client_for(account).snapshot(account)
    except TpslError as e:
        log.warning("view refresh of %s skipped: %s", account_id, e)
        return None
    return view.reconcile(account_id, snap)


def touched_by(rt: Runtime, account_id: str, found: Sequence[Divergence]) -> set[str]:
    """The monitors these divergences touch: an order's by its orderLinkId, a position's by the
    position index (a position no monitor guards touches none)."""
    ids: set[str] = set()
    positions: set[tuple[str, int]] = set()
    for d in found:
        if d.kind.startswith("order"):
            parsed = parse_link_id(d.key)
            if parsed is not None:
                ids.add(parsed[0])
        else:
            position = parse_key(d.key)
            if position is not None:
                positions.add(position)
    if positions:
        ids |= set(PositionIndex(rt.redis, prefix=rt.prefix).owners(account_id, positions).values())
    return ids
