"""The Redis registry: monitor state with versions, per-tier due sets, the atomic claim, tier moves.

Keys (`<p>` is the prefix, "tpsl" by default):

| key                     | type | holds                                                          |
|-------------------------|------|----------------------------------------------------------------|
| `<p>:mon:<id>`          | hash | `state` (the caller's JSON), `version` (int), `account`, `tier` |
| `<p>:mons`              | set  | every monitor id                                               |
| `<p>:acct:<account>:mons` | set | the monitor ids of one account                                |
| `<p>:accounts`          | set  | every account that has a monitor                               |
| `<p>:due:<tier>`        | zset | member `"<account>|<monitor id>"`, score = next due time (epoch s) |
| `<p>:registry:epoch`    | hash | `id`, `since` (after a rebuild `rebuilt_at`, `restored`); gone: lost |

The due-set member carries the account so that the claim script knows which account a due monitor
belongs to without reading anything else. An account id therefore must not contain `|` (a monitor
id may: the member is split at the first `|`); neither may contain control characters (the claim
answers one line per member).

Every write that touches more than one key is one Lua script (workers/lua/), so Redis applies it
atomically: a crashed caller never leaves a half-created or half-removed monitor behind. The scripts
assume one Redis (not a Cluster): `remove` derives the per-account set's key from the stored account.

Claim rhythm: with ride-alongs, an account that has monitors due at every tick is checked once per
`claim_lookahead_s + dispatch_tick_s` (2 s by default) for everything due in the next lookahead;
a due monitor waits at most one tick, a ride-along is checked at most `claim_lookahead_s` early, and
its schedule does not move (it is re-scored from its previous score).

Versions: `add` stores version 1 (or the one given); `save(id, state, expected_version=v)` writes
`state` and version v+1 only if the stored version is still v. The caller's JSON embeds the version
too, so it builds the new state with v+1 before saving; a stale writer gets False and must re-read.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict, cast

from redis import Redis
from redis.commands.core import Script

from config import keys
from config.settings import Settings
from core.models import Tier
from workers.lua import source

log = logging.getLogger(__name__)

TIER_ORDER: tuple[Tier, ...] = tuple(sorted(Tier, key=lambda t: t.rank))  # most urgent first
MEMBER_SEP = "|"


@dataclass(frozen=True, slots=True)
class StoredState:
    """A monitor as the registry holds it."""

    state_json: str
    version: int
    account: str
    tier: Tier


class Claimed(NamedTuple):
    """One monitor taken by `Registry.claim`.

    `due_at` is the due time that was claimed (the member's previous score). `lag_s` = claim time −
    due time for a due monitor, 0 for a ride-along (it was taken early because its account was
    checked anyway). A NamedTuple: a claim builds thousands of them per tick, and tuples are the
    cheapest immutable record to build."""

    monitor_id: str
    account: str
    tier: Tier
    due_at: float
    lag_s: float
    ride_along: bool = False


class NewMonitor(NamedTuple):
    """One monitor for `Registry.add_many` (a plain tuple works too)."""

    monitor_id: str
    account: str
    state_json: str
    tier: Tier | str
    due_at: float
    version: int = 1


class SaveItem(NamedTuple):
    """One compare-and-set for `Registry.save_many` (a plain 3-tuple works too)."""

    monitor_id: str
    state_json: str
    expected_version: int


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _check_id(monitor_id: Any) -> str:
    if not isinstance(monitor_id, str) or not monitor_id:
        raise ValueError(f"monitor_id: must be a non-empty string (got {monitor_id!r})")
    if _has_control(monitor_id):
        raise ValueError(f"monitor_id: must not contain control characters (got {monitor_id!r})")
    return monitor_id


def _check_account(account: Any) -> str:
    if not isinstance(account, str) or not account:
        raise ValueError(f"account: must be a non-empty string (got {account!r})")
    if MEMBER_SEP in account:
        raise ValueError(f"account: must not contain {MEMBER_SEP!r} (got {account!r})")
    if _has_control(account):
        raise ValueError(f"account: must not contain control characters (got {account!r})")
    return account


def _check_tier(tier: Any) -> Tier:
    try:
        return Tier(tier)
    except ValueError:
        names = ", ".join(t.value for t in TIER_ORDER)
        raise ValueError(f"tier: {tier!r} is not one of {names}") from None


def _check_time(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number of epoch seconds (got {value!r})")
    return float(value)


def _check_state(state_json: Any) -> str:
    if not isinstance(state_json, str) or not state_json:
        raise ValueError("state_json: must be a non-empty JSON string")
    return state_json


def _check_version(field: str, version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{field}: must be an integer >= 1 (got {version!r})")
    return version


def _num(value: float) -> str:
    """A float as Redis and Lua parse it back exactly (shortest round-trip repr)."""
    return repr(float(value))


class _ScriptCall(TypedDict):
    """The keyword arguments of one call of the add script."""

    keys: list[str]
    args: list[Any]


# the fields of a monitor's hash a read of its stored state takes, in `_stored`'s order
STORED_FIELDS = ("state", "version", "account", "tier")


class Registry:
    """Monitor state, due sets and tier moves in one Redis.

    `redis_client` decodes responses (`decode_responses=True`, workers/runtime.py). Safe to share
    between threads (redis-py's pool); separate processes each build their own.
    """

    def __init__(self, redis_client: Redis, settings: Settings, *, prefix: str = keys.PREFIX) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix: must be a non-empty string without spaces (got {prefix!r})")
        self.redis = redis_client
        self.settings = settings
        self.prefix = prefix
        self._intervals: tuple[float, ...] = tuple(settings.interval(t) for t in TIER_ORDER)
        self._tier_pos: dict[Tier, int] = {t: i + 1 for i, t in enumerate(TIER_ORDER)}  # 1-based, Lua
        self._due_keys: list[str] = [self.due_key(t) for t in TIER_ORDER]
        self._add = self._script("add")
        self._save = self._script("save")
        self._remove = self._script("remove")
        self._schedule = self._script("schedule")
        self._next_due = self._script("next_due")
        self._move_tier = self._script("move_tier")
        self._claim = self._script("claim")

    def _script(self, name: str) -> Script:
        return self.redis.register_script(source(name))

    # ------------------------------------------------------------------------------------ epoch

    def present(self) -> bool:
        """One round trip: False when the registry's epoch key is gone (Redis flushed, replaced or
        restarted without persistence; workers/reconcile.py rebuilds and starts a new epoch)."""
        return bool(self.redis.exists(keys.registry_epoch(self.prefix)))

    def epoch(self) -> dict[str, str] | None:
        """The registry's epoch: `id`, `since` (epoch s) and, after a rebuild, `rebuilt_at` and
        `restored`. None when Redis holds no registry epoch (lost, or never reconciled)."""
        raw = self.redis.hgetall(keys.registry_epoch(self.prefix))
        if not raw:
            return None
        return dict(cast("dict[str, str]", raw))  # the client decodes responses

    def start_epoch(self, now: float, *, restored: int | None = None) -> bool:
        """Write a new epoch unless one exists (`restored`: the monitors a rebuild put back). True
        when this call wrote it."""
        key = keys.registry_epoch(self.prefix)
        if not self.redis.hsetnx(key, "id", secrets.token_hex(8)):
            return False
        fields: dict[str, str] = {"since": repr(now)}
        if restored is not None:
            fields.update(rebuilt_at=repr(now), restored=str(restored))
        self.redis.hset(key, mapping=fields)
        return True

    # ------------------------------------------------------------------------------------- keys

    def monitor_key(self, monitor_id: str) -> str:
        return keys.monitor(self.prefix, monitor_id)

    def account_key(self, account: str) -> str:
        return keys.account_monitors(self.prefix, account)

    def due_key(self, tier: Tier) -> str:
        return keys.due(self.prefix, tier.value)

    @property
    def _all_key(self) -> str:
        return keys.all_monitors(self.prefix)

    @property
    def _accounts_key(self) -> str:
        return keys.accounts(self.prefix)

    @staticmethod
    def member(account: str, monitor_id: str) -> str:
        """The due-set member of a monitor."""
        return f"{account}{MEMBER_SEP}{monitor_id}"

    @staticmethod
    def split_member(member: str) -> tuple[str, str]:
        """(account, monitor id) of a due-set member."""
        account, _, monitor_id = member.partition(MEMBER_SEP)
        return account, monitor_id

    def interval(self, tier: Tier) -> float:
        """The interval the claim re-scores this tier with (settings, fixed-polling switch included)."""
        return self._intervals[self._tier_pos[tier] - 1]

    # ---------------------------------------------------------------------------- monitor state

    def add(
        self,
        monitor_id: str,
        account: str,
        state_json: str,
        tier: Tier | str,
        due_at: float,
        *,
        version: int = 1,
    ) -> bool:
        """Create a monitor (state, indexes, due entry) atomically. False if the id exists already
        (then nothing changes)."""
        item = NewMonitor(monitor_id, account, state_json, tier, due_at, version)
        return bool(int(self._add(**self._add_call(item))))

    def add_many(self, items: Iterable[NewMonitor | tuple[Any, ...]]) -> dict[str, bool]:
        """`add` for many monitors in one round trip (each creation atomic on its own): rebuilding the
        registry from the database at start-up. An id given twice is created by its first item only."""
        calls = [self._add_call(NewMonitor(*item)) for item in items]
        if not calls:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            self._add(**call, client=pipe)
        out: dict[str, bool] = {}
        for call, created in zip(calls, pipe.execute(), strict=True):
            monitor_id = call["args"][0]
            out[monitor_id] = out.get(monitor_id, False) or bool(int(created))
        return out

    def _add_call(self, item: NewMonitor) -> _ScriptCall:
        monitor_id = _check_id(item.monitor_id)
        account = _check_account(item.account)
        state_json = _check_state(item.state_json)
        t = _check_tier(item.tier)
        due = _check_time("due_at", item.due_at)
        version = _check_version("version", item.version)
        return {
            "keys": [
                self.monitor_key(monitor_id),
                self._all_key,
                self._accounts_key,
                self.account_key(account),
                self.due_key(t),
            ],
            "args": [
                monitor_id,
                account,
                state_json,
                version,
                t.value,
                _num(due),
                self.member(account, monitor_id),
            ],
        }

    def get(self, monitor_id: str) -> StoredState | None:
        raw = self.redis.hmget(self.monitor_key(_check_id(monitor_id)), list(STORED_FIELDS))
        return self._stored(cast("list[Any]", raw))

    def get_many(self, monitor_ids: Iterable[str]) -> dict[str, StoredState]:
        """The stored states of these monitors (unknown ids are left out), in one round trip."""
        ids = [_check_id(i) for i in monitor_ids]
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for monitor_id in ids:
            pipe.hmget(self.monitor_key(monitor_id), list(STORED_FIELDS))
        out: dict[str, StoredState] = {}
        for monitor_id, raw in zip(ids, pipe.execute(), strict=True):
            stored = self._stored(raw)
            if stored is not None:
                out[monitor_id] = stored
        return out

    def states(self, monitor_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(version, state JSON) of these monitors, one round trip; unknown ids are left out. The
        cheap read of a listing (no account, no tier): a reader decodes a state again only when its
        version changed."""
        ids = [_check_id(i) for i in monitor_ids]
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for monitor_id in ids:
            pipe.hmget(self.monitor_key(monitor_id), ["version", "state"])
        out: dict[str, tuple[int, str]] = {}
        for monitor_id, (version, state) in zip(ids, pipe.execute(), strict=True):
            if version is not None and state is not None:
                out[monitor_id] = (int(version), state)
        return out

    def versions(self, monitor_ids: Iterable[str]) -> dict[str, int]:
        """The version of each of these monitors, one round trip; unknown ids are left out. What a
        reader that keeps decoded states compares, to read again only those that changed."""
        ids = [_check_id(i) for i in monitor_ids]
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for monitor_id in ids:
            pipe.hget(self.monitor_key(monitor_id), "version")
        return {mid: int(v) for mid, v in zip(ids, pipe.execute(), strict=True) if v is not None}

    @staticmethod
    def _stored(raw: Sequence[Any]) -> StoredState | None:
        state, version, account, tier = raw
        if state is None or version is None or account is None or tier is None:
            return None
        return StoredState(state, int(version), account, Tier(tier))

    def save(self, monitor_id: str, state_json: str, *, expected_version: int) -> bool:
        """Compare-and-set: store `state_json` with version `expected_version + 1` only if the stored
        version is `expected_version`. False when stale (re-read and retry) or when the monitor is gone
        (`get` then answers None)."""
        return self.save_many([SaveItem(monitor_id, state_json, expected_version)])[monitor_id]

    def save_many(self, items: Iterable[SaveItem | tuple[str, str, int]]) -> dict[str, bool]:
        """Several compare-and-sets in one round trip (one script), applied in order. An id given twice
        gets the outcome of its last item (the second one is stale unless it expected v+1)."""
        hashes: list[str] = []
        args: list[Any] = []
        ids: list[str] = []
        for item in items:
            monitor_id, state_json, expected = SaveItem(*item)
            ids.append(_check_id(monitor_id))
            hashes.append(self.monitor_key(monitor_id))
            args.extend((_check_state(state_json), str(_check_version("expected_version", expected))))
        if not ids:
            return {}
        codes = self._save(keys=hashes, args=args)
        out: dict[str, bool] = {}
        for monitor_id, code in zip(ids, codes, strict=True):
            code = int(code)
            if code < 0:
                log.debug("save of monitor %s: no such monitor", monitor_id)
            out[monitor_id] = code == 1
        return out

    def remove(self, monitor_id: str) -> bool:
        """Remove a monitor completely (state, index sets, due entries in every tier) atomically.
        False if it did not exist."""
        return self.remove_many([monitor_id])[monitor_id]

    def remove_many(self, monitor_ids: Iterable[str]) -> dict[str, bool]:
        """`remove` for several monitors in one round trip (each removal atomic on its own): a
        pass that closed fifty monitors does not wait for fifty."""
        ids = [_check_id(mid) for mid in monitor_ids]
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for mid in ids:
            self._remove(
                keys=[self.monitor_key(mid), self._all_key, self._accounts_key, *self._due_keys],
                args=[mid, self.prefix],
                client=pipe,
            )
        return {mid: bool(int(removed)) for mid, removed in zip(ids, pipe.execute(), strict=True)}

    def ids(self, account: str | None = None) -> list[str]:
        """Every monitor id, or those of one account, sorted."""
        key = self._all_key if account is None else self.account_key(_check_account(account))
        return sorted(cast("set[str]", self.redis.smembers(key)))  # decode_responses: text

    def accounts(self) -> list[str]:
        """Every account that has at least one monitor, sorted."""
        return sorted(cast("set[str]", self.redis.smembers(self._accounts_key)))  # decoded text

    def count(self) -> int:
        return cast(int, self.redis.scard(self._all_key))

    # ------------------------------------------------------------------------------- due sets

    def schedule(self, monitor_id: str, account: str, tier: Tier | str, due_at: float) -> bool:
        """Make the monitor due at `due_at` in `tier` (and in no other tier); records the tier.
        False when there is no such monitor (no orphan due entry is created)."""
        monitor_id = _check_id(monitor_id)
        account = _check_account(account)
        t = _check_tier(tier)
        due = _check_time("due_at", due_at)
        code = int(
            self._schedule(
                keys=[self.monitor_key(monitor_id), *self._due_keys],
                args=[monitor_id, account, self._tier_pos[t], t.value, _num(due)],
            )
        )
        if code < 0:
            raise ValueError(f"account: monitor {monitor_id!r} does not belong to account {account!r}")
        return code == 1

    def next_due(self, monitor_id: str) -> tuple[Tier, float] | None:
        """(tier, due time) of the monitor's due entry, None when unknown or not scheduled."""
        monitor_id = _check_id(monitor_id)
        found = self._next_due(keys=[self.monitor_key(monitor_id), *self._due_keys], args=[monitor_id])
        if not found:
            return None
        pos, score = found
        return TIER_ORDER[int(pos) - 1], float(score)

    def claim(self, now: float, *, lookahead: float | None = None, cap: int | None = None) -> list[Claimed]:
        """Take the due monitors (and the soon-due monitors of their accounts) and re-score them; one
        atomic script, one round trip. See workers/lua/claim.lua for the rules.

        Returns due monitors first (most overdue first), then ride-alongs (soonest first).
        `lookahead` defaults to `settings.claim_lookahead_s`, `cap` to `settings.claim_cap`.
        Cost: reads only the members due by `now + lookahead` (at most `cap` due ones per tier)."""
        now = _check_time("now", now)
        look = self.settings.claim_lookahead_s if lookahead is None else lookahead
        if isinstance(look, bool) or not isinstance(look, int | float) or not (0 <= look < math.inf):
            raise ValueError(f"lookahead: must be a finite number of seconds >= 0 (got {lookahead!r})")
        limit = self.settings.claim_cap if cap is None else cap
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"cap: must be an integer >= 1 (got {cap!r})")
        reply = self._claim(
            keys=self._due_keys,
            args=[_num(now), _num(look), limit, *(_num(i) for i in self._intervals)],
        )
        out: list[Claimed] = []
        if not reply:
            return out
        for line in reply.split("\n"):
            member, pos, score, flag = line.rsplit("\t", 3)
            account, _, monitor_id = member.partition(MEMBER_SEP)
            due_at = float(score)
            is_due = flag == "1"
            out.append(
                Claimed(
                    monitor_id,
                    account,
                    TIER_ORDER[int(pos) - 1],
                    due_at,
                    now - due_at if is_due else 0.0,
                    not is_due,
                )
            )
        return out

    def move_tier(self, monitor_id: str, new_tier: Tier | str, now: float) -> bool:
        """Move a monitor to another tier; records the tier. More urgent: due at once (at `now`, or
        earlier if it was already overdue). Less urgent: keeps its next natural due time. Same tier:
        nothing. True when moved; False when already there or when there is no such monitor."""
        monitor_id = _check_id(monitor_id)
        t = _check_tier(new_tier)
        at = _check_time("now", now)
        code = int(
            self._move_tier(
                keys=[self.monitor_key(monitor_id), *self._due_keys],
                args=[monitor_id, self._tier_pos[t], t.value, _num(at), *(x.value for x in TIER_ORDER)],
            )
        )
        if code < 0:
            log.debug("move_tier of monitor %s: no such monitor", monitor_id)
        return code == 1

    def move_tiers(self, moves: Mapping[str, Tier | str], now: float) -> dict[str, bool]:
        """`move_tier` for several monitors in one round trip (each move atomic on its own)."""
        at = _check_time("now", now)
        items = [(_check_id(i), _check_tier(t)) for i, t in moves.items()]
        if not items:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        names = [x.value for x in TIER_ORDER]
        for monitor_id, t in items:
            self._move_tier(
                keys=[self.monitor_key(monitor_id), *self._due_keys],
                args=[monitor_id, self._tier_pos[t], t.value, _num(at), *names],
                client=pipe,
            )
        codes = pipe.execute()
        return {monitor_id: int(code) == 1 for (monitor_id, _), code in zip(items, codes, strict=True)}

    def due_entries(self, slices: Sequence[tuple[Tier, int, int]]) -> list[list[tuple[str, str, float]]]:
        """For each (tier, start, stop): the (account, monitor id, due time) of that ZRANGE slice of
        the tier's due set, soonest first (stop -1: to the end). One round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for tier, start, stop in slices:
            pipe.zrange(self.due_key(tier), start, stop, withscores=True)
        out: list[list[tuple[str, str, float]]] = []
        for members in pipe.execute():
            entries = []
            for member, score in members:
                account, _, monitor_id = member.partition(MEMBER_SEP)
                entries.append((account, monitor_id, float(score)))
            out.append(entries)
        return out

    # ---------------------------------------------------------------------------------- metrics

    def counts_by_tier(self) -> dict[Tier, int]:
        """Monitors scheduled in each tier."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self._due_keys:
            pipe.zcard(key)
        return {t: int(n) for t, n in zip(TIER_ORDER, pipe.execute(), strict=True)}

    def overdue(self, now: float) -> dict[Tier, float]:
        """Age of the oldest overdue monitor in each tier, seconds (0.0 when none is overdue)."""
        now = _check_time("now", now)
        pipe = self.redis.pipeline(transaction=False)
        for key in self._due_keys:
            pipe.zrange(key, 0, 0, withscores=True)
        out: dict[Tier, float] = {}
        for t, first in zip(TIER_ORDER, pipe.execute(), strict=True):
            out[t] = max(0.0, now - float(first[0][1])) if first else 0.0
        return out
