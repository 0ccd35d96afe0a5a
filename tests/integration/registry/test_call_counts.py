"""Exchange calls counted for the fleet (exchange/bybit/callstats.py): a process adds its counts to
Redis at most once a second, not once per call, and loses none."""

from __future__ import annotations

from exchange.bybit.callstats import FLUSH_S, CallStats


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fleet_counts(redis_client, minute: int) -> dict[str, int]:
    return {k: int(v) for k, v in redis_client.hgetall(f"tpsl:calls:{minute}").items()}


def test_counts_reach_redis_once_a_second_and_all_of_them(redis_client) -> None:
    clock = Clock(6000.0)  # minute 100
    stats = CallStats(redis_client, clock=clock)
    for _ in range(30):
        stats.record("main", "/v5/order/amend", True)
    stats.record("main", "/v5/order/amend", False)
    assert fleet_counts(redis_client, 100) == {}  # within the second: nothing sent yet

    clock.t += FLUSH_S
    stats.record("main", "/v5/position/list", True)  # the call that finds them due sends them all
    assert fleet_counts(redis_client, 100) == {
        "main|/v5/order/amend": 31,
        "main|/v5/order/amend|err": 1,
        "main|/v5/position/list": 1,
    }
    assert 0 < redis_client.ttl("tpsl:calls:100") <= 7200


def test_another_process_sees_them_after_a_flush_and_a_reader_sees_its_own_at_once(redis_client) -> None:
    clock = Clock(6000.0)
    worker = CallStats(redis_client, clock=clock)
    dashboard = CallStats(redis_client, clock=clock)
    worker.record("mirror1", "/v5/order/create-batch", True)
    assert dashboard.minute(100) == {}
    assert worker.minute(100) == {"mirror1|/v5/order/create-batch": 1}  # its own, read back
    assert dashboard.minute(100) == {"mirror1|/v5/order/create-batch": 1}


def test_a_minute_boundary_keeps_each_call_in_its_own_minute(redis_client) -> None:
    clock = Clock(6059.5)
    stats = CallStats(redis_client, clock=clock)
    stats.record("main", "/v5/order/amend", True)
    clock.t = 6060.6  # minute 101, and the first count is due
    stats.record("main", "/v5/order/amend", True)
    assert fleet_counts(redis_client, 100) == {"main|/v5/order/amend": 1}
    assert fleet_counts(redis_client, 101) == {"main|/v5/order/amend": 1}


def test_without_redis_the_counts_stay_in_the_process() -> None:
    clock = Clock(6000.0)
    stats = CallStats(None, clock=clock)
    stats.record("main", "/v5/order/amend", True)
    stats.record("main", "/v5/order/amend", False)
    assert stats.minute(100) == {"main|/v5/order/amend": 2, "main|/v5/order/amend|err": 1}
