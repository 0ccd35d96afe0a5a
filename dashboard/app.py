"""`create_app(rt) -> FastAPI`: the dashboard (JSON API, HTML page, /metrics), OpenAPI at /docs.

    from dashboard.app import create_app
    app = create_app(build_runtime(settings), token=…)   # uvicorn.run(app, …) — `tpsl web` does this

Fail closed: the data routes always need a bearer token (`TPSL_DASHBOARD_TOKEN`, or the `token`
argument; with neither, a random one nobody is told, so only /api/health answers — `tpsl web`
generates one and prints it instead). Every request passes the guard of dashboard/guard.py first
(Host allow-list, same-origin writes, bounded bodies, security headers).

The runtime's publisher decides where alerts of API-created monitors go (`tpsl web` sets the
Celery publisher: the alerts queue; None writes and logs in-process).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dashboard.api import MAX_BODY, build_api
from dashboard.auth import generate_token
from dashboard.errors import install_error_handlers
from dashboard.guard import RequestGuard, parse_allowed_hosts
from dashboard.page import build_page, make_templates
from dashboard.state import DashboardState

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def _offline_docs(app: FastAPI) -> None:
    """The OpenAPI page at /docs with Swagger UI's own files served from the installed
    swagger-ui-bundle package, not from a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


class DashboardApp(FastAPI):
    """FastAPI with the request guard outermost: even an answer of Starlette's own error middleware
    (a 500) passes through it and gets the security headers."""

    guard_options: dict[str, Any]

    def build_middleware_stack(self) -> Any:
        return RequestGuard(super().build_middleware_stack(), **self.guard_options)


def configured_token(settings: Any) -> str | None:
    """TPSL_DASHBOARD_TOKEN, or None when it is unset or blank."""
    secret = settings.dashboard_token
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def create_app(rt: Runtime, *, token: str | None = None, allowed_hosts: str | None = None) -> FastAPI:
    """The dashboard over a Runtime. `token` overrides `settings.dashboard_token`, `allowed_hosts`
    (comma-separated) `settings.allowed_hosts`."""
    token = token or configured_token(rt.settings)
    if token is None:
        log.warning(
            "dashboard without a token (TPSL_DASHBOARD_TOKEN unset): only /api/health will answer; "
            "`tpsl web` generates and prints one"
        )
        token = generate_token()  # told to nobody: the data routes stay shut
    hosts = parse_allowed_hosts(rt.settings.allowed_hosts if allowed_hosts is None else allowed_hosts)
    state = DashboardState.build(rt, token=token)
    app = DashboardApp(
        title="tpsl-guard dashboard",
        version="1",
        description="Monitors, accounts and operations of tpsl-guard. Every error is "
        '`{"error": {"code", "message", "field"}}`. Every /api/ route but /api/health (and /metrics, '
        "/ui/) needs `Authorization: Bearer <token>`; a write must come from this origin and send JSON "
        "as `Content-Type: application/json`.",
        docs_url=None,  # served below from local assets: the machine may have no internet
        redoc_url=None,
    )
    app.state.dashboard = state
    install_error_handlers(app)
    open_api, api = build_api(state)
    shell, ui = build_page(state, make_templates())
    for router in (open_api, api, shell, ui):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    _offline_docs(app)
    app.guard_options = {"allowed_hosts": hosts, "max_body": MAX_BODY}
    log.info(
        "dashboard ready: %d accounts, hosts %s, cache %s",
        len(rt.accounts),
        ", ".join(sorted(hosts)),
        "on" if rt.settings.cache_enabled else "off (rollback switch)",
    )
    return app
