"""Beat's schedule. `tpsl beat` reads it through the configured app (tasks/base.py), without the tasks.

| entry       | task                | every                            | queue       |
|-------------|---------------------|----------------------------------|-------------|
| flush       | tpsl.flush          | `coalesce_window_s` (30 s)       | persist     |
| maintenance | tpsl.maintenance    | `maintenance_period_s` (2 h)     | maintenance |
| stats       | tpsl.stats          | `stats_period_s` (5 min)         | maintenance |
| series      | tpsl.series         | 5 s (workers/series.py)          | maintenance |
| views       | tpsl.refresh_views  | `stream_reconcile_s` / 8 (7.5 s) | maintenance |

`views` only with streams on (workers/view_refresh.py). The dispatcher is not an entry: beat runs
it on a thread of its own every `dispatch_tick_s` (0.5 s), claiming the due monitors and publishing
their checks to the tier queues itself (tasks/dispatch.py).

Two beats running at once do no harm: claims are atomic (each due monitor is claimed once),
flush takes the pending hash atomically, maintenance is idempotent. Every message expires before
the next one of its kind is due, so a stopped worker does not come back to a pile of stale ticks.
"""

from __future__ import annotations

from typing import Any

from config.queues import MAINTENANCE_QUEUE, PERSIST_QUEUE
from config.settings import Settings
from workers.series import COLLECT_EVERY_S
from workers.view_refresh import refresh_every_s


def schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def entry(task: str, every: float, queue: str) -> dict[str, Any]:
        return {
            "task": task,
            "schedule": every,
            "options": {"queue": queue, "routing_key": queue, "expires": max(every, 1.0)},
        }

    out = {
        "flush": entry("tpsl.flush", settings.coalesce_window_s, PERSIST_QUEUE),
        "maintenance": entry("tpsl.maintenance", settings.maintenance_period_s, MAINTENANCE_QUEUE),
        "stats": entry("tpsl.stats", settings.stats_period_s, MAINTENANCE_QUEUE),
        "series": entry("tpsl.series", COLLECT_EVERY_S, MAINTENANCE_QUEUE),
    }
    if settings.streams:
        every = refresh_every_s(settings.stream_reconcile_s)
        out["views"] = entry("tpsl.refresh_views", every, MAINTENANCE_QUEUE)
    return out
