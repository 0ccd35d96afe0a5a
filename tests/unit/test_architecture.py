"""Imports point inward: the pure core loads no I/O library."""

import subprocess
import sys

FORBIDDEN = [
    "celery",
    "kombu",
    "redis",
    "requests",
    "urllib3",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "pydantic",
    "config",
    "exchange",
    "persistence",
    "workers",
    "tasks",
    "dashboard",
]


def test_importing_core_loads_no_io_library():
    code = (
        "import sys, pkgutil, importlib, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"


def test_core_reads_no_clock():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "core"
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for needle in ("time.time(", "datetime.now(", "datetime.utcnow(", "time.monotonic(", "import random"):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def test_architecture_doc_names_only_files_that_exist():
    """docs/architecture.md stays true: every file or folder it names in backticks exists."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_.]+)*/(?:[a-z_]+\.(?:py|lua|md))?)(?:::[a-z_]+)?`", text))
    named |= set(re.findall(r"`([a-z_]+\.py)`", text))
    assert len(named) > 20, sorted(named)
    folders = [root, *(d for d in root.iterdir() if d.is_dir())]  # `paper/` is exchange/paper/
    missing = sorted(n for n in named if not any((d / n).exists() for d in folders))
    assert missing == [], f"docs/architecture.md names what is not there: {missing}"
