"""Running one function on several threads at once, for the tests of thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def side_by_side(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[BaseException]:
    """`fn(*a)` for each `a` of `args`, each on a thread of its own, all let go at once (a barrier);
    what any of them raised (every failure is the test's finding), after all have ended."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(args))

    def run(*a: Any) -> None:
        start.wait()
        try:
            fn(*a)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
