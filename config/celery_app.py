"""The Celery app factory: queues declared from the tier table, the settings that matter
(docs/architecture.md: the tier table, the processes).

- one queue per tier (Redis has no real priorities); a worker reading several reads them in its -Q
  order (`queue_order_strategy='priority'`);
- late acks + prefetch 1: a message is taken only when a worker slot is free, and a worker killed
  mid-task gives the message back (after `visibility_timeout`, swept every `unacked_restore_interval`);
- every check message expires after its tier's interval (a newer one is due by then);
- results are ignored, JSON only, time limits on every task.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from celery import Celery
from kombu.entity import Exchange, Queue

from config.broker import TRANSPORT
from config.queues import (
    ALERTS_QUEUE,
    ALL_QUEUES,
    MAINTENANCE_QUEUE,
    PERSIST_QUEUE,
    TIERS,
)
from config.settings import Settings
from core.models import Tier

# task name -> queue (checks are routed per message, by the tier of the account's most urgent monitor)
ROUTES: dict[str, str] = {
    "tpsl.check": TIERS[Tier.STANDARD].queue,
    "tpsl.stream_check": TIERS[Tier.CRITICAL].queue,
    "tpsl.persist_critical": PERSIST_QUEUE,
    "tpsl.persist_events": PERSIST_QUEUE,
    "tpsl.flush": PERSIST_QUEUE,
    "tpsl.alert": ALERTS_QUEUE,
    "tpsl.maintenance": MAINTENANCE_QUEUE,
    "tpsl.maintenance_prune": MAINTENANCE_QUEUE,
    "tpsl.maintenance_orphans": MAINTENANCE_QUEUE,
    "tpsl.maintenance_reconcile": MAINTENANCE_QUEUE,
    "tpsl.stats": MAINTENANCE_QUEUE,
    "tpsl.refresh_views": MAINTENANCE_QUEUE,
    "tpsl.refresh_view": MAINTENANCE_QUEUE,
    "tpsl.series": MAINTENANCE_QUEUE,
}


def make_celery(settings: Settings, *, main: str = "tpsl") -> Celery:
    if not settings.redis_dsn:
        raise RuntimeError("REDIS_URL is not set (tpsl demo starts an embedded Redis for you)")
    app = Celery(main, broker=settings.redis_dsn, set_as_current=False)
    scheme = urlsplit(settings.redis_dsn).scheme
    if scheme in ("redis", "rediss"):
        # kombu's Redis transport with the fix for a connection lost mid-task (config/broker.py)
        app.conf.broker_transport = TRANSPORT
        if scheme == "rediss":
            # an explicit transport skips kombu's rediss:// defaults: TLS, certificates verified
            app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    exchange = Exchange("tpsl", type="direct")
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=name) for name in ALL_QUEUES],
        task_default_queue=TIERS[Tier.STANDARD].queue,
        task_default_exchange="tpsl",
        task_default_routing_key=TIERS[Tier.STANDARD].queue,
        task_routes={name: {"queue": q, "routing_key": q} for name, q in ROUTES.items()},
        task_create_missing_queues=False,
        # serialisation: JSON only (no pickle: a message is data, never code)
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # results are never read
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        result_backend=None,
        # delivery: late ack + prefetch 1 on latency pools; a lost worker's message is redelivered
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "queue_order_strategy": "priority",
            "socket_timeout": 15,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 25,
            "max_connections": 200,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_heartbeat=0,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=settings.soft_shutdown_timeout_s,
        worker_enable_soft_shutdown_on_idle=True,
        # every task has limits; the tier table gives the checks theirs
        task_soft_time_limit=50,
        task_time_limit=60,
        worker_max_tasks_per_child=None,
        # three events per task through the broker, for a monitor: Flower turns them on itself
        # while it runs (its enable_events, every 5 s), so by default a worker sends none
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
        timezone="UTC",
        beat_schedule={},
    )
    return app
