"""`tpsl web`: the dashboard (JSON API, page, /metrics) under uvicorn, access log off."""

from __future__ import annotations

import logging

import typer

from cli.common import open_runtime

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def web_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every one)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, envvar="PORT", help="TCP port (env PORT)."),
) -> None:
    """Serve the dashboard: page at /, JSON API under /api/ (OpenAPI at /docs), /metrics.

    With TPSL_DASHBOARD_TOKEN set, /api/ (but /api/health), /ui/ and /metrics need
    `Authorization: Bearer <token>`; the page asks for the token once and keeps it.
    """
    from config.logging import setup_logging
    from dashboard.app import create_app
    from dashboard.server import serve

    rt = open_runtime()  # alerts of monitors created here go to the alerts queue
    setup_logging(rt.settings.log_level)
    token_set = rt.settings.dashboard_token is not None and bool(
        rt.settings.dashboard_token.get_secret_value()
    )
    if not token_set and host not in LOOPBACK:
        log.warning(
            "dashboard on %s without TPSL_DASHBOARD_TOKEN: anyone who reaches it can create and remove "
            "monitors",
            host,
        )
    app = create_app(rt)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"dashboard on http://{shown}:{port}/ (token {'required' if token_set else 'not set'})", err=True
    )
    serve(app, host=host, port=port)
