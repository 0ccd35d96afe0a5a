"""devtools/supervisor.py with real child processes (small Python scripts): readiness probes, early
deaths reported with their log, stop by process group with SIGKILL escalation, stop order by
layer, and no orphans when the supervisor is told to stop or is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.ports import free_port
from devtools.supervisor import (
    NotReady,
    ProcessDied,
    ProcessSpec,
    Supervisor,
    group_members,
    http_ok,
    log_line,
    tcp_port,
)

LIMIT_S = 20.0  # generous: only a hung process takes this long


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def eventually(cond: Callable[[], bool], what: str, limit_s: float = LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running (a zombie is not): /proc on Linux, else signal 0."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            text = stat.read_text()
        except OSError:
            return False
        return text[text.rfind(")") + 2] not in "ZX"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    s = Supervisor(tmp_path / "logs", grace_s=5.0)
    try:
        yield s
    finally:
        s.stop(grace_s=1.0)


def test_log_line_ready_and_log_file(sup: Supervisor, tmp_path: Path) -> None:
    child = sup.start(
        ProcessSpec(
            "talker",
            py("""
                import sys, time
                print("warming up", flush=True)
                print("service ready.", flush=True)
                time.sleep(60)
            """),
            ready=log_line(r"ready\.$"),
        )
    )
    sup.wait_ready([child], timeout_s=LIMIT_S)
    assert child.ready_at is not None and child.alive()
    assert (tmp_path / "logs" / "talker.log").read_text().splitlines()[:2] == ["warming up", "service ready."]
    sup.stop()
    assert not child.group_alive() and child.returncode is not None


def test_tcp_and_http_probes(sup: Supervisor) -> None:
    tcp, http = free_port(), free_port()
    listener = sup.start(
        ProcessSpec(
            "listener",
            py(f"""
                import socket, time
                time.sleep(0.3)
                s = socket.socket(); s.bind(("127.0.0.1", {tcp})); s.listen(); time.sleep(60)
            """),
            ready=tcp_port(tcp),
        )
    )
    web = sup.start(
        ProcessSpec(
            "web",
            [sys.executable, "-m", "http.server", str(http), "--bind", "127.0.0.1"],
            cwd=Path(__file__).parent,
            ready=http_ok(f"http://127.0.0.1:{http}/"),
        )
    )
    sup.wait_ready([listener, web], timeout_s=LIMIT_S)
    assert listener.ready_at and web.ready_at


def test_a_child_that_dies_early_is_reported_with_its_log(sup: Supervisor) -> None:
    child = sup.start(
        ProcessSpec(
            "crasher",
            py("""
                import sys
                print("loading config", flush=True)
                print("fatal: no such table", file=sys.stderr, flush=True)
                sys.exit(3)
            """),
            ready=log_line("never"),
        )
    )
    with pytest.raises(ProcessDied) as err:
        sup.wait_ready([child], timeout_s=LIMIT_S)
    assert err.value.name == "crasher" and err.value.returncode == 3
    assert "fatal: no such table" in err.value.tail and "fatal: no such table" in str(err.value)
    with pytest.raises(ProcessDied):
        sup.check()
    assert sup.dead() == [child]


def test_not_ready_in_time(sup: Supervisor) -> None:
    child = sup.start(
        ProcessSpec(
            "sleeper", py("import time; print('zzz', flush=True); time.sleep(60)"), ready=log_line("ready")
        )
    )
    with pytest.raises(NotReady) as err:
        sup.wait_ready([child], timeout_s=0.3)
    assert "sleeper" in str(err.value) and "ready" in err.value.message


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", grace_s=0.5)
    pidfile = tmp_path / "grandchild.pid"
    child = sup.start(
        ProcessSpec(
            "stubborn",
            py(f"""
                import signal, subprocess, sys, time
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                g = subprocess.Popen([sys.executable, "-c",
                    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
                open({str(pidfile)!r}, "w").write(str(g.pid))
                print("ready", flush=True)
                time.sleep(120)
            """),
            ready=log_line("ready"),
        )
    )
    sup.wait_ready([child], timeout_s=LIMIT_S)
    grandchild = int(pidfile.read_text())
    assert set(group_members(child.pgid)) == {child.pid, grandchild}
    sup.stop()
    assert group_members(child.pgid) == []
    assert not alive(grandchild) and child.returncode == -signal.SIGKILL


def test_layers_stop_highest_first(tmp_path: Path) -> None:
    order = tmp_path / "order.txt"

    def recorder(name: str, layer: int) -> ProcessSpec:
        return ProcessSpec(
            name,
            py(f"""
                import signal, sys, time
                def bye(*_):
                    with open({str(order)!r}, "a") as f: f.write({name!r} + "\\n")
                    sys.exit(0)
                signal.signal(signal.SIGTERM, bye)
                print("ready", flush=True)
                while True: time.sleep(1)
            """),
            ready=log_line("ready"),
            layer=layer,
        )

    sup = Supervisor(tmp_path / "logs", grace_s=LIMIT_S)
    children = [
        sup.start(recorder("store", 0)),
        sup.start(recorder("worker", 1)),
        sup.start(recorder("web", 2)),
    ]
    sup.wait_ready(children, timeout_s=LIMIT_S)
    sup.stop()
    assert order.read_text().split() == ["web", "worker", "store"]
    assert all(c.returncode == 0 for c in children)


SUPERVISOR_SCRIPT = """
import sys, time
from pathlib import Path
from devtools.supervisor import ProcessSpec, StopRequested, Supervisor, log_line

logs = Path(sys.argv[1])
with Supervisor(logs, grace_s=5) as sup:
    sup.install_signal_handlers(sigint=True)
    try:
        child = sup.start_ready(ProcessSpec("sleeper", [sys.executable, "-c",
            "import time; print('ready', flush=True); time.sleep(120)"], ready=log_line("ready")))
        print(child.pid, flush=True)
        while True:
            sup.check_stop()
            LOOP_BODY
    except StopRequested as e:
        print("stop requested", e.signum, flush=True)
"""
PLAIN_LOOP = "time.sleep(0.1)"
# a callee that swallows every Exception (StopRequested with it): check_stop raises it again
SWALLOWING_LOOP = """try:
                time.sleep(0.1)
            except Exception:
                pass"""


def supervisor_process(tmp_path: Path, loop: str = PLAIN_LOOP) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "supervise.py"
    script.write_text(SUPERVISOR_SCRIPT.replace("LOOP_BODY", loop))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "logs")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"supervisor said {line!r}"
    return proc, int(line)


@pytest.mark.parametrize("loop", [PLAIN_LOOP, SWALLOWING_LOOP], ids=["plain", "swallowed"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_supervisor_told_to_stop_stops_its_children(tmp_path: Path, sig: signal.Signals, loop: str) -> None:
    proc, child = supervisor_process(tmp_path, loop)
    try:
        assert alive(child)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=LIMIT_S)
        assert proc.returncode == 0 and f"stop requested {int(sig)}" in out
        assert not alive(child)
    finally:
        proc.kill()
        if alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_of_a_killed_supervisor_are_stopped_by_the_kernel(tmp_path: Path) -> None:
    proc, child = supervisor_process(tmp_path)
    try:
        proc.kill()  # SIGKILL: no handler, no cleanup of its own
        proc.wait(LIMIT_S)
        eventually(lambda: not alive(child), "the orphaned child to get SIGTERM and exit")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_bad_specs_name_the_field(sup: Supervisor) -> None:
    with pytest.raises(ValueError, match="name"):
        ProcessSpec("bad name!", ["true"])
    with pytest.raises(ValueError, match="argv"):
        ProcessSpec("empty", [])
    sup.start(ProcessSpec("once", py("import time; time.sleep(5)")))
    with pytest.raises(ValueError, match="already started"):
        sup.start(ProcessSpec("once", py("pass")))


def test_a_missing_program_is_a_clear_error(sup: Supervisor) -> None:
    from devtools.supervisor import ProcessError

    with pytest.raises(ProcessError, match="cannot start"):
        sup.start(ProcessSpec("ghost", ["/nonexistent/program"]))
