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


def test_no_file_cites_a_document_outside_the_repository():
    """Code, tests and config cite docs/ or the README, never a design note or a path on some
    machine: a newcomer must be able to follow every reference from a clone."""
    import pathlib
    import re
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[2]
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if listed.returncode == 0:
        files = [root / n for n in listed.stdout.decode().split("\0") if n]
    else:  # not a git checkout (an sdist): every file but the environment's
        skip = {".venv", ".git"}
        files = [p for p in root.rglob("*") if p.is_file() and not skip & set(p.parts)]
    cites = re.compile(
        r"\b(?:DESIGN|BYBIT_V5)\b|(?<![\w.])/(?:work|home|Users|root|mnt|srv)/|" + re.escape(str(root))
    )
    me = pathlib.Path(__file__).resolve()
    offenders = []
    for path in files:
        rel = path.relative_to(root)
        if rel.parts[0] == "docs" or str(rel) == "README.md" or path == me or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for n, line in enumerate(text.splitlines(), 1):
            if cites.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()[:100]}")
    assert offenders == [], "cite docs/architecture.md, the README or docs/ instead:\n" + "\n".join(offenders)


PRODUCT = ["config", "core", "exchange", "persistence", "workers", "tasks", "readmodel", "dashboard", "cli"]
# the command shims of development tooling: they import `devtools` inside the command's function,
# after cli.common.require_devtools has said what to install when it is missing
DEVTOOLS_SHIMS = {"cli/common.py", "cli/demo.py", "cli/bench.py", "cli/paper.py"}


def _devtools_imports(path) -> list[tuple[int, bool]]:
    """(line, at module level) of every import of `devtools` in a file."""
    import ast

    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(n == "devtools" or n.startswith("devtools.") for n in names):
            found.append((node.lineno, id(node) in top))
    return found


def test_product_code_does_not_import_the_development_tooling():
    """The product (what the wheel ships) never imports `devtools` (demo, benchmarks, supervisor,
    embedded Redis): only the `tpsl demo` / `tpsl bench` / `tpsl paper …bench` command shims do, lazily."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            rel = str(path.relative_to(root))
            for line, module_level in _devtools_imports(path):
                if module_level or rel not in DEVTOOLS_SHIMS:
                    offenders.append(f"{rel}:{line}")
    assert offenders == [], f"product code imports devtools: {offenders}"


def test_the_cli_loads_no_development_tooling():
    """`tpsl` starts (and every command but the shims runs) without the devtools package."""
    code = (
        "import sys, cli.main\n"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] == 'devtools')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_product_wheel_ships_no_development_tooling():
    """pyproject.toml's package list names the product packages and not `devtools`."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(p.rstrip("*") for p in include) == sorted(PRODUCT)
    assert (root / "devtools" / "pyproject.toml").exists()


def test_the_tooling_commands_say_what_to_install_when_devtools_is_missing():
    """An installed wheel has no `devtools`: `tpsl demo` / `tpsl bench` fail with one line saying so."""
    code = (
        "import sys\n"
        "sys.modules['devtools'] = None  # as in a product-only install: `import devtools` fails\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "for argv in (['demo'], ['bench', '--quick'], ['paper', 'stream-bench']):\n"
        "    r = CliRunner().invoke(app, argv)\n"
        "    print(r.exit_code, r.output.replace('\\n', ' '))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout + out.stderr
    for line in lines:
        assert line.startswith("2 error: devtools:") and "make install" in line, line


# What beat and the stream process never load: they send tasks by name (tasks/base.py), so the task
# bodies, the checker, the REST client, the database and the dashboard stay out of their memory,
# and so does the Celery command line's plugin set (Flower, its REPL).
LIGHT_PROCESS_FORBIDDEN = [
    # third-party packages
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
    "requests",
    "urllib3",
    "flower",
    "tornado",
    "prompt_toolkit",
    "rich",
    # the product's modules behind the tasks
    "tasks.app",
    "tasks.checks",
    "tasks.persist",
    "tasks.housekeeping",
    "workers.checker",
    "workers.recorder",
    "workers.reconcile",
    "exchange.bybit.client",
    "persistence.db",
    "persistence.writer",
    "dashboard",
    "readmodel",
]

# the modules `tpsl beat` and `tpsl stream` import, up to the point where they start running
LIGHT_ENTRIES = [
    "cli.main",
    "cli.ops",
    "tasks.base",
    "tasks.dispatch",
    "tasks.stream",
    "workers.runtime",
    "celery.apps.beat",
]


def loaded_of(names: list[str], code: str) -> list[str]:
    """The names of `names` (packages or modules, with their submodules) loaded after `code` ran."""
    code += (
        "\nimport sys\n"
        f"names = {names!r}\n"
        "loaded = [n for n in names if any(m == n or m.startswith(n + '.') for m in sys.modules)]\n"
        "print(','.join(sorted(loaded)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [n for n in out.stdout.strip().split(",") if n]


def test_the_forbidden_list_names_real_modules():
    """A misspelt entry would never be loaded: each one is a module this environment has."""
    import importlib.util

    assert [n for n in LIGHT_PROCESS_FORBIDDEN if importlib.util.find_spec(n) is None] == []


def test_beat_and_the_stream_process_import_only_what_they_use():
    """`tpsl beat` and `tpsl stream` build the configured app (no task registered) and the stream
    process's runtime without loading the task bodies, SQLAlchemy or the REST client
    (tests/integration/processes/test_light_processes.py checks the running processes)."""
    code = (
        "import os\n"
        "os.environ['REDIS_URL'] = 'redis://127.0.0.1:9/0'  # never connected to\n"
        f"for name in {LIGHT_ENTRIES!r}:\n"
        "    __import__(name)\n"
        "from cli.common import open_runtime, open_settings\n"
        "from tasks.base import configured_app\n"
        "from tasks.stream import StreamWatch\n"
        "app = configured_app(open_settings())\n"
        "assert sorted(app.conf.beat_schedule) == "
        "['flush', 'maintenance', 'series', 'stats', 'views']\n"
        "beat = app.Beat(loglevel='INFO')\n"
        "rt = open_runtime(publisher=False)\n"
        "watch = StreamWatch(rt, lambda account: None)\n"
        "from tasks.dispatch import publish_checks\n"
    )
    assert loaded_of(LIGHT_PROCESS_FORBIDDEN, code) == []


# What a worker never uses: the other processes' web stacks, the migrations, and the plugins and
# REPL that Celery's full command line loads (`tpsl worker` runs only its worker command).
WORKER_FORBIDDEN = [
    "flower",
    "tornado",
    "prompt_toolkit",
    "click_repl",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "alembic",
    "httpx",
    "dashboard",
    "readmodel",
]


def test_the_worker_forbidden_list_names_real_modules():
    import importlib.util

    assert [n for n in WORKER_FORBIDDEN if importlib.util.find_spec(n) is None] == []


def test_the_worker_command_loads_no_web_stack_nor_the_celery_plugins():
    """`tpsl worker` builds the workers' app (every task) and Celery's worker command alone."""
    code = (
        "import os\n"
        "os.environ['REDIS_URL'] = 'redis://127.0.0.1:9/0'  # never connected to\n"
        "import cli.main, cli.ops, celery.bin.worker, celery.apps.worker, celery.concurrency.thread\n"
        "from tasks.app import default_app\n"
        "app = default_app()\n"
        "assert 'tpsl.stream_check' in app.tasks\n"
    )
    assert loaded_of(WORKER_FORBIDDEN, code) == []
