"""The per-process memo of decoded monitor states: served only for the exact same text."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import Monitor, Tier
from tests.unit.core.builders import conservative_long
from workers.store import decoded, encode


def monitor(mid: str = "m1", **kw: object) -> Monitor:
    return replace(Monitor(id=mid, account="main", plan=conservative_long(), tier=Tier.ACTIVE), **kw)


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    decoded.cache_clear()


def counts() -> tuple[int, int]:
    info = decoded.cache_info()
    return info.hits, info.misses


def test_an_unchanged_state_is_decoded_once_and_a_changed_one_again() -> None:
    first = monitor(version=3)
    text = encode(first)
    a = decoded(text)
    b = decoded("".join(text))  # equal text, another object: still a hit
    assert a == first and b is a and counts() == (1, 1)

    moved = monitor(version=4, stop_price=D("59000"))
    c = decoded(encode(moved))
    assert c == moved and c is not a and counts() == (1, 2)
    assert decoded(text) == first  # an older text gives its own monitor, never the newer one


def test_the_memo_is_bounded() -> None:
    assert decoded.cache_info().maxsize is not None and decoded.cache_info().maxsize >= 1000


def test_an_unreadable_state_raises_and_is_not_remembered() -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises; the store logs and skips it
        decoded('{"id": "m1"}')
    good = encode(monitor())
    assert decoded(good) == monitor() and decoded.cache_info().currsize == 1
