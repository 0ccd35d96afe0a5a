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
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._remembered: dict[bool, dict[str, Any]] = {}
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params = self._remembered.get(asynchronous)
        if params is None:
            params = self._remembered[asynchronous] = super()._connparams(asynchronous=asynchronous)
        return dict(params)


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
