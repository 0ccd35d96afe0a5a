"""A small process supervisor: named child processes, each in its own process group, logging to
`<log_dir>/<name>.log`, waited on until ready, stopped as a whole — no orphans.

    with Supervisor(Path("var/logs")) as sup:
        sup.install_signal_handlers()      # SIGTERM (and SIGINT) unwind through the `with`
        redis = sup.start(ProcessSpec("redis", [...], ready=tcp_port(6390)))
        sup.wait_ready([redis], timeout_s=20)  # ProcessDied (with its log tail) or NotReady
        ...
    # leaving the block: SIGTERM to each group (latest layer first), SIGKILL after the grace period

Every child runs in a new session (its own process group), so a Ctrl-C in the terminal reaches only
the supervisor, which then stops the children in order (workers before the Redis they flush to). On
Linux each child also gets PR_SET_PDEATHSIG=SIGTERM: if the supervisor itself is killed outright,
its children are told to stop by the kernel.

Stopping: layers are stopped highest first; within a layer every group gets SIGTERM at once, then up
to `grace_s` to exit — every process of the group, not only its leader — then SIGKILL. A second
Ctrl-C/SIGTERM while stopping skips the rest of the grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

log = logging.getLogger(__name__)

POLL_S = 0.05
DEFAULT_GRACE_S = 15.0
TAIL_LINES = 30


class ProcessError(RuntimeError):
    """A child did not come up."""

    def __init__(self, name: str, message: str, tail: str) -> None:
        super().__init__(f"{name}: {message}" + (f"\n--- last lines of its log ---\n{tail}" if tail else ""))
        self.name = name
        self.message = message
        self.tail = tail


class ProcessDied(ProcessError):
    """A child exited before it was ready (or while it should have been running)."""

    def __init__(self, name: str, returncode: int, tail: str) -> None:
        super().__init__(name, f"exited with code {returncode}", tail)
        self.returncode = returncode


class NotReady(ProcessError):
    """A child is running but did not become ready in time."""


class StopRequested(Exception):
    """SIGTERM (or SIGINT, once handlers are installed) asked the supervisor to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ------------------------------------------------------------------------------------ readiness


@dataclass(frozen=True, slots=True)
class Ready:
    """A readiness probe: `check(child)` is true once the child serves; `what` says what it waits for."""

    what: str
    check: Callable[[Child], bool]


def tcp_port(port: int, host: str = "127.0.0.1") -> Ready:
    """Ready when a TCP connection to host:port succeeds."""

    def check(_: Child) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return Ready(f"TCP {host}:{port} to accept connections", check)


def http_ok(
    url: str, *, headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None
) -> Ready:
    """Ready when GET `url` answers 200."""

    import requests  # here: the module stays light for callers that never probe HTTP

    def check(_: Child) -> bool:
        try:
            r = requests.get(url, headers=dict(headers or {}), auth=auth, timeout=2)
        except requests.RequestException:
            return False
        return r.status_code == 200

    return Ready(f"GET {url} to answer 200", check)


