"""Events leave a worker through queues: critical ones to `persist`, alerts to `alerts`."""

from __future__ import annotations

from typing import Any

from celery import Celery

from config.queues import ALERTS_QUEUE, PERSIST_QUEUE


class CeleryPublisher:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def persist_critical(self, events: list[dict[str, Any]], monitors: list[dict[str, Any]]) -> None:
        self.app.send_task(
            "tpsl.persist_critical", args=[events, monitors], queue=PERSIST_QUEUE, routing_key=PERSIST_QUEUE
        )

    def alert(self, event: dict[str, Any]) -> None:
        self.app.send_task("tpsl.alert", args=[event], queue=ALERTS_QUEUE, routing_key=ALERTS_QUEUE)
