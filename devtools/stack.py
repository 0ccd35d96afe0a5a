"""How the whole system is started as processes (the demo and the benchmark start the same stack):
one ProcessSpec per component, each reading its configuration from the environment (12-factor)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from config.queues import ONE_WORKER, ONE_WORKER_QUEUES, POOLS
from config.settings import Settings
from devtools.supervisor import ProcessSpec, http_ok, log_line, tcp_port

ROOT = Path(__file__).resolve().parents[1]


def python(*args: str) -> list[str]:
    """This interpreter running a module: works whether or not the venv's bin/ is on PATH."""
    return [sys.executable, *args]


def with_source_path(env: Mapping[str, str]) -> dict[str, str]:
    """The children import the code this process runs, whatever the cwd and however it was installed
    (an editable install made before a package existed maps it as a namespace package: `celery -A
    tasks` would then find no app)."""
    out = dict(env)
    if (ROOT / "tasks" / "__init__.py").exists():
        out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH", "")) if p)
    out.setdefault("PYTHONUNBUFFERED", "1")
    return out


def fresh_sqlite(db: Path) -> str:
    """A SQLite file deleted (with its WAL files) so the run starts empty; its URL."""
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()
    return f"sqlite:///{db.resolve()}"


def redis_spec(port: int, workdir: Path, env: Mapping[str, str]) -> ProcessSpec:
    from devtools.embedded_redis import redis_server_binary

    rdir = workdir / "redis"
    # a fresh run starts empty (as its SQLite file does); within the run, AOF (fsync every second)
    # keeps the data across a restart of this redis-server, as production's Redis must
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
        str(rdir),
        "--protected-mode",
        "yes",
        "--maxclients",
        "10000",
    ]
    return ProcessSpec("redis", argv, env=env, ready=tcp_port(port), layer=0)


def paper_spec(port: int, env: Mapping[str, str], *, extra: Sequence[str] = ()) -> ProcessSpec:
    argv = python("-m", "cli.main", "paper", "serve", "--host", "127.0.0.1", "--port", str(port), *extra)
    return ProcessSpec(
        "paper", argv, env=env, ready=http_ok(f"http://127.0.0.1:{port}/paper/health"), layer=0
    )


WORKER_LAYOUTS = ("pools", "single")
WORKER_SETTINGS = ("worker_pool", *(f"{pool}_concurrency" for pool in (*POOLS, ONE_WORKER)))


def worker_settings(env: Mapping[str, str]) -> Settings:
    """The worker pool type and slots the children will read from `env` (TPSL_WORKER_POOL,
    TPSL_WORKER_<POOL>_CONCURRENCY; the Settings defaults for what `env` does not set)."""
    given = {name: env[f"TPSL_{name.upper()}"] for name in WORKER_SETTINGS if f"TPSL_{name.upper()}" in env}
    return Settings(**given)  # type: ignore[arg-type]  # validated (and named in the error) here


def worker_specs(
    env: Mapping[str, str], *, node: str, concurrency: Mapping[str, int] | None = None
) -> list[ProcessSpec]:
    """The worker processes of a layout, each reading its queues in their order, with the pool type
    and slots of the settings (`concurrency` overrides the slots). BENCH_WORKER_LAYOUT in `env`:
    `pools` (the default: one process per pool of config/queues.py, the Procfile's worker_fast,
    worker_bulk and worker_persist) or `single` (the Procfile's `worker`: one process reading every
    queue with the slots of TPSL_WORKER_CONCURRENCY). BENCH_TRACEMALLOC=<pool>=<dir> runs that
    process under tracemalloc, its snapshots written to <dir>."""
    settings = worker_settings(env)
    traced_pool, _, trace_dir = env.get("BENCH_TRACEMALLOC", "").partition("=")
    layout = env.get("BENCH_WORKER_LAYOUT", "pools")
    if layout not in WORKER_LAYOUTS:
        raise ValueError(f"BENCH_WORKER_LAYOUT: {layout!r} is not one of {', '.join(WORKER_LAYOUTS)}")
    pools: dict[str, tuple[str, ...]] = {ONE_WORKER: ONE_WORKER_QUEUES} if layout == "single" else dict(POOLS)
    slots_of = {pool: (concurrency or {}).get(pool) or settings.slots(pool) for pool in pools}
    specs = []
    for pool, queues in pools.items():
        short = "all" if pool == ONE_WORKER else pool.removeprefix("worker_")
        slots = slots_of[pool]
        worker_args = [
            "-n",
            f"{short}.{node}@%h",
            "-Q",
            ",".join(queues),
            "--pool",
            settings.worker_pool,
            "--concurrency",
            str(slots),
            "--prefetch-multiplier",
            "1",
            "--loglevel",
            "INFO",
        ]
        if pool == traced_pool and trace_dir:  # what grows in this pool's memory (devtools/memtrace.py)
            argv = python(
                "-m",
                "devtools.memtrace",
                "run",
                "--out",
                trace_dir,
                "--",
                "-A",
                "tasks",
                "worker",
                *worker_args,
            )
        else:  # the Procfile's: Celery's worker command without the rest of Celery's command line
            argv = python("-m", "cli.main", "worker", *worker_args)
        specs.append(ProcessSpec(pool, argv, env=env, ready=log_line(r"\bready\.\s*$"), layer=1))
    return specs


def beat_spec(workdir: Path, env: Mapping[str, str]) -> ProcessSpec:
    """`tpsl beat`: the periodic ticks, sent by name (the Procfile's beat; ready once it runs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    schedule = workdir / "celerybeat-schedule"
    for old in workdir.glob("celerybeat-schedule*"):
        old.unlink()
    argv = python("-m", "cli.main", "beat", "--loglevel", "INFO", "--schedule", str(schedule))
    return ProcessSpec("beat", argv, env=env, ready=log_line(r"beat: Starting"), layer=1)


def stream_spec(env: Mapping[str, str]) -> ProcessSpec:
    """`tpsl stream`: each account's private stream, pushes turned into checks (ready once it has
    opened the streams)."""
    argv = python("-m", "cli.main", "stream")
    return ProcessSpec("stream", argv, env=env, ready=log_line(r"streams: \d+ accounts"), layer=1)


def web_spec(port: int, env: Mapping[str, str]) -> ProcessSpec:
    argv = python("-m", "cli.main", "web", "--host", "127.0.0.1", "--port", str(port))
    return ProcessSpec("web", argv, env=env, ready=http_ok(f"http://127.0.0.1:{port}/api/health"), layer=2)


def flower_spec(port: int, env: Mapping[str, str]) -> ProcessSpec:
    # `tpsl flower` reads the credentials from the environment (FLOWER_BASIC_AUTH), never the command line
    argv = python("-m", "cli.main", "flower", "--address", "127.0.0.1", "--port", str(port))
    return ProcessSpec("flower", argv, env=env, ready=tcp_port(port), layer=2)
