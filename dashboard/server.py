"""Serving the dashboard with uvicorn: in the foreground (`tpsl web`) or from a background thread
(`DashboardServer`, for an embedded run and the tests). Access log off (a request line per poll
of the page would drown the log, and a `?token=` URL must never be written anywhere)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DashboardServer:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn_config(self.app, host=self.host, port=self.port, root_path=self.root_path)
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"dashboard-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not start on {self.url}")
            time.sleep(0.01)
        log.info("dashboard listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
        self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
