"""`tpsl beat`, `tpsl stream` and `tpsl worker` as real processes, against a real Redis (and the
paper exchange): beat claims a due monitor and sends its check, and its ticks, by task name to their
queues, the stream process opens the
account's stream, the worker consumes its queues, and none has loaded what it does not use
(tests/unit/test_architecture.py's lists), read from the process's own `sys.modules` once it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

from config import keys
from config.queues import MAINTENANCE_QUEUE, TIERS
from config.settings import Settings
from core.models import Tier
from persistence.migrate import upgrade
from tasks.dispatch import ChildRebuild
from tests.unit.test_architecture import LIGHT_PROCESS_FORBIDDEN, WORKER_FORBIDDEN
from workers.registry import Registry

LIMIT_S = 90.0  # generous: only a process that never becomes ready takes this long
# the test's own settings, never the environment's
INHERIT_NOT = {"REDIS_URL", "DATABASE_URL", "TPSL_ACCOUNTS", "TPSL_ACCOUNTS_FILE", "TPSL_STREAMS"}

# Runs `tpsl <argv>` in the main thread, as the console script does; a watcher thread waits until
# `ready()` (Redis shows the process at work), prints the forbidden modules loaded, and ends the process.
RUNNER = textwrap.dedent(
    """
    import json, os, sys, threading, time

    import redis

    names = json.loads(os.environ["TEST_FORBIDDEN"])
    r = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)

    def ready():
        {ready}

    def watch():
        while not ready():
            time.sleep(0.05)
        loaded = sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in list(sys.modules)))
        print("LOADED " + json.dumps(loaded), flush=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    sys.argv = ["tpsl", *json.loads(os.environ["TEST_ARGV"])]
    from cli.main import main

    main()
    """
)


def run_until_ready(
    argv: list[str], ready: str, env: dict[str, str], forbidden: list[str] = LIGHT_PROCESS_FORBIDDEN
) -> list[str]:
    """The modules of `forbidden` a running `tpsl <argv>` has loaded once `ready` (a Python
    expression over `r`, a Redis client) holds."""
    code = RUNNER.format(ready=f"return {ready}")
    inherited = {k: v for k, v in os.environ.items() if k not in INHERIT_NOT}
    child_env = {
        **inherited,
        **env,
        "TEST_FORBIDDEN": json.dumps(forbidden),
        "TEST_ARGV": json.dumps(argv),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=LIMIT_S
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("LOADED ")]
    assert out.returncode == 0 and lines, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return list(json.loads(lines[0].removeprefix("LOADED ")))


def test_beat_claims_a_due_monitor_and_sends_its_check_by_name_without_loading_the_tasks(
    redis_url, redis_client, tmp_path: Path
):
    """Beat's dispatcher thread claims the due monitor and publishes its check to the tier's queue;
    its schedule's ticks go by name too (series, every 5 s). A reconciled registry (its epoch
    present) is not rebuilt, so beat never loads the database's layer."""
    critical = TIERS[Tier.CRITICAL].queue
    registry = Registry(redis_client, Settings())
    redis_client.hset(keys.registry_epoch(keys.PREFIX), mapping={"id": "light", "since": "0"})
    assert registry.add("m-light", "main", "{}", Tier.CRITICAL, due_at=0.0)
    schedule = tmp_path / "celerybeat-schedule"
    loaded = run_until_ready(
        ["beat", "--loglevel", "INFO", "--schedule", str(schedule)],
        f"r.llen({critical!r}) > 0 and r.llen({MAINTENANCE_QUEUE!r}) > 0",
        {"REDIS_URL": redis_url},
    )
    assert loaded == []
    # the check as a worker receives it: by name, routed to the tier's queue, expiring, its limits set
    message = orjson.loads(redis_client.lindex(critical, 0))
    assert message["headers"]["task"] == "tpsl.check"
    assert "m-light" in message["headers"]["argsrepr"]
    assert message["headers"]["expires"] is not None
    spec = TIERS[Tier.CRITICAL]
    assert message["headers"]["timelimit"] == [spec.time_limit_s, spec.soft_time_limit_s]
    assert message["properties"]["delivery_info"]["routing_key"] == critical
    tick = orjson.loads(redis_client.lindex(MAINTENANCE_QUEUE, 0))
    assert tick["headers"]["task"] == "tpsl.series"


def test_beats_dispatcher_rebuilds_a_lost_registry_from_the_database(redis_url, redis_client, tmp_path: Path):
    """A Redis without the registry's epoch (flushed, replaced): beat's dispatcher has it rebuilt
    from the database before it claims, by `tpsl reconcile` in a child process, which writes a new
    epoch; beat itself never loads the database's layer (docs/reliability.md)."""
    db_url = f"sqlite:///{tmp_path / 'tpsl.db'}"
    upgrade(db_url)
    loaded = run_until_ready(
        ["beat", "--schedule", str(tmp_path / "celerybeat-schedule")],
        f"r.exists({keys.registry_epoch(keys.PREFIX)!r}) == 1",
        {"REDIS_URL": redis_url, "DATABASE_URL": db_url},
    )
    assert loaded == []


def test_beats_rebuild_runs_its_child_at_most_every_few_seconds(tmp_path: Path):
    """While the epoch stays missing (another reconcile holds the lock), beat does not start a
    child per tick: one every `every_s`. The child here only counts its runs."""
    runs = tmp_path / "runs"
    count = f"open({str(runs)!r}, 'a').write('x'); print('{{}}')"
    now = [0.0]
    rebuild = ChildRebuild(every_s=5.0, clock=lambda: now[0], argv=(sys.executable, "-c", count))
    for t in (0.0, 0.5, 4.9, 5.1, 5.6):
        now[0] = t
        rebuild(None)  # type: ignore[arg-type]  # the child needs no runtime
    assert runs.read_text() == "xx" and rebuild.runs == 2


def test_the_stream_process_opens_the_streams_without_loading_the_checker(redis_url, redis_client, paper):
    creds = paper.new_account()
    account = {
        "id": "main",
        "base_url": paper.base_url,
        "api_key": creds.api_key,
        "api_secret": creds.api_secret,
    }
    health = keys.stream_health(keys.PREFIX)
    loaded = run_until_ready(
        ["stream"],
        f"json.loads(r.hget({health!r}, 'main') or '{{}}').get('connected') is True",
        {"REDIS_URL": redis_url, "TPSL_ACCOUNTS": json.dumps([account])},
    )
    assert loaded == []
    assert orjson.loads(redis_client.hget(health, "main"))["connected"] is True


def test_the_worker_consumes_its_queues_without_the_celery_plugins(redis_url, redis_client, tmp_path: Path):
    """`tpsl worker` (Celery's worker command alone): ready once it consumes (kombu has bound its
    queues in Redis), with every task of the app and none of the command line's plugins."""
    argv = [
        "worker",
        "-P",
        "solo",
        "-n",
        "light@%h",
        "-Q",
        "persist,alerts",
        "--without-mingle",
        "--without-gossip",
    ]
    env = {"REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'tpsl.db'}"}
    loaded = run_until_ready(
        argv, "r.exists('_kombu.binding.tpsl') == 1", env, [*WORKER_FORBIDDEN, "tasks.app"]
    )
    assert loaded == ["tasks.app"]  # the tasks are loaded; nothing of the list else
