"""Real processes for the reliability tests: a Redis of the test's own (so it can be restarted or
flushed without touching the session's), `tpsl worker` subprocesses, and the settings and
environment they share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.queues import ALL_QUEUES
from config.settings import Settings
from tests.plugins.stack import FAST_TIERS, stack_settings
from workers.runtime import Runtime, build_runtime, set_runtime

ROOT = Path(__file__).resolve().parents[2]
# what `stack_settings` sets beside the services and accounts (a worker subprocess gets them too)
STACK_DEFAULTS: dict[str, Any] = {
    "tier_intervals": FAST_TIERS,
    "dispatch_tick_s": 0.1,
    "claim_lookahead_s": 0.1,
    "account_lock_ttl_s": 10.0,
    "idle_after_s": 600.0,
    "ticker_cache_s": 0.1,
}


@dataclass
class Env:
    settings: Settings
    rt: Runtime
    env: dict[str, str]
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker(
        self,
        name: str,
        *,
        queues: tuple[str, ...] = tuple(ALL_QUEUES),
        pool: str = "prefork",
        concurrency: int = 2,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "cli.main",
            "worker",  # the Procfile's worker command
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "-Q",
            ",".join(queues),
            "--prefetch-multiplier",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.workers.append(proc)
        return proc, log

    def stop_workers(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait(5)


def env_vars(
    redis_url: str, db_url: str, accounts: list[dict[str, Any]], over: dict[str, Any]
) -> dict[str, str]:
    """The environment a worker subprocess reads the same settings from."""
    out = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        REDIS_URL=redis_url,
        DATABASE_URL=db_url,
        TPSL_ACCOUNTS=json.dumps(accounts),
    )
    for name, value in {**STACK_DEFAULTS, **over}.items():
        if isinstance(value, dict):
            value = json.dumps({getattr(k, "value", k): v for k, v in value.items()})
        out["TPSL_" + name.upper()] = str(value)
    return out


@contextmanager
def environment(redis_url: str, tmp: Path, accounts: list[dict[str, Any]], **over: Any) -> Iterator[Env]:
    from persistence.migrate import upgrade
    from tasks.app import create_app, runtime

    db_url = f"sqlite:///{tmp / 'tpsl.db'}"
    upgrade(db_url)
    settings = stack_settings(redis_url, db_url, accounts, **over)
    assert settings == stack_settings(redis_url, db_url, accounts, **{**STACK_DEFAULTS, **over})
    rt = build_runtime(settings)
    set_runtime(rt)
    runtime(create_app(settings))
    e = Env(settings, rt, env_vars(redis_url, db_url, accounts, over), tmp)
    try:
        yield e
    finally:
        e.stop_workers()
        set_runtime(None)
        rt.close()
