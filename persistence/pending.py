"""The Redis side of coalesced persistence: the pending hash, taking it for a flush, giving it back.

Keys (`<prefix>` is "tpsl" unless told otherwise):

- `<prefix>:persist:pending` — hash, field = monitor id, value = one JSON entry (below): the newest
  monitor row and the newest non-critical event of that monitor not yet in the database;
- `<prefix>:persist:processing:<uuid>` — a pending hash taken by one flusher (`RENAME`, atomic);
- `<prefix>:persist:processing` — sorted set of taken hashes, score = lease expiry (epoch s). A taken
  hash whose lease has run out belongs to a flusher that died: the next flush takes it over.

An entry is `{"mv": monitor version, "m": "<monitor row JSON>", "ev": event's monitor version,
"ea": "<event at>", "e": "<event row JSON>"}`; either half may be absent. The rows are kept as JSON
strings inside the entry so the Lua scripts compare versions without re-encoding (and so without
rounding) the rows themselves. Every write goes through one Lua merge: per half, the newer
(monitor: higher version; event: higher (monitor version, at)) wins, so an older write arriving late
never replaces a newer one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from config import keys
from persistence import jsonable
from persistence.stats import stats_key

log = logging.getLogger(__name__)

_MERGE_FN = """
local function merge(key, field, raw_new, new_wins_tie)
  local raw_old = redis.call('HGET', key, field)
  if not raw_old then
    redis.call('HSET', key, field, raw_new)
    return 1
  end
  local old = cjson.decode(raw_old)
  local new = cjson.decode(raw_new)
  local out = {}
  local changed = false
  local take
  if new.m == nil then take = false
  elseif old.m == nil then take = true
  elseif new.mv ~= old.mv then take = new.mv > old.mv
  else take = new_wins_tie end
  if take then
    out.m = new.m; out.mv = new.mv; changed = true
  elseif old.m ~= nil then
    out.m = old.m; out.mv = old.mv
  end
  if new.e == nil then take = false
  elseif old.e == nil then take = true
  elseif new.ev ~= old.ev then take = new.ev > old.ev
  elseif tonumber(new.ea) ~= tonumber(old.ea) then take = tonumber(new.ea) > tonumber(old.ea)
  else take = new_wins_tie end
  if take then
    out.e = new.e; out.ev = new.ev; out.ea = new.ea; changed = true
  elseif old.e ~= nil then
    out.e = old.e; out.ev = old.ev; out.ea = old.ea
  end
  if changed then
    redis.call('HSET', key, field, cjson.encode(out))
    return 1
  end
  return 0
end
"""

# KEYS[1] pending, KEYS[2] counters hash; ARGV[1] counter field, ARGV[2] amount, then field1, entry1,
# field2, entry2, …  → entries that changed the hash (the counter rides along: one round trip)
_PUT = (
    _MERGE_FN
    + """
local n = 0
for i = 3, #ARGV, 2 do
  n = n + merge(KEYS[1], ARGV[i], ARGV[i + 1], true)
end
if tonumber(ARGV[2]) ~= 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
end
return n
"""
)

# KEYS[1] pending, KEYS[2] registry, KEYS[3] new processing key; ARGV[1] lease expiry, ARGV[2] now
# → the processing keys this flusher now owns (a stale one first, then the one just taken)
_TAKE = """
local owned = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
for _, k in ipairs(stale) do
  if redis.call('EXISTS', k) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], k)
    table.insert(owned, k)
  else
    redis.call('ZREM', KEYS[2], k)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[3])
  redis.call('ZADD', KEYS[2], ARGV[1], KEYS[3])
  table.insert(owned, KEYS[3])
end
return owned
"""

# KEYS[1] pending, KEYS[2] registry; ARGV: processing keys → entries merged back
# The taken entries are older than (or as old as) whatever is pending now: pending wins ties.
_GIVE_BACK = (
    _MERGE_FN
    + """
