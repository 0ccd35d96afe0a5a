"""The dashboard served by uvicorn on a free loopback port over the whole `stack` (paper exchange,
Redis, SQLite, a Celery worker, the dispatcher), and an HTTP client for it.

    def test_x(dash):
        r = dash.client.post("/api/monitors", json=plan)
        dash.stack.prices(BTCUSDT="62100")
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dashboard.app import create_app
from dashboard.server import DashboardServer
from tests.plugins.secrets import httpx_scan_hook


@dataclass
class Dash:
    stack: Any
    server: DashboardServer
    client: httpx.Client
    token: str = field(repr=False)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def cache(self) -> Any:
        return self.server.app.state.dashboard.cache


@pytest.fixture
def dashboard_token() -> str:
    """The dashboard always has a token (override in a module to choose it); `dash.client` sends it."""
    return "dashboard-token-of-the-tests-7c1e"


@pytest.fixture
def dash(stack, dashboard_token) -> Iterator[Dash]:
    app = create_app(stack.rt, token=dashboard_token)
    headers = {"Authorization": f"Bearer {dashboard_token}"}
    with (
        DashboardServer(app) as server,
        httpx.Client(
            base_url=server.url, headers=headers, timeout=30, event_hooks={"response": [httpx_scan_hook]}
        ) as client,
    ):
        yield Dash(stack, server, client, dashboard_token)
