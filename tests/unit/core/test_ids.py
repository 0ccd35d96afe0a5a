import itertools

import pytest

from core import ids
from core.models import OrderRole


def test_link_id_shape_and_round_trip():
    mid = ids.monitor_id("main", "BTCUSDT", 0, "req-1")
    assert len(mid) == 10
    lid = ids.link_id(mid, OrderRole.TP, 2, 1)
    assert lid == f"tg{mid}-TP2-1"
    assert ids.parse_link_id(lid) == (mid, OrderRole.TP, 2, 1)
    assert ids.parse_link_id(ids.link_id(mid, OrderRole.SL, 0, 7)) == (mid, OrderRole.SL, 0, 7)


def test_ids_are_deterministic_and_distinct():
    assert ids.monitor_id("main", "BTCUSDT", 0, "a") == ids.monitor_id("main", "BTCUSDT", 0, "a")
    assert ids.monitor_id("main", "BTCUSDT", 0, "a") != ids.monitor_id("main", "BTCUSDT", 0, "b")
    assert ids.monitor_id("main", "BTCUSDT", 1, "a") != ids.monitor_id("main", "BTCUSDT", 2, "a")
    assert ids.mirror_monitor_id("abc", "mirror1") != ids.mirror_monitor_id("abc", "mirror2")


def test_every_link_id_fits_bybit_and_is_unique():
    mid = ids.monitor_id("an-account-with-a-long-name", "1000000PEPEUSDT", 2, "n")
    seen = set()
    slots = [(OrderRole.SL, 0)] + [(r, k) for r in (OrderRole.ENTRY, OrderRole.TP) for k in range(1, 11)]
    for (role, level), gen in itertools.product(slots, (1, 2, 99, 9999)):
        lid = ids.link_id(mid, role, level, gen)
        assert len(lid) <= 36
        assert all(c.isalnum() or c in "-_" for c in lid)
        assert lid not in seen
        seen.add(lid)


@pytest.mark.parametrize(
    "foreign",
    [
        "",
        "abc",
        "tgXYZ-TP1-1",
        "tg0123456789-SL1-1",
        "tg0123456789-TP-1",
        "web-order-17",
        "tg0123456789-TP1-",
    ],
)
def test_foreign_link_ids_are_not_ours(foreign):
    assert ids.parse_link_id(foreign) is None
    assert not ids.is_ours(foreign)


def test_event_ids_depend_on_content_only():
    assert ids.event_id("m", "tp_hit", 1) == ids.event_id("m", "tp_hit", 1)
    assert ids.event_id("m", "tp_hit", 1) != ids.event_id("m", "tp_hit", 2)
