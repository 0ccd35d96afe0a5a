"""The broker transport: kombu's Redis transport with one fix for a connection lost mid-task.

When a worker loses Redis (a restart, a failover), Celery's consumer first `collect()`s the broken
connection — which detaches the kombu `Connection` from its transport (`transport.client = None`) —
and then closes it. Closing the channel restores the unacked messages (the checks in flight, since
tasks ack late), and the stock channel builds its Redis pool from `transport.client`, now None:
`AttributeError: 'NoneType' object has no attribute 'hostname'` in `_connparams`. That is not a
connection error, so Celery logs "Unrecoverable error" and the worker exits. The same happens to a
late ack or reject sent through the old channel once the task ends.

Here a channel remembers the parameters of its Redis connections from their first use (they never
change for the life of a channel), so restoring, acking and rejecting through a channel whose
connection went away reach Redis again, or fail with a connection error Celery recovers from.
Selected by `make_celery` for redis:// and rediss:// brokers.

A channel also keeps one client of its (synchronous) connection pool. The stock channel builds a
new `redis.Redis` for every publish, ack and delivery bookkeeping; redis-py fills each new client's
table of ~200 reply callbacks, which was 3 % of a worker's interpreter time under the streams
benchmark. A client holds no connection of its own (each command takes one from the pool), so one
client serves every thread; a new pool (after the channel dropped its pools) gets a new client.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._remembered: dict[bool, dict[str, Any]] = {}
        self._sync_client: Any = None
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params = self._remembered.get(asynchronous)
        if params is None:
            params = self._remembered[asynchronous] = super()._connparams(asynchronous=asynchronous)
        return dict(params)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._sync_client
        if client is None or client.connection_pool is not pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
