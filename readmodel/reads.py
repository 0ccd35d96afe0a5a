"""Every read the dashboard (and, without a cache, the CLI) makes, and which cache entry it goes through.

| read                               | source                 | cache component (TTL)             |
|------------------------------------|------------------------|-----------------------------------|
| live monitors, one live monitor    | Redis registry (fresh) | none: the registry is Redis       |
| next check of a monitor            | Redis due sets         | none                              |
| closed monitors, one closed monitor| database               | history (5 s), fleet-wide tag     |
| events of a monitor, recent events | database               | history (5 s), tagged             |
| balance, positions, open orders    | exchange               | account 60 s, positions/orders 15 s |
| counts by phase, kind              | database               | stats (300 s)                     |
| insights                           | database               | insights (1800 s)                 |
| symbols of the create form         | exchange (instruments) | market (180 s)                    |

A critical event of an account (fill, stop move, close, create, remove) drops that account's
balance/positions/orders entries and the history entries (workers call `invalidate_account`).
Without a cache (`cache=None`, the CLI) every read goes to its source. Database sessions are short:
one per read.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from config.accounts import ACCOUNT_ID
from core.codec import exchange_order_to_dict, monitor_to_dict, position_to_dict
from core.errors import FixInput, NotFound, TpslError
from core.models import Account, Monitor, WalletBalance
from persistence import queries
from persistence.db import session_factory
from readmodel.errors import ApiError
from readmodel.views import event_view, exchange_order_view, monitor_view
from workers.registry import TIER_ORDER
from workers.store import MonitorStore
from workers.ttl_cache import FLEET, TTLCache

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

HISTORY = "history"
HISTORY_TTL_S = 5.0  # closed monitors and event timelines read from the database, seconds
EXTRA_TTLS = {HISTORY: HISTORY_TTL_S}
MAX_LIST = 1000
CACHED_EVENT_LIMITS = frozenset({50, 200})  # the page's and the API's default timeline sizes
INSIGHT_DAYS = (1, 7, 30, 90, 365, 3650)  # the spans insights are computed over, days
VIEWS_MAX = 20_000  # live monitor views kept per process, by state text (least recently used go)
STATUSES = ("all", "open", "closed")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@functools.lru_cache(maxsize=VIEWS_MAX)
def live_view(state_json: str) -> Mapping[str, Any] | None:
    """The view of a live monitor's state text (without its next check; shared: copy before
    changing it), None for a text that does not decode. Remembered by the exact text, so a monitor
    is decoded again only when its state changed."""
    try:
        state = orjson.loads(state_json)
    except orjson.JSONDecodeError:
        log.warning("unreadable monitor state in the registry; not shown")
        return None
    return monitor_view(state, live=True)


def valid_id(monitor_id: str) -> str:
    """A monitor id as the API accepts it (anything else cannot exist: 404 without a look-up)."""
    if not _ID_RE.match(monitor_id or ""):
        raise ApiError(404, "not_found", f"no monitor {monitor_id[:80]!r}", "id")
    return monitor_id


def wallet_dict(w: WalletBalance) -> dict[str, str]:
    return {
        "equity": str(w.equity),
        "wallet_balance": str(w.wallet_balance),
        "available": str(w.available),
        "unrealised_pnl": str(w.unrealised_pnl),
        "realised_pnl": str(w.realised_pnl),
    }


def account_info(a: Account) -> dict[str, Any]:
    """What the API tells about a configured account (never its keys, nor its base URL)."""
    return {"id": a.id, "role": a.role.value, "mirror_of": a.mirror_of, "ratio": str(a.ratio)}


def created_view(rt: Runtime, monitor: Monitor) -> dict[str, Any]:
    """The view of a monitor just created (the POST answer): as registered, with its next check."""
    due = rt.registry.next_due(monitor.id)
    return monitor_view(
        monitor_to_dict(monitor), live=True, next_check=None if due is None else (due[0].value, due[1])
    )


def removed_view(rt: Runtime, monitor: Monitor) -> dict[str, Any]:
    """The view of a monitor just removed (live until its last cancels are confirmed)."""
    live = MonitorStore(rt.registry).load(monitor.id) is not None
    return monitor_view(monitor_to_dict(monitor), live=live)


class DashboardData:
    """`DashboardData(rt, cache)`; `cache=None` reads every source directly."""

    def __init__(self, rt: Runtime, cache: TTLCache | None) -> None:
        self.rt = rt
        self.cache = cache
        self._sessions: Any = None

    @property
    def sessions(self) -> Any:
        if self._sessions is None:
            self._sessions = session_factory(self.rt.engine)
        return self._sessions

    def _cached(self, component: str, key: str, loader: Callable[[], T], *, account: str | None = None) -> T:
        if self.cache is None:
            return loader()
        return self.cache.get_or_load(component, key, loader, account=account)

    # --------------------------------------------------------------------------------- monitors

    def _live_index(
        self, account: str | None = None, *, offset: int = 0, limit: int | None = None
    ) -> list[tuple[str, str, str, float]]:
        """(monitor id, account, tier, next due) of the live monitors (of one account), most urgent
        tier first and soonest due first, `offset`/`limit` applied: read from the registry's due
        sets (no state read). Without an account filter only the requested slice is fetched."""
        if account is not None and account not in self.rt.accounts:
            return []
        reg = self.rt.registry
        if account is None:
            ranges = self._slice_ranges(offset, limit)
            first, last = 0, None
        else:
            ranges = [(t, 0, -1) for t in TIER_ORDER]
            first, last = offset, None if limit is None else offset + limit
        if not ranges:
            return []
        out: list[tuple[str, str, str, float]] = []
        seen: set[str] = set()  # a monitor that moved tiers between the counts and the ranges
        for (tier, _, _), entries in zip(ranges, reg.due_entries(ranges), strict=True):
            for acc, mid, due in entries:
                if (account is None or acc == account) and mid not in seen:
                    seen.add(mid)
                    out.append((mid, acc, tier.value, due))
        return out[first:last]

    def _slice_ranges(self, offset: int, limit: int | None) -> list[tuple[Any, int, int]]:
        """(tier, start, stop) ZRANGE arguments covering [offset, offset + limit) of the due sets
        read most urgent tier first."""
        counts = self.rt.registry.counts_by_tier()
        end = None if limit is None else offset + limit
        out = []
        base = 0
        for tier in TIER_ORDER:
            n = counts.get(tier, 0)
            lo, hi = max(offset - base, 0), n if end is None else min(end - base, n)
            if lo < hi:
                out.append((tier, lo, hi - 1))
            base += n
        return out

    def live_monitors(
        self, account: str | None = None, *, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Live monitors, most urgent first (tier, then next check); views only for the slice, each
        built once per state text (`live_view`)."""
        index = self._live_index(account, offset=offset, limit=limit)
        states = self.rt.registry.states([mid for mid, _, _, _ in index])
        out = []
        for mid, _, tier, due in index:
            stored = states.get(mid)
            view = None if stored is None else live_view(stored[1])
            if view is None:
                continue  # removed meanwhile, or unreadable
            view = dict(view)
            view["next_check"] = {"tier": tier, "at": due}
            out.append(view)
        return out

    def live_count(self, account: str | None = None) -> int:
        if account is None:
            return sum(self.rt.registry.counts_by_tier().values())
        return len(self._live_index(account))

    def closed_monitors(self, account: str | None = None, *, limit: int = 100, offset: int = 0) -> list[dict]:
        def load() -> list[dict[str, Any]]:
            with self.sessions() as s:
                rows = queries.list_monitors(s, account=account, phase="closed", limit=limit, offset=offset)
            return [monitor_view(r.state, live=False) for r in rows]

        return self._cached(HISTORY, f"closed:{account or FLEET}:{limit}:{offset}", load, account=FLEET)

    def monitors(
        self, *, status: str = "all", account: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Live monitors (fresh; most urgent first) then closed ones (newest first), `limit` in all."""
        if status not in STATUSES:
            raise FixInput("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
        if isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
            raise FixInput("limit", f"must be an integer from 1 to {MAX_LIST}, got {limit!r}")
        if offset < 0:
            raise FixInput("offset", f"must be an integer ≥ 0, got {offset!r}")
        if account is not None and not ACCOUNT_ID.match(account):
            raise FixInput("account", "must be an account id: 1-32 letters, digits, '-' or '_'")
        out: list[dict[str, Any]] = []
        if status in ("all", "open"):
            out.extend(self.live_monitors(account, offset=offset, limit=limit))
            skipped = min(offset, self.live_count(account)) if len(out) < limit else offset
        else:
            skipped = 0
        if status in ("all", "closed") and len(out) < limit:
            closed_offset = offset - skipped
            seen = {m["id"] for m in out}
            closed = self.closed_monitors(account, limit=limit - len(out), offset=closed_offset)
            out.extend(m for m in closed if m["id"] not in seen)
        return out

    def live_monitor(self, monitor_id: str) -> dict[str, Any] | None:
        stored = self.rt.registry.get(valid_id(monitor_id))
        if stored is None:
            return None
        try:
            state = orjson.loads(stored.state_json)
        except orjson.JSONDecodeError:
            return None
        due = self.rt.registry.next_due(monitor_id)
        return monitor_view(state, live=True, next_check=None if due is None else (due[0].value, due[1]))

    def stored_monitor(self, monitor_id: str) -> dict[str, Any]:
        """A monitor the database knows (closed, or not yet in the registry); NotFound otherwise."""

        def load() -> dict[str, Any]:
            with self.sessions() as s:
                row = queries.get_monitor(s, monitor_id)
            if row is None:
                raise NotFound(f"no monitor {monitor_id}")
            return monitor_view(row.state, live=False)

        return self._cached(HISTORY, f"monitor:{valid_id(monitor_id)}", load, account=FLEET)

    def monitor(self, monitor_id: str) -> dict[str, Any]:
        """Live from the registry, else closed from the database; NotFound when neither knows it."""
        return self.live_monitor(monitor_id) or self.stored_monitor(monitor_id)

    def events(self, monitor_id: str, *, limit: int = 200, before: float | None = None) -> list[dict]:
        m = self.monitor(monitor_id)  # 404 for an unknown monitor

        def load() -> list[dict[str, Any]]:
            with self.sessions() as s:
                rows = queries.events_for(s, monitor_id, limit=limit, before=before)
            return [event_view(r.to_dict()) for r in rows]

        if before is not None or limit not in CACHED_EVENT_LIMITS:
            return load()  # older pages and odd sizes read through: the cache keeps a bounded key set
        return self._cached(HISTORY, f"events:{monitor_id}:{limit}", load, account=m["account"])

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        def load() -> list[dict[str, Any]]:
            with self.sessions() as s:
                rows = queries.recent_events(s, limit=limit)
            return [event_view(r.to_dict()) for r in rows]

        return self._cached(HISTORY, f"recent:{limit}", load, account=FLEET)

    # --------------------------------------------------------------------------------- accounts

    def accounts(self) -> list[dict[str, Any]]:
        return [account_info(a) for _, a in sorted(self.rt.accounts.items())]

    def _account(self, account_id: str) -> Account:
        acc = self.rt.accounts.get(account_id)
        if acc is None:
            known = ", ".join(sorted(self.rt.accounts)) or "none configured"
            raise ApiError(
                404, "not_found", f"unknown account {account_id[:40]!r} (known: {known})", "account"
            )
        return acc

    def balance(self, account_id: str) -> dict[str, str]:
        acc = self._account(account_id)
        client = self.rt.client_for(acc)
        return self._cached(
            "account", acc.id, lambda: wallet_dict(client.wallet_balance(acc)), account=acc.id
        )

    def positions(self, account_id: str) -> list[dict[str, Any]]:
        acc = self._account(account_id)
        client = self.rt.client_for(acc)
        return self._cached(
            "positions",
            acc.id,
            lambda: [position_to_dict(p) for p in client.positions(acc)],
            account=acc.id,
        )

    def open_orders(self, account_id: str) -> list[dict[str, Any]]:
        acc = self._account(account_id)
        client = self.rt.client_for(acc)
        return self._cached(
            "orders",
            acc.id,
            lambda: [exchange_order_view(exchange_order_to_dict(o)) for o in client.open_orders(acc)],
            account=acc.id,
        )

    def account(self, account_id: str) -> dict[str, Any]:
        """`GET /api/accounts/{id}`: equity, balance, unrealised PnL, positions, open orders."""
        acc = self._account(account_id)
        return {
            **account_info(acc),
            **self.balance(acc.id),
            "positions": self.positions(acc.id),
            "orders": self.open_orders(acc.id),
        }

    def account_cards(self) -> list[dict[str, Any]]:
        """Every account with its balance and position count; an exchange failure is shown on the
        account's card (never fails the page)."""
        out = []
        for a in self.accounts():
            card: dict[str, Any] = dict(a)
            try:
                card.update(self.balance(a["id"]))
                card["positions"] = self.positions(a["id"])
                card["orders"] = len(self.open_orders(a["id"]))
                card["error"] = None
            except TpslError as exc:
                card["error"] = f"exchange unavailable ({exc.kind.value})"
            out.append(card)
        return out

    # ---------------------------------------------------------------------------------- figures

    def counts(self) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            with self.sessions() as s:
                return queries.counts(s)

        return self._cached("stats", "counts", load)

    def insights(self, days: float = 7.0) -> dict[str, Any]:
        """Outcomes of the monitors closed in the last `days`, rounded up to one of INSIGHT_DAYS (so
        the cache holds at most one entry per span)."""
        days = next((d for d in INSIGHT_DAYS if days <= d), INSIGHT_DAYS[-1])

        def load() -> dict[str, Any]:
            since = time.time() - days * 86400.0
            with self.sessions() as s:
                out = queries.insights(s, since=since)
            out["days"] = days
            return out

        return self._cached("insights", f"days:{days}", load)

    def symbols(self) -> list[str]:
        """Symbols a monitor can be created on (the first main account's exchange)."""
        mains = [a for a in self.rt.accounts.values() if not a.is_mirror]
        if not mains:
            return []

        def load() -> list[str]:
            from workers.lifecycle import instruments

            return sorted(instruments(self.rt, mains[0]))

        return self._cached("market", "symbols", load)
