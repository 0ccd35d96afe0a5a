"""A session-wide check: no configured secret appears in any log line, task message or dashboard
answer of the test session.

Every log record of this process is formatted as production formats it (config.logging's
RedactingFormatter) and kept in a file; every task message this process publishes is kept too, and
every answer the dashboard tests' clients receive (`httpx_scan_hook`: pages, JSON, errors). At
the end of the session both are scanned for every secret that was registered during the whole
session (account keys and secrets, dashboard tokens, Flower credentials, Telegram tokens, webhook
URLs, the passwords in Redis and database URLs). A secret found fails the session and is reported
with the test that emitted it (the secret itself is not printed). A secret logged before it was
registered is caught too: the scan runs against the final list.

Processes started by tests (workers, the demo) are not seen here; their own tests read their logs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from typing import Any

import pytest

from config.logging import RedactingFormatter, registered_secrets

_state: dict[str, Any] = {"test": "(session)", "findings": []}


class _Recorder(logging.Handler):
    def __init__(self, stream: Any) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))
        self.stream = stream
        self.write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken record is not this check's business
            return
        self.write("log", line)

    def write(self, kind: str, text: str) -> None:
        flat = text.replace("\\", "\\\\").replace("\n", "\\n")
        with self.write_lock:
            self.stream.write(f"{_state['test']}\t{kind}\t{flat}\n")


def _on_publish(sender: Any = None, body: Any = None, headers: Any = None, **_: Any) -> None:
    recorder = _state.get("recorder")
    if recorder is None:
        return
    try:
        text = json.dumps({"task": sender, "body": body, "headers": headers}, default=str)
    except (TypeError, ValueError):
        text = repr(body)
    recorder.write("task", text)


def record_answer(where: str, text: str) -> None:
    """Keep an HTTP answer (a page, an API body, an error) for the end-of-session scan."""
    recorder = _state.get("recorder")
    if recorder is not None:
        recorder.write("page", f"{where} {text}")


def httpx_scan_hook(response: Any) -> None:
    """An httpx response hook: every answer a test client receives is scanned too."""
    response.read()
    record_answer(str(response.url.path), response.text)


def pytest_sessionstart(session: pytest.Session) -> None:
    fd, path = tempfile.mkstemp(prefix="tpsl-secret-scan-", suffix=".txt")
    stream = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
    recorder = _Recorder(stream)
    logging.getLogger().addHandler(recorder)
    _state.update(path=path, stream=stream, recorder=recorder)
    from celery import signals

    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="tpsl.secret-scan")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _state["test"] = item.nodeid


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _state["test"] = f"{item.nodeid} (teardown)"


def scan(path: str, secrets: set[str]) -> list[tuple[str, str, int]]:
    """(test, kind, secret length) of every line holding one of the secrets."""
    found: list[tuple[str, str, int]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            test, kind, text = [*line.rstrip("\n").split("\t", 2), "", ""][:3]
            for s in secrets:
                if s in text:
                    found.append((test, kind, len(s)))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = _state.get("recorder")
    if recorder is None:
        return
    logging.getLogger().removeHandler(recorder)
    _state["recorder"] = None
    _state["stream"].close()
    secrets = set(registered_secrets())
    try:
        findings = scan(_state["path"], secrets)
    finally:
        os.unlink(_state["path"])
    _state["findings"] = findings
    _state["secrets"] = len(secrets)
    if findings and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    findings = _state.get("findings") or []
    if "secrets" not in _state:
        return
    if not findings:
        terminalreporter.write_line(
            f"secret scan: no configured secret ({_state['secrets']} known) in any log line, task message "
            "or dashboard answer"
        )
        return
    terminalreporter.section("secret scan: configured secrets found", sep="=", red=True)
    for test, kind, n in findings[:50]:
        terminalreporter.write_line(f"{test}: a {n}-character secret in a {kind} line")
    if len(findings) > 50:
        terminalreporter.write_line(f"… and {len(findings) - 50} more")
