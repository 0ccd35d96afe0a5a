"""Periodic upkeep (every `maintenance_period_s`, its parts run concurrently as a Celery group):
prune closed history past retention, cancel orphan orders, reconcile."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core import ids
from core.errors import TpslError
from core.models import CancelOrder
from persistence.db import session_factory
from persistence.queries import prune
from workers import deadline
from workers.executor import execute
from workers.locks import hold_account

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def prune_history(rt: Runtime) -> int:
    cutoff = rt.clock() - rt.settings.retention_days * 86400
    with session_factory(rt.engine)() as session:
        removed = prune(session, closed_before=cutoff)
    log.info("prune: %d closed monitors older than %.0f days removed", removed, rt.settings.retention_days)
    return removed


def cancel_orphans(rt: Runtime) -> dict[str, int]:
    """Cancel open orders carrying our orderLinkId prefix whose monitor is not live any more (a
    cancel that never went through, a monitor lost with its Redis). Each account is held while
    swept, so a monitor being created right now is never mistaken for an orphan. Between accounts
    the task's soft deadline is checked (workers/deadline.py), and no wait for an account's lock
    outlasts it: the next sweep does the accounts left."""
    cancelled: dict[str, int] = {}
    for account in rt.accounts.values():
        deadline.check()
        with hold_account(rt, account.id, wait_s=deadline.bound(10.0)) as held:
            if not held:
                continue
            live = set(rt.registry.ids(account.id))
            client = rt.client_for(account)
            try:
                orders = client.open_orders(account)
            except TpslError as e:
                log.warning("orphan sweep of %s skipped: %s", account.id, e)
                continue
            orphans = []
            for o in orders:
                parsed = ids.parse_link_id(o.link_id)
                if parsed is not None and parsed[0] not in live:
                    orphans.append(CancelOrder(account.id, parsed[0], o.link_id, o.symbol))
            if orphans:
                results = execute(client, account, orphans)
                ok = sum(1 for _, r in results if r.ok)
                log.warning(
                    "orphan sweep of %s: cancelled %d of %d orphan orders", account.id, ok, len(orphans)
                )
                cancelled[account.id] = ok
    return cancelled
