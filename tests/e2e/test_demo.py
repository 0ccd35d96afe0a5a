"""`tpsl demo` as a user runs it: a real subprocess starting the whole system (redis-server, paper
exchange, three worker pools, beat, dashboard, Flower), seeding the scenarios and driving prices.

Every process the demo starts inherits a marker in its environment; /proc tells which are alive.
The demo waits for each scenario's end up to its own deadline; the limits here are only there so a
hung run fails instead of blocking the suite.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from devtools.demo.scenarios import SCENARIOS

MARKER_VAR = "TPSL_E2E_MARKER"
RUN_LIMIT_S = 420.0  # a hung demo fails the test after this; a normal run takes about a minute

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the demo's processes"),
]


def marked_pids(marker: str) -> list[int]:
    """Running processes (zombies have no environment) that inherited `marker`."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)


class DemoRun:
    """The demo as a subprocess: output collected by a thread, its processes sampled while it runs."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.marker = uuid.uuid4().hex
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "REDIS_URL",
                "TPSL_REDIS_URL",
                "DATABASE_URL",
                "TPSL_DATABASE_URL",
                "TPSL_ACCOUNTS",
                "TPSL_ACCOUNTS_FILE",
            )
        }
        env[MARKER_VAR] = self.marker
        env["COLUMNS"] = "200"
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "demo", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.most_processes = 0
        self.child_env: dict[str, str] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def sample(self) -> None:
        pids = marked_pids(self.marker)
        self.most_processes = max(self.most_processes, len(pids))
        if not self.child_env:
            for pid in pids:
                try:
                    env = environ_of(pid)
                except OSError:
                    continue
                if "TPSL_ACCOUNTS" in env:
                    self.child_env = env
                    break

    def wait_for_output(self, pattern: str, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while not re.search(pattern, self.output):
            assert self.proc.poll() is None, f"the demo exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"no {pattern!r} in the demo's output:\n{self.output}"
            self.sample()
            time.sleep(0.5)

    def wait(self, limit_s: float) -> int:
        deadline = time.monotonic() + limit_s
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"the demo did not finish in {limit_s:.0f} s:\n{self.output}"
            self.sample()
            time.sleep(0.5)
        self._reader.join(10)
        return self.proc.returncode

    def leftovers(self, grace_s: float = 5.0) -> list[int]:
        """Marked processes still alive (a short grace: the kernel reaps asynchronously)."""
        deadline = time.monotonic() + grace_s
        while True:
            left = marked_pids(self.marker)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def cleanup(self) -> None:
        """Never leave anything behind, whatever the test's outcome."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in marked_pids(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.timeout(RUN_LIMIT_S + 60)
def test_demo_runs_every_scenario_to_its_end_and_leaves_nothing(tmp_path: Path) -> None:
    run = DemoRun(tmp_path, "--minutes", "4", "--until-done", "--speed", "4", "--no-live")
    try:
        code = run.wait(RUN_LIMIT_S)
        out = run.output
        assert code == 0, out
        for sc in SCENARIOS:
            assert f"{sc.title}: ok, closed {sc.expected.value}" in out, out
        assert "all scenarios reached their expected end" in out
        # the whole system ran: redis, paper, 3 worker pools with their children, beat (web, Flower)
        assert run.most_processes >= 9, f"only {run.most_processes} processes seen"
        assert run.leftovers() == [], "processes of the demo are still running"
    finally:
        run.cleanup()

    # logs where the docs say, one per process
    logs = tmp_path / "var" / "logs"
    names = {p.stem for p in logs.glob("*.log")}
    assert {"redis", "paper", "worker_fast", "worker_bulk", "worker_persist", "beat", "demo"} <= names
    assert (tmp_path / "var" / "demo.db").exists()

    # secrets: the exchange keys are never printed nor logged; the generated dashboard token and
    # Flower password are printed once on the terminal, never logged
    assert run.child_env, "never saw a child's environment"
    import json

    accounts = json.loads(run.child_env["TPSL_ACCOUNTS"])
    secrets = [a[k] for a in accounts for k in ("api_key", "api_secret")]
    secrets += [run.child_env["TPSL_DASHBOARD_TOKEN"], run.child_env["FLOWER_BASIC_AUTH"].split(":", 1)[1]]
    everything_logged = "\n".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    for secret in secrets:
        assert secret not in everything_logged
    for secret in secrets[:-2]:
        assert secret not in out
    assert out.count(run.child_env["FLOWER_BASIC_AUTH"].split(":", 1)[1]) <= 1


