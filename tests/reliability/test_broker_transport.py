"""The broker transport's fix, on kombu alone. Celery's consumer `collect()`s a lost connection —
which detaches the kombu Connection from its transport (`transport.client = None`) — and then
closes it; closing the channel restores its unacked messages. The stock Redis channel builds its
pool from `transport.client` and fails with an AttributeError (the worker exits); ours remembers
its connection parameters and restores the message. (The whole sequence, with real workers and
real Redis restarts, is tests/reliability/test_redis_restart.py.)"""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from config.broker import TRANSPORT

QUEUE = Queue("t.q", Exchange("t", type="direct"), routing_key="t.q")


def unacked_then_detached(redis_url: str, transport: str):
    """A channel holding one unacked message whose transport has been detached, as after collect()."""
    conn = Connection(redis_url, transport=transport, transport_options={"visibility_timeout": 3600})
    ch = conn.default_channel
    with conn.Producer(ch) as producer:
        producer.publish({"n": 1}, exchange=QUEUE.exchange, routing_key="t.q", declare=[QUEUE])
    message = ch.basic_get("t.q", no_ack=False)
    assert message is not None and ch.qos._delivered  # delivered, not acked
    ch._disconnect_pools()  # the connection was lost: its pools are dropped
    conn.transport.client = None  # what Connection.collect() does to the transport
    return conn, ch


def test_stock_kombu_channel_cannot_restore_once_detached(redis_client, redis_url) -> None:
    # the upstream behaviour the transport works around; when this stops raising, the fix can go
    _conn, ch = unacked_then_detached(redis_url, "redis")
    with pytest.raises(AttributeError, match="hostname"):
        ch.qos.restore_unacked()
    assert redis_client.llen("t.q") == 0
    ch.qos._on_collect.cancel()  # kombu would try again at interpreter exit (and print the error)


def test_our_channel_restores_the_unacked_message_once_detached(redis_client, redis_url) -> None:
    _conn, ch = unacked_then_detached(redis_url, TRANSPORT)
    ch.qos.restore_unacked()
    assert redis_client.llen("t.q") == 1  # back in its queue at once
    with Connection(redis_url, transport=TRANSPORT) as fresh:
        again = fresh.default_channel.basic_get("t.q", no_ack=True)
        assert again is not None and again.payload == {"n": 1}


def test_our_channel_keeps_one_client_per_pool(redis_client, redis_url) -> None:
    # every publish and ack used to build a new redis.Redis (its callback table filled each time)
    with Connection(redis_url, transport=TRANSPORT) as conn:
        ch = conn.default_channel
        first = ch._create_client()
        assert ch._create_client() is first
        with conn.Producer(ch) as producer:
            producer.publish({"n": 2}, exchange=QUEUE.exchange, routing_key="t.q", declare=[QUEUE])
        message = ch.basic_get("t.q", no_ack=False)
        assert message is not None
        message.ack()
        assert redis_client.llen("t.q") == 0
        ch._disconnect_pools()  # a lost connection: a new pool, and a client of the new pool
        again = ch._create_client()
        assert again is not first and again.connection_pool is ch.pool
        assert again.ping()
