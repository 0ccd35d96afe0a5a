"""Ordered indexes behind the list endpoints: newest-first pages with keyset cursors.

A keyset cursor ("continue after this key") survives inserts and removals between two pages: a
client paging through open orders while one of them is cancelled neither skips nor repeats an
order, which an offset cursor would do.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)


class SeqIndex(Generic[T]):
    """Items by an increasing integer sequence number; iterate newest (highest seq) first."""

    __slots__ = ("_items", "_seqs")

    def __init__(self) -> None:
        self._seqs: list[int] = []
        self._items: dict[int, T] = {}

    def __len__(self) -> int:
        return len(self._seqs)

    def __contains__(self, seq: int) -> bool:
        return seq in self._items

    def add(self, seq: int, item: T) -> None:
        if seq in self._items:
            self._items[seq] = item
            return
        if not self._seqs or seq > self._seqs[-1]:
            self._seqs.append(seq)
        else:
            insort(self._seqs, seq)
        self._items[seq] = item

    def remove(self, seq: int) -> None:
        if self._items.pop(seq, None) is None:
            return
        i = bisect_left(self._seqs, seq)
        del self._seqs[i]

    def newest_first(self, before: int | None = None) -> Iterator[T]:
        """Items with seq < `before` (all when None), highest seq first."""
        seqs, items = self._seqs, self._items
        i = len(seqs) if before is None else bisect_left(seqs, before)
        while i > 0:
            i -= 1
            yield items[seqs[i]]

    def page(self, before: int | None, limit: int) -> tuple[list[T], bool]:
        """Up to `limit` items with seq < `before`, highest first, and whether more follow
        (slices, no per-item Python loop over what is skipped)."""
        seqs, items = self._seqs, self._items
        end = len(seqs) if before is None else bisect_left(seqs, before)
        start = max(0, end - limit)
        return [items[s] for s in reversed(seqs[start:end])], start > 0

    def values(self) -> Iterator[T]:
        return iter(self._items.values())


class SortedKeys(Generic[K]):
    """A sorted set of keys (e.g. (symbol, positionIdx) of the open positions), ascending."""

    __slots__ = ("_keys", "_set")

    def __init__(self) -> None:
        self._keys: list[K] = []
        self._set: set[K] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: K) -> bool:
        return key in self._set

    def add(self, key: K) -> None:
        if key not in self._set:
            self._set.add(key)
            insort(self._keys, key)

    def discard(self, key: K) -> None:
        if key in self._set:
            self._set.discard(key)
            del self._keys[bisect_left(self._keys, key)]

    def page(self, key: K | None, limit: int) -> tuple[list[K], bool]:
        """Up to `limit` keys strictly greater than `key` (from the start when None), and whether
        more follow."""
        keys = self._keys
        i = 0
        if key is not None:
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                i += 1
        return keys[i : i + limit], i + limit < len(keys)

    def after(self, key: K | None) -> Iterator[K]:
        """Keys strictly greater than `key` (all when None), ascending."""
        keys = self._keys
        i = 0
        if key is not None:
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                i += 1
        while i < len(keys):
            yield keys[i]
            i += 1


def take(items: Iterator[T], limit: int, keep: Callable[[T], bool] | None = None) -> tuple[list[T], bool]:
    """Up to `limit` items passing `keep`, and whether at least one more would follow."""
    out: list[T] = []
    for item in items:
        if keep is not None and not keep(item):
            continue
        if len(out) == limit:
            return out, True
        out.append(item)
    return out, False
