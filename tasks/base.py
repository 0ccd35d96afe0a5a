"""The Celery app as every process configures it, without the task bodies: broker, queues and
routes (config/celery_app.py), beat's schedule (beat_schedule.py) and the logging setup.

Beat and the stream process use it as it is: they only send tasks, by name, so they never import
what the tasks run (the checker, the exchange client, persistence, SQLAlchemy). The workers' app
(tasks/app.py `create_app`) is this app with the tasks and the worker signals added.

A message sent by name carries the options its sender gives (queue, expiry, and the limits a
check's tier sets) but not the task's own defaults: a worker reads the time limits and
`ignore_result` a message leaves out from the task it runs, which are the values the task object
would have written into the message. So the workers run these messages exactly as before.
"""

from __future__ import annotations

from celery import Celery, signals

import beat_schedule
from config.celery_app import make_celery
from config.logging import setup_logging
from config.settings import Settings


def configured_app(settings: Settings) -> Celery:
    """A new app from `settings`: its configuration and beat schedule, no task registered."""
    app = make_celery(settings)
    app.conf.beat_schedule = beat_schedule.schedule(settings)

    @signals.setup_logging.connect(weak=False, dispatch_uid="tpsl.setup_logging")
    def _logging(**_: object) -> None:
        setup_logging(settings.log_level)

    return app
