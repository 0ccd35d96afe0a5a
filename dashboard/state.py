"""What one dashboard app holds: the runtime, the cache, the read layer, the figures, the token
guard, and the two writes (create and remove a monitor)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from prometheus_client import CollectorRegistry

from core.errors import NotFound
from dashboard.auth import TokenGuard
from dashboard.metrics import metrics_registry
from dashboard.stats import OpsStats
from readmodel.errors import ApiError
from readmodel.reads import EXTRA_TTLS, DashboardData, created_view, removed_view, valid_id
from workers.ttl_cache import TTLCache

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class DashboardState:
    rt: Runtime
    cache: TTLCache
    data: DashboardData
    ops: OpsStats
    metrics: CollectorRegistry
    guard: TokenGuard

    @classmethod
    def build(cls, rt: Runtime, *, token: str) -> DashboardState:
        cache = TTLCache(rt.redis, rt.settings, prefix=rt.prefix, extra_ttls=EXTRA_TTLS)
        data = DashboardData(rt, cache)
        ops = OpsStats(rt, cache, counts=data.counts)
        return cls(rt, cache, data, ops, metrics_registry(ops), TokenGuard(token))

    def __repr__(self) -> str:  # the runtime holds accounts: never print it
        return f"DashboardState(guard={self.guard!r})"

    # the dependency of every protected router: 401 when the token is missing or wrong
    def require_token(self, request: Request) -> None:
        self.guard.check(request.headers.get("authorization"))

    # ------------------------------------------------------------------------------ writes

    def create_monitor(self, data: Mapping[str, Any], nonce: str | None = None) -> dict[str, Any]:
        from workers.lifecycle import create_monitor

        monitor = create_monitor(self.rt, data, nonce=nonce)
        log.info("monitor %s created on %s %s", monitor.id, monitor.account, monitor.plan.symbol)
        return created_view(self.rt, monitor)

    def remove_monitor(self, monitor_id: str, *, cancel_orders: bool) -> dict[str, Any]:
        from workers.lifecycle import remove_monitor

        valid_id(monitor_id)
        try:
            monitor = remove_monitor(self.rt, monitor_id, cancel_orders=cancel_orders)
        except NotFound:
            try:
                stored = self.data.stored_monitor(monitor_id)
            except NotFound:
                raise ApiError(404, "not_found", f"no monitor {monitor_id}", "id") from None
            reason = stored.get("closed_reason") or "closed"
            raise ApiError(
                409, "closed", f"monitor {monitor_id} is already closed ({reason})", "id"
            ) from None
        log.info("monitor %s removed (cancel_orders=%s)", monitor_id, cancel_orders)
        return removed_view(self.rt, monitor)


def state_of(request: Request) -> DashboardState:
    return request.app.state.dashboard
