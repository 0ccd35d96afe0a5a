"""A per-process memo of decoded rows: the decoded value of each key this process read lately, with
the exact text it was decoded from, served again only for that same text.

Decoding is pure and what it makes is immutable (frozen dataclasses), so a text unchanged since this
process last read it gives the same value without decoding again. Checks read the same rows pass
after pass (a monitor's state, an account's positions and the orders of the monitors checked), and
most of them have not changed since: decoding them again was a quarter of the worker's CPU.

A key holds one entry, replaced when its text changes, so a memo's size follows the live keys and
never the churn of their versions; past `maxsize` keys the least recently read go. The text is
compared in full, so a stale value can never be served; a text that does not decode raises and is
not kept. Thread-safe (the threads pool shares one memo per process)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Text = str | bytes


class Decoded(Generic[K, T]):
    """The memo of one kind of row: `get(key, text)` is `decode(text)`, decoded once per text."""

    def __init__(self, decode: Callable[[Text], T], maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize: must be a positive count (got {maxsize!r})")
        self.decode = decode
        self.maxsize = maxsize
        self._data: OrderedDict[K, tuple[Text, T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K, text: Text) -> T:
        with self._lock:
            held = self._data.get(key)
            if held is not None and held[0] == text:
                self._data.move_to_end(key)
                self.hits += 1
                return held[1]
        value = self.decode(text)  # outside the lock: the other threads go on meanwhile
        with self._lock:
            self._data[key] = (text, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
            self.misses += 1
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0