def check_dashboard_and_flower(out: str) -> None:
    """The URLs printed once work with the generated credentials, and only with them."""
    import requests

    dash = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+/)\?token=(\S+)", out)
    flower = re.search(r"flower\s+(http://127\.0\.0\.1:\d+/)\s+\(user (\S+), password (\S+)\)", out)
    assert dash and flower, f"no dashboard or Flower URL in the output:\n{out}"
    base, token = dash.groups()
    assert requests.get(f"{base}api/monitors", timeout=10).status_code == 401
    listed = requests.get(f"{base}api/monitors", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.status_code == 200
    accounts = {m["account"] for m in listed.json()["monitors"]}
    assert accounts == {"main", "mirror1"}, listed.text
    url, user, password = flower.groups()
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=(user, password), timeout=10).status_code == 200


@pytest.mark.timeout(RUN_LIMIT_S)
def test_ctrl_c_stops_every_process_and_exits_0(tmp_path: Path) -> None:
    """Also: the dashboard and Flower are up behind the generated credentials."""
    run = DemoRun(tmp_path, "--no-live")
    try:
        run.wait_for_output(r"seeded \d+ scenarios", limit_s=RUN_LIMIT_S / 2)
        run.wait_for_output(r"scenario \w+: running", limit_s=60)
        run.sample()
        assert run.most_processes >= 9
        check_dashboard_and_flower(run.output)
        run.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert run.wait(120) == 0, run.output
        assert run.leftovers() == [], "processes of the demo are still running"
    finally:
        run.cleanup()


@pytest.mark.timeout(RUN_LIMIT_S + 60)
def test_after_the_scripts_the_demo_stays_live_until_it_ends(tmp_path: Path) -> None:
    """Once every scenario has ended, the prices keep walking and fresh monitors guard positions
    (opened on the paper exchange, listed by the dashboard as live) until the demo stops."""
    import requests

    run = DemoRun(tmp_path, "--minutes", "6", "--speed", "4", "--no-live")
    try:
        run.wait_for_output(r"random walk: the scripts have ended", RUN_LIMIT_S)
        run.wait_for_output(r"random walk: monitor \S+ opened on", limit_s=60)
        dash = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+/)\?token=(\S+)", run.output)
        assert dash, run.output
        base, token = dash.groups()
        opened = set(re.findall(r"random walk: monitor (\S+) opened on", run.output))
        deadline = time.monotonic() + 60
        while True:  # the new monitor shows on the dashboard as a live one, building or guarding
            listed = requests.get(
                f"{base}api/monitors", headers={"Authorization": f"Bearer {token}"}, timeout=10
            ).json()["monitors"]
            live = {m["id"] for m in listed if m.get("phase") != "closed"}
            if opened & live:
                break
            assert time.monotonic() < deadline, f"no walk monitor live: {opened} vs {listed}"
            time.sleep(1.0)
        prices = re.search(r"exchange\s+(http://127\.0\.0\.1:\d+) \(paper\)", run.output)
        assert prices, run.output
        walk = requests.get(f"{prices.group(1)}/paper/walk", timeout=10).json()
        assert walk["running"] and walk["steps"] > 0, walk
        run.proc.send_signal(signal.SIGINT)
        assert run.wait(120) == 0, run.output
        assert run.leftovers() == [], "processes of the demo are still running"
    finally:
        run.cleanup()
