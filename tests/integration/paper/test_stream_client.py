"""The guard's stream client (exchange/bybit/stream.py) against the paper exchange's streams and
their faults: pushes arrive; after a dropped connection, a stall, a refused auth or an idle cut it
reconnects, authenticates again, restores its subscriptions and signals a gap; counters count."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from core.models import Secret
from exchange.bybit.stream import BybitStreams, StreamEvent, StreamTiming
from exchange.paper.runner import PaperCredentials, PaperServer
from tests.integration.paper.v5client import V5Client
from tests.plugins.paper import PaperHandle

PRIVATE = "/v5/private"
FAST = StreamTiming(
    ping_interval_s=0.2, stall_timeout_s=0.4, reply_timeout_s=2.0, backoff_base_s=0.05, backoff_max_s=0.2
)


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue[StreamEvent] = queue.Queue()

    def __call__(self, event: StreamEvent) -> None:
        self.q.put(event)

    def wait(self, predicate, timeout: float = 10.0) -> StreamEvent:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no such stream event")
            event = self.q.get(timeout=remaining)
            if predicate(event):
                return event


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def streams(paper: PaperHandle, events: Events) -> Iterator[BybitStreams]:
    with BybitStreams(paper.base_url, events, timing=FAST, seed=1) as s:
        yield s


def place_limit(v5: V5Client, price: str) -> str:
    answer = v5.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price=price,
    )
    assert answer["retCode"] == 0, answer
    return answer["result"]["orderId"]


def is_gap(event: StreamEvent) -> bool:
    return event.kind == "gap"


def order_push(order_id: str):
    return lambda e: e.kind == "message" and e.topic == "order" and e.data[0]["orderId"] == order_id


def open_private(streams: BybitStreams, events: Events, creds: PaperCredentials) -> None:
    streams.add_private(creds.id, Secret(creds.api_key), Secret(creds.api_secret), ["order", "execution"])
    assert events.wait(is_gap).reason == "start"


def test_private_pushes_arrive(paper: PaperHandle, streams: BybitStreams, events: Events) -> None:
    creds = paper.new_account()
    open_private(streams, events, creds)
    order_id = place_limit(V5Client(paper.base_url, creds), "60000")
    event = events.wait(order_push(order_id))
    assert event.account == creds.id and event.connection == f"private:{creds.id}"
    stats = streams.stats()[f"private:{creds.id}"]
    assert stats["connected"] is True and stats["messages"] >= 1 and stats["last_message_age_s"] < 5


@pytest.mark.parametrize("fault", [{"drop_connection": True}, {"stall": True}])
def test_reconnects_resubscribes_and_signals_a_gap(
    paper: PaperHandle, streams: BybitStreams, events: Events, fault: dict
) -> None:
    creds = paper.new_account()
    v5 = V5Client(paper.base_url, creds)
    open_private(streams, events, creds)
    paper.admin.add_fault(endpoint=PRIVATE, count=1, **fault)
    place_limit(v5, "60000")  # its push is the message the fault takes
    reason = "dropped" if "drop_connection" in fault else "stall"
    assert events.wait(lambda e: e.kind == "down").reason == reason
    gap = events.wait(is_gap)
    assert gap.reason == reason
    # subscribed again: the next change is pushed
    later = place_limit(v5, "60001")
    seen = events.wait(lambda e: e.kind == "message" and e.topic == "order")
    assert seen.data[0]["orderId"] == later  # the lost push is not replayed: REST must tell
    stats = streams.stats()[f"private:{creds.id}"]
    assert stats["reconnects"] == 1 and stats["gaps"] == 2
    counted = paper.admin.streams()
    assert counted["dropped" if reason == "dropped" else "stalled"] == 1 and counted["auth_ok"] == 2


def test_refused_auth_is_retried(paper: PaperHandle, streams: BybitStreams, events: Events) -> None:
    creds = paper.new_account()
    paper.admin.add_fault(endpoint=PRIVATE, refuse_auth=True, count=2)
    streams.add_private(creds.id, Secret(creds.api_key), Secret(creds.api_secret), ["order"])
    assert events.wait(lambda e: e.kind == "down").reason == "auth"
    assert events.wait(is_gap).reason == "start"  # the first subscription, however late
    stats = streams.stats()[f"private:{creds.id}"]
    assert stats["auth_failures"] == 2 and stats["connected"] is True
    order_id = place_limit(V5Client(paper.base_url, creds), "60000")
    events.wait(order_push(order_id))


def test_lost_pushes_are_invisible_without_rest(
    paper: PaperHandle, streams: BybitStreams, events: Events
) -> None:
    """A lost push leaves no trace on the stream: only a REST read shows the order."""
    creds = paper.new_account()
    v5 = V5Client(paper.base_url, creds)
    open_private(streams, events, creds)
    paper.admin.add_fault(endpoint=PRIVATE, lose=True, count=1)
    lost = place_limit(v5, "60000")
    kept = place_limit(v5, "60001")
    assert events.wait(lambda e: e.kind == "message" and e.topic == "order").data[0]["orderId"] == kept
    assert events.q.empty()  # no down, no gap
    rows = v5.get("/v5/order/realtime", category="linear", symbol="BTCUSDT")["result"]["list"]
    assert lost in {r["orderId"] for r in rows}


def test_public_tickers_are_merged_and_shared(paper: PaperHandle, events: Events) -> None:
    with BybitStreams(paper.base_url, events, timing=FAST, public_topics_per_conn=2) as streams:
        streams.add_public(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        assert sorted(streams.connections) == ["public:1", "public:2"]
        gaps = {events.wait(is_gap).connection for _ in range(2)}
        assert gaps == {"public:1", "public:2"}
        paper.admin.set_prices({"BTCUSDT": "65100"})
        event = events.wait(
            lambda e: (
                e.kind == "message" and e.topic == "tickers.BTCUSDT" and e.data["lastPrice"] == "65100.00"
            )
        )
        assert event.data["fundingRate"] == "0.0001"  # the whole ticker, not only the delta


def test_idle_cut_is_a_clean_close_and_a_reconnect(events: Events) -> None:
    slow_pings = StreamTiming(
        ping_interval_s=5.0, stall_timeout_s=5.0, backoff_base_s=0.05, backoff_max_s=0.1
    )
    with (
        PaperServer(stream_idle_s=0.3) as server,
        BybitStreams(server.base_url, events, timing=slow_pings) as streams,
    ):
        streams.add_public(["BTCUSDT"])
        assert events.wait(is_gap).reason == "start"
        assert events.wait(lambda e: e.kind == "down").reason == "closed"
        assert events.wait(is_gap).reason == "closed"