def log_line(pattern: str | re.Pattern[str]) -> Ready:
    """Ready when a line of the child's log matches `pattern` (a regular expression)."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern

    def check(child: Child) -> bool:
        return child.log_contains(rx)

    return Ready(f"a log line matching {rx.pattern!r}", check)


def all_of(*probes: Ready) -> Ready:
    """Ready when every probe is."""
    return Ready(" and ".join(p.what for p in probes), lambda c: all(p.check(c) for p in probes))


# --------------------------------------------------------------------------------------- children


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What to run. `env` is the child's whole environment (None: this process's); `layer` orders
    the stop: higher layers stop first (e.g. workers at 1 before the Redis at 0 they write to)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = field(default=None, repr=False)  # may hold credentials
    cwd: Path | None = None
    ready: Ready | None = None
    layer: int = 1

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ValueError(f"name: {self.name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if not self.argv:
            raise ValueError(f"argv: empty command for {self.name!r}")


@dataclass(eq=False)
class Child:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    ready_at: float | None = None
    _scan_pos: int = 0
    _scan_rest: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        """The child's process group (= its pid: it leads a new session)."""
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Is any process of the child's group still running (its leader reaped first)?"""
        self.popen.poll()
        return bool(group_members(self.pgid))

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, rx: re.Pattern[str]) -> bool:
        """Scan the log incrementally (only what was written since the last call)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._scan_pos)
                chunk = f.read()
        except OSError:
            return False
        if not chunk:
            return False
        self._scan_pos += len(chunk)
        text = self._scan_rest + chunk.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._scan_rest = lines.pop()  # an unfinished last line waits for its end
        return any(rx.search(line) for line in lines) or bool(rx.search(self._scan_rest))


# ------------------------------------------------------------------------------------- supervisor


def _pdeathsig() -> Callable[[], None] | None:
    """On Linux: a preexec function asking the kernel to SIGTERM the child when its parent dies.
    The libc function is looked up here, before any fork, so the child only makes one call."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


_PREEXEC = _pdeathsig()


