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

    Every /api/ route but /api/health, /ui/ and /metrics need `Authorization: Bearer <token>`:
    TPSL_DASHBOARD_TOKEN, or, when it is unset, a token generated now and printed once here (the page
    asks for it once and keeps it). The dashboard answers only to the host names localhost,
    127.0.0.1, ::1 and those in TPSL_ALLOWED_HOSTS.
    """
    from config.logging import register_secret, setup_logging
    from dashboard.app import configured_token, create_app
    from dashboard.auth import generate_token
    from dashboard.server import serve

    rt = open_runtime()  # alerts of monitors created here go to the alerts queue
    setup_logging(rt.settings.log_level)
    token = configured_token(rt.settings)
    generated = token is None
    if token is None:
        token = generate_token()
    register_secret(token)
    if host not in LOOPBACK and not rt.settings.allowed_hosts.strip():
        log.warning(
            "dashboard on %s with TPSL_ALLOWED_HOSTS unset: it answers only to localhost names; set "
            "TPSL_ALLOWED_HOSTS to the name it is reached by",
            host,
        )
    app = create_app(rt, token=token)
    shown = f"[{host}]" if ":" in host else host
    if generated:  # printed once, on the terminal only (never logged)
        typer.echo(
            f"dashboard on http://{shown}:{port}/?token={token} (TPSL_DASHBOARD_TOKEN unset: this token "
            "was generated for this run)",
            err=True,
        )
    else:
        typer.echo(f"dashboard on http://{shown}:{port}/ (token from TPSL_DASHBOARD_TOKEN)", err=True)
    serve(app, host=host, port=port)
