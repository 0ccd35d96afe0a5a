"""The workers' Celery app: `tpsl worker` runs it, and `celery -A tasks …` finds it here (beat runs
as `tpsl beat`, on the app of tasks/base.py without the tasks).

The app is built on first access from the environment (REDIS_URL, …); tests and tools build their own
with `tasks.app.create_app(settings)`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from tasks.app import default_app

        return default_app()
    raise AttributeError(name)
