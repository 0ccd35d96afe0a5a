"""Maintenance (a group of independent parts), the stream views' refresh, the page's series and the
periodic statistics line."""

from __future__ import annotations

import logging
import time

from celery import Celery, group

from persistence.stats import persist_stats
from workers.maintenance import cancel_orphans, prune_history
from workers.reconcile import reconcile
from workers.view_refresh import refresh_every_s

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    from tasks.app import runtime

    @app.task(shared=False, name="tpsl.maintenance", soft_time_limit=20, time_limit=30)
    def maintenance() -> None:
        group(prune.s(), orphans.s(), reconcile_task.s()).apply_async()

    @app.task(shared=False, name="tpsl.maintenance_prune", soft_time_limit=240, time_limit=300)
    def prune() -> int:
        return prune_history(runtime(app))

    @app.task(shared=False, name="tpsl.maintenance_orphans", soft_time_limit=240, time_limit=300)
    def orphans() -> dict[str, int]:
        return cancel_orphans(runtime(app))

    @app.task(shared=False, name="tpsl.maintenance_reconcile", soft_time_limit=240, time_limit=300)
    def reconcile_task() -> dict[str, int]:
        r = reconcile(runtime(app))
        return {"restored": r.restored, "refreshed": r.refreshed, "persisted": r.persisted}

    @app.task(shared=False, name="tpsl.refresh_views", soft_time_limit=4, time_limit=5)
    def refresh_views() -> int:
        """A refresh of each stream view that is due one (workers/view_refresh.py), each a task of
        its own: one slow account does not hold back the others."""
        from workers.view_refresh import views_due

        rt = runtime(app)
        due = views_due(rt)
        every = refresh_every_s(rt.settings.stream_reconcile_s)
        for account in due:
            refresh_view_task.apply_async(args=(account,), expires=every)
        return len(due)

    @app.task(shared=False, name="tpsl.refresh_view", soft_time_limit=50, time_limit=60)
    def refresh_view_task(account: str) -> int | None:
        """The account's view reconciled; the monitors its divergences touch (pushes lost) to a
        check, as those pushes would have called. The divergences found, or None (not refreshed)."""
        from tasks.checks import queue_pushed_check
        from workers.stream_triggers import CheckCoalescer
        from workers.view_refresh import refresh_view, touched_by

        rt = runtime(app)
        found = refresh_view(rt, account)
        if not found:
            return None if found is None else 0
        ids = touched_by(rt, account, found)
        if ids:
            queue_pushed_check(app, CheckCoalescer(rt.redis, prefix=rt.prefix), account, sorted(ids))
        return len(found)

    @app.task(shared=False, name="tpsl.series", soft_time_limit=4, time_limit=5)
    def series() -> dict[str, int]:
        """The page's plots (monitors per tier, prices): collected here, never by a GET."""
        from workers.series import collect

        return collect(runtime(app), now=time.time())

    @app.task(shared=False, name="tpsl.stats", soft_time_limit=20, time_limit=30)
    def stats() -> None:
        rt = runtime(app)
        parts = [f"monitors per tier {dict((t.value, n) for t, n in rt.registry.counts_by_tier().items())}"]
        p = persist_stats(rt.redis, prefix=rt.prefix)
        parts.append(f"persistence {p}")
        for base, client in rt.clients().items():
            stats_fn = getattr(client, "stats", None)
            if stats_fn is not None:
                parts.append(f"pool {base} {stats_fn()}")
        log.info("stats: %s", "; ".join(parts))
