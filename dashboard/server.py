"""Serving the dashboard with uvicorn: in the foreground (`tpsl web`) or from a background thread
(`DashboardServer`, on config/serving.py's `ServerThread`, for an embedded run and the tests). Access
log off (a request line per poll of the page would drown the log, and a `?token=` URL must never be
written anywhere)."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from config.serving import ServerThread

log = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0


def uvicorn_config(app: Any, *, host: str, port: int, root_path: str = "") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        root_path=root_path,
        access_log=False,
        log_config=None,  # the process's logging (config.logging) stays in charge
        lifespan="off",
        server_header=False,
        timeout_keep_alive=30,
    )


def serve(app: Any, *, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM: uvicorn shuts down gracefully)."""
    uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()


class DashboardServer:
    """`DashboardServer(app).start()` serves on a free loopback port; `.url`; `.stop()`."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, root_path: str = "") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.root_path = root_path
        self._runner = ServerThread(
            uvicorn_config(app, host=host, port=port, root_path=root_path), name="dashboard"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DashboardServer:
        if self._runner.running:
            return self
        self._runner.config.port = self.port
        self.port = self._runner.start(START_TIMEOUT_S)
        log.info("dashboard listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
