"""The session-wide secret scan (tests/plugins/secrets.py) finds what it is there to find."""

from __future__ import annotations

import io
import logging

from config.logging import register_secret
from tests.plugins.secrets import _Recorder, scan


def test_the_scan_finds_a_secret_logged_before_it_was_registered(tmp_path):
    path = tmp_path / "lines.txt"
    with path.open("w") as stream:
        rec = _Recorder(stream)
        log = logging.getLogger("tests.security.scan")
        log.addHandler(rec)
        log.propagate = False
        try:
            log.warning("connecting with %s", "late-registered-secret-41f0")  # not masked yet
            register_secret("late-registered-secret-41f0")
            register_secret("early-registered-secret-9ab2")
            log.warning("connecting with %s", "early-registered-secret-9ab2")  # masked at once
            rec.write("task", '{"args": ["task-arg-secret-77c3"]}')
        finally:
            log.removeHandler(rec)
            log.propagate = True
    secrets = {"late-registered-secret-41f0", "early-registered-secret-9ab2", "task-arg-secret-77c3"}
    found = scan(str(path), secrets)
    assert sorted((kind, n) for _, kind, n in found) == [
        ("log", len("late-registered-secret-41f0")),
        ("task", len("task-arg-secret-77c3")),
    ]
    assert "early-registered-secret-9ab2" not in path.read_text()


def test_multi_line_records_stay_one_line_each():
    stream = io.StringIO()
    rec = _Recorder(stream)
    rec.write("log", "Traceback\n  line two\n")
    assert stream.getvalue().count("\n") == 1
