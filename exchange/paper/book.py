"""Per-symbol price-sorted books: resting limit orders by side and untriggered conditional orders
by trigger direction and trigger price type.

Each ladder keeps its orders sorted by (key, priority) with `bisect`, so one price update pops
exactly the orders it crosses: O(log n + crossed), never a scan of the orders it does not touch.
Keys are chosen so that "crossed by price P" is always the prefix with key ≤ bound:

| ladder      | fills/triggers when        | key      | bound |
|-------------|----------------------------|----------|-------|
| buys        | last ≤ limit price         | -price   | -last |
| sells       | last ≥ limit price         | price    | last  |
| rise (dir 1)| price ≥ trigger            | trigger  | price |
| fall (dir 2)| price ≤ trigger            | -trigger | -price|

so each popped prefix comes out nearest-to-the-old-price first, then by priority (creation order).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from decimal import Decimal
from typing import TYPE_CHECKING

from core.models import Side

if TYPE_CHECKING:
    from exchange.paper.records import PaperOrder

_TOP = math.inf

MARK_PRICE = "MarkPrice"


class Ladder:
    __slots__ = ("_keys", "_orders")

    def __init__(self) -> None:
        self._keys: list[tuple[Decimal, int]] = []
        self._orders: dict[tuple[Decimal, int], PaperOrder] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Decimal, order: PaperOrder) -> None:
        k = (key, order.prio)
        insort(self._keys, k)
        self._orders[k] = order
        order.book_key = k
        order.ladder = self

    def remove(self, order: PaperOrder) -> None:
        k = order.book_key
        if k is None or self._orders.pop(k, None) is None:
            return
        del self._keys[bisect_left(self._keys, k)]
        order.book_key = None
        order.ladder = None

    def pop_crossed(self, bound: Decimal) -> list[PaperOrder]:
        """Remove and return every order whose key ≤ bound, in key then priority order."""
        keys = self._keys
        if not keys or keys[0][0] > bound:
            return []
        i = bisect_right(keys, (bound, _TOP))
        taken = keys[:i]
        del keys[:i]
        out = []
        for k in taken:
            order = self._orders.pop(k)
            order.book_key = None
            order.ladder = None
            out.append(order)
        return out


class SymbolBook:
    """The six ladders of one symbol (every account's orders share them)."""

    __slots__ = ("buys", "fall_last", "fall_mark", "rise_last", "rise_mark", "sells")

    def __init__(self) -> None:
        self.buys = Ladder()
        self.sells = Ladder()
        self.rise_last = Ladder()
        self.fall_last = Ladder()
        self.rise_mark = Ladder()
        self.fall_mark = Ladder()

    def add_limit(self, order: PaperOrder) -> None:
        if order.side is Side.BUY:
            self.buys.add(-order.price, order)
        else:
            self.sells.add(order.price, order)

    def add_conditional(self, order: PaperOrder) -> None:
        mark = order.trigger_by == MARK_PRICE
        if order.trigger_direction == 1:
            (self.rise_mark if mark else self.rise_last).add(order.trigger_price, order)
        else:
            (self.fall_mark if mark else self.fall_last).add(-order.trigger_price, order)

    @staticmethod
    def remove(order: PaperOrder) -> None:
        if order.ladder is not None:
            order.ladder.remove(order)

    def pop_triggered(self, last: Decimal, mark: Decimal) -> list[PaperOrder]:
        """Conditional orders whose trigger the current prices reached."""
        out = self.rise_last.pop_crossed(last)
        out += self.fall_last.pop_crossed(-last)
        out += self.rise_mark.pop_crossed(mark)
        out += self.fall_mark.pop_crossed(-mark)
        return out

    def pop_crossed_limits(self, last: Decimal) -> list[PaperOrder]:
        """Resting limit orders the last price reached (buys at or above it, sells at or below)."""
        return self.buys.pop_crossed(-last) + self.sells.pop_crossed(last)

    def resting(self) -> int:
        return len(self.buys) + len(self.sells)

    def waiting(self) -> int:
        return len(self.rise_last) + len(self.fall_last) + len(self.rise_mark) + len(self.fall_mark)
