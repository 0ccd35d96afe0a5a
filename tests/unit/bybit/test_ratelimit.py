"""Rolling one-second windows per (account, endpoint group): the Redis one (real Redis) and the in-process one
behave the same; time is an injected clock whose `sleep` advances it (no real waiting)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from config.settings import Settings
from core.errors import BackOff
from exchange.bybit.ratelimit import (
    WINDOW_MS,
    LocalTokenBucket,
    RedisTokenBucket,
    group_for,
    parse_limit_headers,
)

W = WINDOW_MS / 1000  # a rolling second plus the transit slack

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


SETTINGS = Settings(rate_read_per_s=50, rate_trade_per_s=10, rate_batch_orders_per_s=10, rate_headroom=0.8)


@pytest.fixture(params=["local", "redis"])
def make(request, redis_client):
    def build(clock: FakeClock, max_wait_s: float = 0.5, settings: Settings = SETTINGS):
        if request.param == "local":
            return LocalTokenBucket(settings, clock=clock, sleep=clock.sleep, max_wait_s=max_wait_s)
        return RedisTokenBucket(redis_client, settings, clock=clock, sleep=clock.sleep, max_wait_s=max_wait_s)

    build.kind = request.param
    return build


def test_groups() -> None:
    assert group_for("/v5/position/list").kind == "read"
    assert group_for("/v5/order/amend").kind == "trade"
    assert group_for("/v5/order/create-batch").kind == "batch"
    assert group_for("/v5/market/tickers") is None  # public: IP-limited only


def test_a_second_of_headroom_rate_then_it_waits_for_the_oldest_grant_to_leave(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=2)
    for _ in range(8):  # 10/s × 0.8
        rl.acquire("main", "/v5/order/amend")
    assert clock.slept == []
    rl.acquire("main", "/v5/order/amend")  # the 9th waits until the first leaves the window
    assert clock.slept == [pytest.approx(W, abs=0.002)]


def test_too_long_a_wait_is_a_back_off_not_a_sleep(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.05)
    for _ in range(8):
        rl.acquire("main", "/v5/order/amend")
    with pytest.raises(BackOff) as info:
        rl.acquire("main", "/v5/order/amend")
    assert clock.slept == []
    assert info.value.until == pytest.approx(T0 + W, abs=0.002)


@pytest.mark.parametrize("step_ms", [1, 37, 125, 333])
def test_no_rolling_second_ever_holds_more_than_the_budget(make, step_ms) -> None:
    """The exchange's rule: at most `limit` units in any rolling second, bursts included (a token
    bucket lets a full bucket plus a second of refill through: twice the rate)."""
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.0)
    granted: list[tuple[float, int]] = []
    for i in range(400):
        cost = 1 + i % 3
        try:
            rl.acquire("main", "/v5/order/create-batch", cost=cost)
            granted.append((clock.t, cost))
        except BackOff:
            pass
        clock.t += step_ms / 1000
    demand = sum(1 + i % 3 for i in range(400))
    assert sum(c for _, c in granted) >= min(demand, 8 * 400 * step_ms / 1000 / W) * 0.6  # not starved
    for t, _ in granted:
        assert sum(c for u, c in granted if t - W < u <= t) <= 8


def test_accounts_and_groups_are_separate_buckets(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.0)
    for _ in range(8):
        rl.acquire("main", "/v5/order/amend")
    rl.acquire("mirror1", "/v5/order/amend")
    rl.acquire("main", "/v5/order/create-batch")
    rl.acquire("main", "/v5/order/cancel-batch")
    rl.acquire("main", "/v5/market/tickers")  # not limited


def test_batches_count_per_item_and_a_huge_one_passes_alone(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=10)
    rl.acquire("main", "/v5/order/create-batch", cost=5)
    rl.acquire("main", "/v5/order/create-batch", cost=3)  # 8: the window is full
    rl.acquire("main", "/v5/order/create-batch", cost=20)  # more than the budget: waits for an empty window
    assert sum(clock.slept) == pytest.approx(W, abs=0.01)
    rl.acquire("main", "/v5/order/create-batch", cost=1)  # and then a whole window for itself
    assert sum(clock.slept) == pytest.approx(2 * W, abs=0.01)


def test_the_window_rolls(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.0)
    for _ in range(20):  # 50/s × 0.8 = 40 in a window, 20 now…
        rl.acquire("main", "/v5/position/list")
    clock.t += W / 2
    for _ in range(20):  # …and 20 half a window later
        rl.acquire("main", "/v5/position/list")
    with pytest.raises(BackOff):
        rl.acquire("main", "/v5/position/list")
    clock.t += W / 2 + 0.001  # the first 20 leave the window
    for _ in range(20):
        rl.acquire("main", "/v5/position/list")
    with pytest.raises(BackOff):
        rl.acquire("main", "/v5/position/list")


def test_recorded_back_off_stops_every_caller_until_the_reset(make) -> None:
    clock = FakeClock()
    a, b = make(clock, max_wait_s=0.0), make(clock, max_wait_s=0.0)  # two workers
    a.back_off("main", "/v5/order/realtime", T0 + 2.0)
    with pytest.raises(BackOff) as info:
        (b if make.kind == "redis" else a).acquire("main", "/v5/order/realtime")
    assert info.value.until == pytest.approx(T0 + 2.0)
    a.acquire("main", "/v5/position/list")  # another group is not affected
    clock.t += 2.001
    (b if make.kind == "redis" else a).acquire("main", "/v5/order/realtime")


def test_short_back_off_is_waited_out(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.5)
    rl.back_off("main", "/v5/order/amend", T0 + 0.2)
    rl.acquire("main", "/v5/order/amend")
    assert sum(clock.slept) == pytest.approx(0.2, abs=0.002)


def test_headers_cap_the_window_and_zero_remaining_backs_off(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.0)
    rl.observe("main", "/v5/order/amend", {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "2"})
    rl.acquire("main", "/v5/order/amend")
    rl.acquire("main", "/v5/order/amend")
    with pytest.raises(BackOff):
        rl.acquire("main", "/v5/order/amend")
    reset = int((T0 + 0.7) * 1000)
    rl.observe(
        "main", "/v5/order/cancel", {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset)}
    )
    with pytest.raises(BackOff) as info:
        rl.acquire("main", "/v5/order/cancel")
    assert info.value.until == pytest.approx(T0 + 0.7, abs=0.002)


def test_a_header_with_a_full_window_left_changes_nothing_and_is_not_stored(make) -> None:
    clock = FakeClock()
    rl = make(clock, max_wait_s=0.0)
    stored: list[int] = []
    real = rl._observe
    rl._observe = lambda key, remaining, *a: (stored.append(remaining), real(key, remaining, *a))
    rl.observe("main", "/v5/order/amend", {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9"})
    rl.observe("main", "/v5/order/amend", {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "8"})
    assert stored == []  # the budget is 10 × 0.8 = 8 units: 8 or 9 remaining cannot lower it
    for _ in range(8):
        rl.acquire("main", "/v5/order/amend")
    with pytest.raises(BackOff):
        rl.acquire("main", "/v5/order/amend")
    rl.observe("main", "/v5/order/amend", {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "7"})
    assert stored == [7]


def test_parse_limit_headers() -> None:
    assert parse_limit_headers(
        {"x-bapi-limit-status": "9", "X-Bapi-Limit-Reset-Timestamp": "1672738134824"}
    ) == (
        9,
        1672738134824,
    )
    assert parse_limit_headers({}) == (None, None)
    assert parse_limit_headers({"X-Bapi-Limit-Status": "n/a"}) == (None, None)


def test_redis_down_lets_calls_through() -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    rl = RedisTokenBucket(dead, SETTINGS, max_wait_s=0.0)
    for _ in range(20):
        rl.acquire("main", "/v5/order/amend")


def _hammer(redis_url: str, ready, go, out) -> None:  # a worker process
    import redis

    rl = RedisTokenBucket(redis.Redis.from_url(redis_url, decode_responses=True), SETTINGS, max_wait_s=0.0)
    ready.put(1)
    go.wait(60)
    until = time.time() + 0.6
    admitted = []
    while time.time() < until:
        try:
            rl.acquire("fleet", "/v5/order/create")
            admitted.append(time.time())
        except BackOff:
            time.sleep(0.005)
    out.put(admitted)


def test_a_fleet_of_processes_shares_one_budget(redis_url: str, redis_client) -> None:
    """Three processes call as fast as they can: together they never get more than the bucket (8)
    plus what refills (8/s) over the span of their admissions. A slow machine only lowers counts."""
    ctx = multiprocessing.get_context("fork")  # a worker pool forks too
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_hammer, args=(redis_url, ready, go, out)) for _ in range(3)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()
    admitted = sorted(t for _ in procs for t in out.get(timeout=60))
    for p in procs:
        p.join(timeout=30)
    assert len(admitted) >= 8
    span = admitted[-1] - admitted[0]
    assert len(admitted) <= 8 + 8 * span + 1


def test_bucket_levels_read_what_the_limiter_wrote(redis_client) -> None:
    """The read side /metrics uses: units left at the last use and the back-off left, per bucket."""
    from exchange.bybit.ratelimit import bucket_levels

    clock = FakeClock()
    rl = RedisTokenBucket(redis_client, SETTINGS, clock=clock, sleep=clock.sleep, max_wait_s=0.0)
    for _ in range(3):
        rl.acquire("main", "/v5/order/create")
    rl.back_off("main", "/v5/order/amend", until=T0 + 2.5)
    levels = {(b.account, b.group): b for b in bucket_levels(redis_client, ["main"], now=T0 + 0.5)}
    assert levels[("main", "create")].units_left == 5.0  # 8 of the window, 3 taken
    assert levels[("main", "create")].backoff_s is None
    assert levels[("main", "amend")].backoff_s == pytest.approx(2.0)
    assert levels[("main", "position")] == ("main", "position", None, None)
    assert bucket_levels(redis_client, [], now=T0) == []
