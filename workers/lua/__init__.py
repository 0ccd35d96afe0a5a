"""The Lua scripts the registry runs in Redis, one `<name>.lua` file each.

Each script is atomic (Redis runs it without interleaving any other command), which is what the
compare-and-set saves, the claim and tier moves rely on (the locks are redis-py's `redis.lock.Lock`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(name: str) -> str:
    """The text of `workers/lua/<name>.lua`."""
    path = files(__name__).joinpath(f"{name}.lua")
    if not path.is_file():
        raise ValueError(f"name: no Lua script {name!r} in {__name__}")
    return path.read_text(encoding="utf-8")
