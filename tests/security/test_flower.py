"""Door 2: Flower starts only behind well-formed basic-auth credentials (`tpsl flower`), and a real
Flower process answers 401 to everything else — empty credentials, `Basic =`, half of a password
that contains a comma."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
START_S = 60.0


def basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


def flower_env(redis_url: str, credential: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "TPSL_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), TPSL_LOG_LEVEL="INFO")
    if credential is not None:
        env["FLOWER_BASIC_AUTH"] = credential
    return env


def tpsl_flower(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "flower", "--address", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_listening(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"flower exited with {proc.returncode}:\n{log.read_text()}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"flower did not listen within {START_S} s:\n{log.read_text()}")


@pytest.mark.parametrize(
    "credential",
    [None, "", "   ", "nocolon", ":password123", "user:", "user:short", "user:pass\nword1234"],
    ids=["unset", "empty", "blank", "no-colon", "no-user", "no-password", "short", "control-char"],
)
def test_tpsl_flower_refuses_to_start_without_a_well_formed_credential(redis_url, tmp_path, credential):
    port = free_port()
    log = tmp_path / "flower.log"
    proc = tpsl_flower(port, flower_env(redis_url, credential), log)
    assert proc.wait(60) == 2
    out = log.read_text()
    assert "FLOWER_BASIC_AUTH" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1  # one line naming the field
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_flower_answers_401_to_everything_but_the_whole_credential(redis_url, tmp_path):
    password = "pa,ss-w0rd-with,commas"  # Flower's own env parsing would split this at the commas
    credential = f"ops:{password}"
    port = free_port()
    log = tmp_path / "flower.log"
    proc = tpsl_flower(port, flower_env(redis_url, credential), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_listening(proc, url + "/", log)
        for method, path in (
            ("GET", "/"),
            ("GET", "/workers"),
            ("GET", "/api/workers"),
            ("GET", "/api/tasks"),
            ("POST", "/api/task/async-apply/tpsl.persist"),  # a forged task: the dangerous door
        ):
            for headers in (
                {},
                {"Authorization": "Basic ="},
                basic(""),
                basic(":"),
                basic("ops:pa"),  # the first comma-separated piece
                basic("ss-w0rd-with"),
                basic("commas"),
                basic("ops:" + password + "x"),
            ):
                r = requests.request(method, url + path, headers=headers, json={}, timeout=10)
                assert r.status_code == 401, (path, headers, r.status_code)
        ok = requests.get(url + "/", headers=basic(credential), timeout=10)
        assert ok.status_code == 200 and "Flower" in ok.text
        # the credential is on no command line
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert password not in cmdline and "basic" not in cmdline.lower()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert password not in log.read_text()
