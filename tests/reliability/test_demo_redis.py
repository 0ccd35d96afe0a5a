"""`make demo`'s embedded Redis keeps its data across a restart (AOF in its run directory), and a
new demo run starts from an empty one."""

from __future__ import annotations

import subprocess

import redis

from devtools.ports import free_port
from devtools.stack import redis_spec
from tests.plugins.stack import wait_for


def up(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def start(argv) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_the_demo_redis_runs_with_aof_and_survives_a_restart(tmp_path):
    port = free_port()
    spec = redis_spec(port, tmp_path, {})
    assert "--appendonly" in spec.argv and spec.argv[spec.argv.index("--appendonly") + 1] == "yes"
    client = redis.Redis(port=port, socket_connect_timeout=1)
    proc = start(spec.argv)
    try:
        wait_for(lambda: up(client), what="the demo redis up")
        client.set("tpsl:registry:epoch", "kept")
        wait_for(lambda: any((tmp_path / "redis").rglob("*.aof")), what="an AOF file in the run directory")
        proc.terminate()
        proc.wait(10)
        proc = start(spec.argv)
        wait_for(lambda: up(client), what="the demo redis up again")
        assert client.get("tpsl:registry:epoch") == b"kept"
        proc.terminate()
        proc.wait(10)
        proc = start(redis_spec(port, tmp_path, {}).argv)  # a new demo run
        wait_for(lambda: up(client), what="a new demo's redis up")
        assert client.get("tpsl:registry:epoch") is None
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