class Supervisor:
    """Starts, watches and stops named children. Not thread-safe: use it from one thread."""

    def __init__(self, log_dir: Path, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.log_dir = Path(log_dir)
        self.grace_s = grace_s
        self.children: list[Child] = []
        self._stopping = False
        self._hurry = False
        self.stop_signal: int | None = None  # the signal that asked to stop, once one did
        self._old_handlers: dict[int, Any] = {}

    # ---------------------------------------------------------------------------------- starting

    def start(self, spec: ProcessSpec) -> Child:
        """Start `spec` in a new session, stdout+stderr to `<log_dir>/<name>.log` (truncated)."""
        if self._stopping:
            raise RuntimeError("the supervisor is stopping")
        if any(c.name == spec.name for c in self.children):
            raise ValueError(f"name: a process named {spec.name!r} was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        out: IO[bytes] = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_PREEXEC,  # one prctl call, looked up before the fork
                close_fds=True,
            )
        except OSError as e:
            raise ProcessError(spec.name, f"cannot start {spec.argv[0]!r}: {e.strerror or e}", "") from None
        finally:
            out.close()  # the child holds its own descriptor
        child = Child(spec=spec, popen=popen, log_path=log_path, started_at=time.monotonic())
        self.children.append(child)
        log.info("started %s (pid %d), log %s", spec.name, popen.pid, log_path)
        return child

    def wait_ready(self, children: Iterable[Child], *, timeout_s: float = 60.0) -> None:
        """Wait until every child's probe passes. Raises ProcessDied (with the tail of its log) for a
        child that exits first, NotReady for one still not ready after `timeout_s`."""
        waiting = [c for c in children if c.ready_at is None]
        deadline = time.monotonic() + timeout_s
        while waiting:
            for child in list(waiting):
                if not child.alive():
                    raise ProcessDied(child.name, child.popen.returncode, child.log_tail())
                if child.spec.ready is None or child.spec.ready.check(child):
                    child.ready_at = time.monotonic()
                    log.info("%s ready after %.1f s", child.name, child.ready_at - child.started_at)
                    waiting.remove(child)
            if not waiting:
                return
            if time.monotonic() > deadline:
                child = waiting[0]
                what = child.spec.ready.what if child.spec.ready else "to start"
                raise NotReady(
                    child.name, f"not ready after {timeout_s:.0f} s (waited for {what})", child.log_tail()
                )
            time.sleep(POLL_S)

    def start_ready(self, spec: ProcessSpec, *, timeout_s: float = 60.0) -> Child:
        child = self.start(spec)
        self.wait_ready([child], timeout_s=timeout_s)
        return child

    # ---------------------------------------------------------------------------------- watching

    def get(self, name: str) -> Child:
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(name)

    def dead(self) -> list[Child]:
        """Children that have exited (in start order)."""
        return [c for c in self.children if not c.alive()]

    def check(self, names: Iterable[str] | None = None) -> None:
        """Raise ProcessDied for the first child (of `names`, default all) that has exited."""
        wanted = set(names) if names is not None else None
        for c in self.children:
            if (wanted is None or c.name in wanted) and not c.alive():
                raise ProcessDied(c.name, c.popen.returncode, c.log_tail())

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children}

    # ---------------------------------------------------------------------------------- stopping

    def stop(self, grace_s: float | None = None) -> None:
        """Stop every child: per layer (highest first) SIGTERM each group, wait up to the grace period
        for every process of those groups, then SIGKILL what is left. Idempotent."""
        grace = self.grace_s if grace_s is None else grace_s
        self._stopping = True
        previous = self._hold_signals()
        try:
            for layer in sorted({c.spec.layer for c in self.children}, reverse=True):
                group = [c for c in self.children if c.spec.layer == layer and c.group_alive()]
                if group:
                    self._stop_group(group, grace)
        finally:
            self._restore(previous)

    def _stop_group(self, group: list[Child], grace: float) -> None:
        for c in group:
            log.info("stopping %s (pid %d)", c.name, c.pid)
            _signal_group(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._hurry:
            if not any(c.group_alive() for c in group):
                break
            time.sleep(POLL_S)
        for c in group:
            if c.group_alive():
                log.warning("%s did not stop within %.0f s: killed", c.name, grace)
                _signal_group(c, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        for c in group:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.popen.wait(max(0.0, deadline - time.monotonic()))
            while c.group_alive() and time.monotonic() < deadline:
                time.sleep(POLL_S)

    def _hold_signals(self) -> dict[int, Any]:
        """While stopping, Ctrl-C/SIGTERM only hurry the stop (it must finish: no orphans)."""
        previous: dict[int, Any] = {}
        if not _main_thread():
            return previous

        def hurry(signum: int, frame: FrameType | None) -> None:
            self._hurry = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, hurry)
        return previous

    @staticmethod
    def _restore(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # --------------------------------------------------------------------------- signal handling

    def install_signal_handlers(self, *, sigint: bool = False) -> None:
        """SIGTERM (and SIGINT when `sigint`; by default Python raises KeyboardInterrupt for it)
        raises StopRequested in the main thread, so `with Supervisor(...)` unwinds and stops all."""
        if not _main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")

        def request_stop(signum: int, frame: FrameType | None) -> None:
            if self._stopping:
                self._hurry = True
                return
            self.stop_signal = signum  # remembered: code that swallows the exception can't lose it
            raise StopRequested(signum)

        sigs = [signal.SIGTERM] + ([signal.SIGINT] if sigint else [])
        for sig in sigs:
            self._old_handlers[sig] = signal.signal(sig, request_stop)

    def check_stop(self) -> None:
        """Raise StopRequested again if a signal asked to stop (for a loop whose callee may have
        caught the first one in a broad `except Exception`)."""
        if self.stop_signal is not None and not self._stopping:
            raise StopRequested(self.stop_signal)

    def restore_signal_handlers(self) -> None:
        self._restore(self._old_handlers)
        self._old_handlers = {}

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._old_handlers and _main_thread():
            self.restore_signal_handlers()


def group_members(pgid: int) -> list[int]:
    """Pids of the running processes of group `pgid`. On Linux read from /proc, so zombies (which
    a container's init may never reap) do not count; elsewhere `killpg(pgid, 0)` answers for all."""
    proc = Path("/proc")
    if sys.platform.startswith("linux") and proc.is_dir():
        found: list[int] = []
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
        return found
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    return [pgid]


def _signal_group(child: Child, sig: signal.Signals) -> None:
    try:
        os.killpg(child.pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover
        log.warning("no permission to signal %s's group %d", child.name, child.pgid)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


__all__ = [
    "Child",
    "NotReady",
    "ProcessDied",
    "ProcessError",
    "ProcessSpec",
    "Ready",
    "StopRequested",
    "Supervisor",
    "all_of",
    "group_members",
    "http_ok",
    "log_line",
    "tcp_port",
]