local n = 0
for _, k in ipairs(ARGV) do
  local flat = redis.call('HGETALL', k)
  for i = 1, #flat, 2 do
    n = n + merge(KEYS[1], flat[i], flat[i + 1], false)
  end
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[2], k)
end
return n
"""
)

# KEYS[1] registry; ARGV: processing keys written to the database → keys removed
_DONE = """
for _, k in ipairs(ARGV) do
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[1], k)
end
return #ARGV
"""


def encode_entry(monitor_row: Mapping[str, Any] | None, event_row: Mapping[str, Any] | None) -> str:
    entry: dict[str, Any] = {}
    if monitor_row is not None:
        entry["mv"] = int(monitor_row["version"])
        entry["m"] = jsonable.dumps(monitor_row)
    if event_row is not None:
        entry["ev"] = int(event_row["monitor_version"])
        entry["ea"] = repr(float(event_row["at"]))
        entry["e"] = jsonable.dumps(event_row)
    if not entry:
        raise ValueError("an entry holds a monitor row, an event row or both")
    return jsonable.dumps(entry)


@dataclass(frozen=True, slots=True)
class Entry:
    monitor_id: str
    monitor: dict[str, Any] | None
    event: dict[str, Any] | None


def decode_entry(monitor_id: str, raw: bytes | str) -> Entry:
    data = jsonable.loads(raw)
    monitor = jsonable.loads(data["m"]) if "m" in data else None
    event = jsonable.loads(data["e"]) if "e" in data else None
    return Entry(monitor_id, monitor, event)


@dataclass(slots=True)
class Taken:
    """Hashes one flusher owns until it calls `PendingStore.done` or `give_back`."""

    keys: list[str]
    entries: list[Entry] = field(default_factory=list)


class PendingStore:
    """The pending hash and its processing keys (one per writer; safe to share between threads)."""

    def __init__(self, client: redis.Redis, *, prefix: str = keys.PREFIX, lease_s: float = 120.0) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s: must be > 0 seconds, got {lease_s!r}")
        self.client = client
        self.prefix = prefix
        self.lease_s = lease_s
        self.pending_key = keys.persist_pending(prefix)
        self.registry_key = keys.persist_processing(prefix)
        self._put = client.register_script(_PUT)
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._done = client.register_script(_DONE)

    def put(self, entries: Sequence[tuple[str, str]], *, count: tuple[str, int] | None = None) -> int:
        """Merge `(monitor id, encoded entry)` pairs into the pending hash, and add `count`
        (counter field, amount) to the persist counters in the same call. Returns entries that
        changed the hash (an entry older than the pending one changes nothing)."""
        if not entries and not count:
            return 0
        field_, amount = count if count is not None else ("", 0)
        args: list[str | int] = [field_, amount]
        for monitor_id, raw in entries:
            args += (monitor_id, raw)
        return int(self._put(keys=[self.pending_key, stats_key(self.prefix)], args=args))

    def take(self, now: float) -> Taken:
        """Atomically take the pending hash (and any hash a dead flusher left behind) and read them."""
        new_key = keys.persist_taken(self.prefix, uuid.uuid4().hex)
        owned = self._take(
            keys=[self.pending_key, self.registry_key, new_key], args=[repr(now + self.lease_s), repr(now)]
        )
        names = list(owned)
        taken = Taken(names)
        for key in names:
            if key != new_key:
                log.warning("recovering %s left behind by a flusher whose lease ran out", key)
            for field_, raw in cast("dict[str, str]", self.client.hgetall(key)).items():
                mid = field_  # clients decode responses (workers/runtime.redis_client)
                try:
                    taken.entries.append(decode_entry(mid, raw))
                except (ValueError, KeyError, TypeError) as exc:
                    # Only this module writes entries; one that cannot be read would block every
                    # later flush, so it is dropped, loudly.
                    log.error("dropping unreadable pending entry of monitor %s: %s", mid, exc)
        return taken

    def done(self, taken: Taken) -> None:
        if taken.keys:
            self._done(keys=[self.registry_key], args=taken.keys)

    def give_back(self, taken: Taken) -> int:
        """Merge taken hashes back into the pending one (newer pending entries win). Returns entries
        merged back."""
        if not taken.keys:
            return 0
        return int(self._give_back(keys=[self.pending_key, self.registry_key], args=taken.keys))

    def size(self) -> int:
        """Entries waiting for the next flush (taken hashes not included)."""
        return cast(int, self.client.hlen(self.pending_key))
