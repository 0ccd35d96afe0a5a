"""Serving an ASGI app with uvicorn from a background thread of this process: the dashboard
(`dashboard.server.DashboardServer`) and the paper exchange (`exchange.paper.runner.PaperServer`)
in an embedded run and in the tests. One way to do it: bind the socket first (port 0 picks a free
one, known before the thread starts), run `uvicorn.Server` on it in a daemon thread, wait until it
has started, and ask it to exit on stop."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class ServerThread:
    """`ServerThread(config, name="dashboard").start(timeout_s)` → the port it listens on; `.stop()`."""

    def __init__(self, config: uvicorn.Config, *, name: str) -> None:
        self.config = config
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout_s: float) -> int:
        """Bind (config.host, config.port), serve from a daemon thread, return the port once uvicorn
        has started; RuntimeError if it died or did not start within `timeout_s`."""
        if self._thread is not None:
            return int(self.config.port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self.config.port = port = int(sock.getsockname()[1])
        server = uvicorn.Server(self.config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"{self.name}-{port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{self.name} did not start on {self.config.host}:{port}")
            time.sleep(0.01)
        return port

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = None
        self._thread = None
