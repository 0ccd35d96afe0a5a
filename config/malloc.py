"""The C allocator's arenas of a process that runs threads (a threads-pool worker, the stream process).

glibc gives a thread that finds the arenas busy a new one, up to eight per core, and memory freed in
one arena serves only that arena. A worker with a dozen task threads and the exchange client's
threads so ends up with a dozen arenas, each holding the high-water mark of the work its threads
did: RSS that is neither leaked nor used again (docs/benchmarks.md, Malloc arenas). Capping the
arenas before the threads start makes them share: a little lock contention in malloc, which these
processes (waiting on sockets, and on the GIL anyway) do not feel.

`M_ARENA_MAX` is glibc's; on another C library (musl, macOS) the cap is not applied and the process
runs with the allocator's own behaviour.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

__all__ = ["cap_arenas"]

_M_ARENA_MAX = -8  # glibc malloc.h


def cap_arenas(arenas: int) -> bool:
    """Let this process's threads share at most `arenas` malloc arenas (0: the allocator's default);
    call it before the threads start. True when the cap is in place."""
    if arenas <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to cap
        log.debug("malloc arenas not capped: no glibc mallopt")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
