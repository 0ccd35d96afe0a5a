"""The per-process memo of decoded monitor states: served only for the exact same text."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import Monitor, Tier
from tests.unit.core.builders import conservative_long
from workers.store import DecodedStates, encode


def monitor(mid: str = "m1", **kw: object) -> Monitor:
    return replace(Monitor(id=mid, account="main", plan=conservative_long(), tier=Tier.ACTIVE), **kw)


def test_an_unchanged_state_is_decoded_once_and_a_changed_one_again() -> None:
    memo = DecodedStates()
    first = monitor(version=3)
    text = encode(first)
    a = memo.decode("m1", text)
    b = memo.decode("m1", str(text))  # equal text, another object: still a hit
    assert a == first and b is a and (memo.hits, memo.misses) == (1, 1)

    moved = monitor(version=4, stop_price=D("59000"))
    c = memo.decode("m1", encode(moved))
    assert c == moved and c is not a and (memo.hits, memo.misses) == (1, 2)
    assert memo.decode("m1", text) == first  # an older text is decoded, never the newer monitor


def test_least_recently_used_states_go_first_past_the_bound() -> None:
    memo = DecodedStates(max_entries=2)
    texts = {mid: encode(monitor(mid)) for mid in ("a", "b", "c")}
    memo.decode("a", texts["a"])
    memo.decode("b", texts["b"])
    memo.decode("a", texts["a"])  # a is now the most recent
    memo.decode("c", texts["c"])  # b goes
    assert (memo.hits, memo.misses) == (1, 3)
    memo.decode("a", texts["a"])
    memo.decode("b", texts["b"])
    assert (memo.hits, memo.misses) == (2, 4)


def test_an_unreadable_state_raises_and_is_not_remembered() -> None:
    memo = DecodedStates()
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises; the store logs and skips it
        memo.decode("m1", '{"id": "m1"}')
    good = encode(monitor())
    assert memo.decode("m1", good) == monitor() and memo.misses == 1
