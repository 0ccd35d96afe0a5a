"""The Procfile, the tier table and the routing name the same queues."""

import pathlib
import re

from config.celery_app import ROUTES
from config.queues import ALL_QUEUES, ONE_WORKER, ONE_WORKER_QUEUES, POOLS, TIER_QUEUES

ROOT = pathlib.Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, cmd = line.partition(":")
            out[name.strip()] = cmd.strip()
    return out


def worker_queues(cmd: str) -> tuple[str, ...]:
    m = re.search(r"-Q\s+(\S+)", cmd)
    assert m, cmd
    return tuple(m.group(1).split(","))


def test_each_worker_pool_reads_the_queues_of_the_table_in_order():
    procs = procfile()
    for pool, queues in POOLS.items():
        assert pool in procs, f"Procfile has no {pool}"
        assert worker_queues(procs[pool]) == queues


def test_the_one_process_worker_reads_every_queue_in_the_pools_order():
    procs = procfile()
    assert worker_queues(procs[ONE_WORKER]) == ONE_WORKER_QUEUES
    assert set(ONE_WORKER_QUEUES) == set(ALL_QUEUES)


def test_every_queue_has_a_consumer_and_every_route_a_queue():
    consumed = {q for cmd in procfile().values() if " worker " in cmd for q in worker_queues(cmd)}
    assert consumed == set(ALL_QUEUES)
    assert set(ROUTES.values()) <= set(ALL_QUEUES)
    assert set(TIER_QUEUES) <= consumed


def test_worker_node_names_are_unique_and_processes_complete():
    procs = procfile()
    names = [re.search(r"-n\s+(\S+)", c).group(1) for c in procs.values() if " worker " in c]
    assert len(names) == len(set(names))
    assert {"web", "beat", "flower", "release", "stream"} <= set(procs)
    assert procs["stream"] == "tpsl stream"
    # beat sends by name from the app without the tasks (tasks/base.py), not `celery -A tasks beat`
    assert procs["beat"].startswith("tpsl beat ")
    assert procs["flower"].startswith("tpsl flower ") and "basic-auth" not in procs["flower"]
    assert procs["release"] == "tpsl db upgrade"


def test_honcho_accepts_the_procfile():
    import subprocess
    import sys

    honcho = pathlib.Path(sys.executable).parent / "honcho"  # installed with the dev extras
    out = subprocess.run([str(honcho), "check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Valid procfile" in out.stderr


def test_worker_pool_type_and_slots_come_from_the_settings_with_their_defaults():
    """Each worker line passes TPSL_WORKER_POOL and its TPSL_WORKER_<POOL>_CONCURRENCY, falling back
    to the Settings defaults (what devtools/stack.py starts when nothing is set)."""
    from config.settings import Settings

    defaults = Settings()
    for pool in (*POOLS, ONE_WORKER):
        cmd = procfile()[pool]
        assert f"--pool ${{TPSL_WORKER_POOL:-{defaults.worker_pool}}}" in cmd, cmd
        var = f"TPSL_{pool.upper()}_CONCURRENCY"
        assert f"--concurrency ${{{var}:-{defaults.slots(pool)}}}" in cmd, cmd


def test_task_events_are_off_until_a_monitor_asks_and_it_can():
    """A worker sends Celery's task events only with TPSL_TASK_EVENTS, or once Flower asks with the
    `enable_events` control command. That command only widens what an event dispatcher already
    running sends, and the dispatcher runs for the worker's heartbeat: no worker line may turn
    heartbeats, events or remote control off."""
    from config.celery_app import make_celery
    from config.settings import Settings

    url = "redis://127.0.0.1:9/0"  # never connected to
    assert make_celery(Settings(redis_url=url)).conf.worker_send_task_events is False
    assert make_celery(Settings(redis_url=url, task_events=True)).conf.worker_send_task_events is True
    for pool in (*POOLS, ONE_WORKER):
        cmd = procfile()[pool]
        for flag in ("--without-heartbeat", "--without-gossip", "-E", "--task-events"):
            assert flag not in cmd.split(), (pool, flag)
    assert make_celery(Settings(redis_url=url)).conf.worker_enable_remote_control is not False
