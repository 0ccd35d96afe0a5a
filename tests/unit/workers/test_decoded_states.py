"""The per-process memo of decoded monitor states: served only for the exact same text, one entry per
monitor, bounded, shared safely by the threads of one process."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import Monitor, Tier
from tests.threads import side_by_side
from tests.unit.core.builders import conservative_long
from workers.store import DECODED_MAX, DecodedStates, decoded, decoded_states, encode


def monitor(mid: str = "m1", **kw: object) -> Monitor:
    return replace(Monitor(id=mid, account="main", plan=conservative_long(), tier=Tier.ACTIVE), **kw)


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    decoded_states().clear()


def counts() -> tuple[int, int]:
    memo = decoded_states()
    return memo.hits, memo.misses


def test_an_unchanged_state_is_decoded_once_and_a_changed_one_again() -> None:
    first = monitor(version=3)
    text = encode(first)
    a = decoded("m1", text)
    b = decoded("m1", "".join(text))  # equal text, another object: still a hit
    assert a == first and b is a and counts() == (1, 1)

    moved = monitor(version=4, stop_price=D("59000"))
    c = decoded("m1", encode(moved))
    assert c == moved and c is not a and counts() == (1, 2)
    assert decoded("m1", text) == first  # an older text gives its own monitor, never the newer one


def test_a_monitor_holds_one_entry_whatever_its_versions() -> None:
    for version in range(50):
        decoded("m1", encode(monitor(version=version)))
    assert len(decoded_states()) == 1  # the memo follows the live monitors, not the churn of states


def test_the_memo_is_bounded_least_recently_read_first() -> None:
    assert DECODED_MAX >= 1000
    memo = DecodedStates(maxsize=3)
    texts = {mid: encode(monitor(mid)) for mid in ("a", "b", "c", "d")}
    for mid in ("a", "b", "c"):
        memo.get(mid, texts[mid])
    memo.get("a", texts["a"])  # read again: "b" is now the least recently read
    memo.get("d", texts["d"])
    assert len(memo) == 3
    hits = memo.hits
    memo.get("a", texts["a"])
    memo.get("c", texts["c"])
    assert memo.hits == hits + 2  # kept
    misses = memo.misses
    memo.get("b", texts["b"])
    assert memo.misses == misses + 1  # "b" had gone
    with pytest.raises(ValueError, match="maxsize"):
        DecodedStates(maxsize=0)


def test_an_unreadable_state_raises_and_is_not_remembered() -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises; the store logs and skips it
        decoded("m1", '{"id": "m1"}')
    good = encode(monitor())
    assert decoded("m1", good) == monitor() and len(decoded_states()) == 1


def test_threads_share_the_memo_safely() -> None:
    memo = DecodedStates(maxsize=50)
    texts = [encode(monitor(f"m{i}", version=i)) for i in range(100)]

    def reader(offset: int) -> None:
        for n in range(400):
            i = (n * 7 + offset) % 100
            assert memo.get(f"m{i}", texts[i]).version == i

    assert side_by_side(reader, [(k,) for k in range(8)]) == []
    assert len(memo) == 50 and memo.hits + memo.misses == 8 * 400
