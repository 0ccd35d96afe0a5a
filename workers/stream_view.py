"""The stream view: an account's orders and positions as its private stream pushed them, in Redis,
read by checks instead of the exchange while the stream is healthy, and kept honest by REST.

Writes (the stream process, `apply_*`): every push of one of our orders (by orderLinkId, with its
status and cumExecQty) and every position push, newer-wins by the exchange's own update time, so a
late push never undoes a newer state (`workers/lua/view_put.lua`).

Reads (a check, `read`): a Snapshot built from the view, with no REST call, when
- the stream process is alive and the account's stream is up (`alive`, a key with a short TTL the
  process refreshes), and
- the view was reconciled by REST after the stream's last (re)subscription (`gap_at`), and less
  than `stream_reconcile_s` ago.
Otherwise the check reads the exchange by REST, exactly as it does without streams, and that read
reconciles the view (`reconcile`): where the view and the exchange differ, the exchange wins, and a
difference the pushes should have brought (older than `DIVERGENCE_GRACE_MS`, and not the catching
up of the first read after a gap) is counted as a divergence (a lost push) and logged. A task
reconciles each view the same way in the background before it is `stream_reconcile_s` old
(workers/view_refresh.py), so checks read REST after a gap and while the stream is down; the tiers
keep scheduling every monitor either way.

A symbol on which the view has seen an execution but not yet the position push that shows it
(Bybit pushes the execution, the order and the position of one fill as separate messages, in no
order it promises) is *behind*: its orders and its position would disagree, and the core would act
on a filled order beside a position that does not have the fill (a stop "missing" from a position
that is in fact closed). Its monitors are not checked from the view. For up to `BEHIND_WAIT_S` after
the fill a check may check the other symbols' monitors and leave those to the check the position
push calls (the caller's choice: `read(..., behind_wait_s=...)`); a fill older than that (its
position push lost), or a caller that does not wait, sends the whole check to REST. The stream
process publishes its checks a moment after the push that calls them (`TPSL_STREAM_SETTLE_S`), so
the rest of a fill's pushes are usually in by then; in a burst of fills they can be a few hundred
milliseconds behind, and a REST read of a whole account takes longer than that.

Orders that reached a final state stay in the view (their final fills answer the core's look-ups)
for `FINAL_KEPT_MS`; an order the view shows open but the exchange no longer lists is dropped from
the view, so the core looks it up by REST like any order that left the open list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson
from redis import Redis

from config import keys
from core.codec import (
    exchange_order_from_dict,
    exchange_order_to_dict,
    position_from_dict,
    position_to_dict,
)
from core.ids import parse_link_id
from core.models import ExchangeOrder, Instrument, Position, Side, Snapshot
from workers.decoded import Decoded, Text
from workers.lua import source
from workers.position_index import key_of, parse_key

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

ALIVE_TTL_S = 5  # the stream process refreshes it every second while the stream is up
DIVERGENCE_GRACE_MS = 2_000  # a change this old must have been pushed by now
FINAL_KEPT_MS = 3_600_000  # final orders kept for look-ups this long
# rows a process keeps decoded (workers/decoded.py), keyed by (account, field): every position of
# the accounts it checks (a check reads them all), and the orders of the monitors it checked lately
VIEW_POSITIONS_MAX = 10_000
VIEW_ORDERS_MAX = 8_192
BEHIND_WAIT_S = 1.0  # a fill's position push is awaited this long (a REST read of the account after)
# a position change the view's orders do not explain is awaited this long (the order pushes of a
# fill can come after its position's); then a check of that monitor reads the account by REST,
# which alone confirms the change (`core.step._pushed_cannot_confirm`): an order push may be lost
UNEXPLAINED_WAIT_S = 1.0


def _view_position(text: Text) -> tuple[Position, float | None]:
    """A position row as a check sees it, and when its push came (`seen_at`; None in a row written
    before rows carried it): without a mark price (a position is pushed when it changes, not when
    the price moves, so its pushed mark is as old as its last change)."""
    d = orjson.loads(text)
    d["mark_price"] = None
    seen = d.pop("seen_at", None)
    return position_from_dict(d), None if seen is None else float(seen)


def _position_row(p: Position, seen_at: float) -> bytes:
    """A position row of the view: the position, and when the stream process received it (or the
    REST read that wrote it began): a push can be lost, so a row is as of then."""
    return orjson.dumps({**position_to_dict(p), "seen_at": seen_at})


def _view_order(text: Text) -> ExchangeOrder:
    return exchange_order_from_dict(orjson.loads(text))


_positions: Decoded[tuple[str, str], tuple[Position, float | None]] = Decoded(
    _view_position, VIEW_POSITIONS_MAX
)
_orders: Decoded[tuple[str, str], ExchangeOrder] = Decoded(_view_order, VIEW_ORDERS_MAX)


@dataclass(frozen=True, slots=True)
class Divergence:
    """One difference between the view and the exchange that a push should have brought."""

    kind: str  # order_missing | order_differs | order_gone | position_differs | position_gone
    key: str  # orderLinkId or SYMBOL|idx
    view: str  # what the view held (short)
    exchange: str  # what the exchange answered (short)


def _order_gist(o: ExchangeOrder | None) -> str:
    if o is None:
        return "-"
    return f"{o.status.value} {o.filled}/{o.qty} @{o.price or o.trigger_price or ''}"


def _position_gist(p: Position | None) -> str:
    if p is None or p.size <= 0:
        return "flat"
    stop = f" sl {p.stop_loss}" if p.stop_loss is not None else ""
    return f"{p.side.value if p.side else '?'} {p.size} @{p.avg_price}{stop}"


def _same_order(a: ExchangeOrder, b: ExchangeOrder) -> bool:
    return (a.status, a.qty, a.filled, a.price, a.trigger_price) == (
        b.status,
        b.qty,
        b.filled,
        b.price,
        b.trigger_price,
    )


def _same_position(a: Position | None, b: Position | None) -> bool:
    sa = a.size if a is not None else 0
    sb = b.size if b is not None else 0
    if sa == 0 and sb == 0:
        return True
    return (
        a is not None
        and b is not None
        and (a.side, a.size, a.avg_price, a.stop_loss) == (b.side, b.size, b.avg_price, b.stop_loss)
    )


def diverged(
    taken_ms: int,
    view_orders: Mapping[str, tuple[ExchangeOrder, int]],
    view_positions: Mapping[str, tuple[Position, int]],
    rest_orders: Mapping[str, ExchangeOrder],
    rest_positions: Mapping[str, Position],
) -> tuple[
    list[Divergence], dict[str, tuple[int, ExchangeOrder | None]], dict[str, tuple[int, Position | None]]
]:
    """Compare the view with a REST read that started at `taken_ms` (pure).

    Returns the divergences (differences a push should have brought), and the writes that make
    the view what the exchange answered: {key: (stamp, row or None to delete)}; each write is
    applied newer-wins, so a push that arrived after the read keeps its newer state."""
    out: list[Divergence] = []
    order_writes: dict[str, tuple[int, ExchangeOrder | None]] = {}
    position_writes: dict[str, tuple[int, Position | None]] = {}
    old = taken_ms - DIVERGENCE_GRACE_MS
    for lid, o in rest_orders.items():
        held = view_orders.get(lid)
        if held is not None and _same_order(held[0], o):
            continue
        stamp = max(o.updated_ms, 0)
        if held is not None and held[1] > stamp:
            continue  # the view holds a newer push than this read
        if o.updated_ms and o.updated_ms < old:
            kind = "order_missing" if held is None else "order_differs"
            out.append(Divergence(kind, lid, _order_gist(held[0] if held else None), _order_gist(o)))
        order_writes[lid] = (stamp, o)
    for lid, (v, stamp) in view_orders.items():
        if lid in rest_orders:
            continue
        if v.status.is_open:
            if stamp < taken_ms:
                if stamp < old:
                    out.append(Divergence("order_gone", lid, _order_gist(v), "not open"))
                order_writes[lid] = (taken_ms, None)  # its final state: looked up by REST
        elif stamp < taken_ms - FINAL_KEPT_MS:
            order_writes[lid] = (taken_ms, None)  # a final order kept long enough
    for key, p in rest_positions.items():
        held_p = view_positions.get(key)
        if held_p is not None and _same_position(held_p[0], p):
            continue
        if held_p is not None and held_p[1] > taken_ms:
            continue
        if held_p is None or held_p[1] < old:
            out.append(
                Divergence(
                    "position_differs", key, _position_gist(held_p[0] if held_p else None), _position_gist(p)
                )
            )
        position_writes[key] = (taken_ms, p)
    for key, (vp, stamp) in view_positions.items():
        if key in rest_positions or vp.size <= 0 or stamp >= taken_ms:
            continue
        if stamp < old:
            out.append(Divergence("position_gone", key, _position_gist(vp), "flat"))
        position_writes[key] = (taken_ms, None)
    return out, order_writes, position_writes


def positions_behind(fills: Mapping[str, int], position_stamps: Mapping[str, int]) -> list[str]:
    """The symbols with an execution newer than every position push of that symbol (pure): the view
    has not seen the position that fill made yet. `position_stamps` is SYMBOL|idx → stamp, rows
    deleted since included (a position that went flat has a stamp too)."""
    newest: dict[str, int] = {}
    for key, stamp in position_stamps.items():
        parsed = parse_key(key)
        if parsed is not None:
            newest[parsed[0]] = max(stamp, newest.get(parsed[0], -1))
    return sorted(symbol for symbol, ms in fills.items() if ms > newest.get(symbol, -1))


def _stop_fills(rows: Mapping[str, str]) -> dict[tuple[str, Side], int]:
    """The view's pushed stop-loss fills, SYMBOL|Side → ms, as the Snapshot holds them (pure); a
    field that does not parse is skipped (a check then looks the executions up by REST)."""
    out: dict[tuple[str, Side], int] = {}
    for field, ms in rows.items():
        symbol, _, side = field.partition("|")
        try:
            out[(symbol, Side(side))] = int(ms)
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class ViewRead:
    """A read of the view: the Snapshot, and the symbols whose latest fill the view has no position
    push for yet (`behind`). The Snapshot's rows of those symbols are as the view holds them, older
    than the fill: the monitors of those symbols must not be stepped on it."""

    snapshot: Snapshot
    behind: frozenset[str] = frozenset()


def young_behind(behind: Iterable[str], fills: Mapping[str, int], now: float, wait_s: float) -> bool:
    """Whether every behind symbol's fill is younger than `wait_s` (pure): its position push can
    still come. `fills` is SYMBOL → execution time (ms, the exchange's clock)."""
    return all(now * 1000 - fills[symbol] < wait_s * 1000 for symbol in behind)


class _Loaded(NamedTuple):
    meta: dict[str, Any]
    orders: dict[str, tuple[ExchangeOrder, int]]
    positions: dict[str, tuple[Position, int]]
    fills: dict[str, int]  # SYMBOL → latest execution pushed (ms)


class StreamView:
    """One account's stream view in Redis (its owner: every key of it is read and written here)."""

    def __init__(
        self,
        redis_client: Redis,
        *,
        prefix: str = keys.PREFIX,
        reconcile_s: float = 60.0,
        read_margin_s: float = 0.5,
    ) -> None:
        self.redis = redis_client
        self.prefix = prefix
        self.reconcile_s = reconcile_s
        self.read_margin_s = read_margin_s
        self._put = redis_client.register_script(source("view_put"))
        self._orphan_stamps: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------------------ writes

    def _write(self, rows_key: str, writes: Iterable[tuple[str, int, bytes | str]]) -> int:
        argv: list[Any] = []
        for field, stamp, row in writes:
            argv.extend((field, int(stamp), row))
        if not argv:
            return 0
        return int(self._put(keys=[rows_key, keys.view_stamps(rows_key)], args=argv))

    def apply_orders(self, account: str, orders: Iterable[ExchangeOrder]) -> int:
        """Pushed orders (ours only), newer-wins by their update time."""
        rows = [
            (o.link_id, o.updated_ms, orjson.dumps(exchange_order_to_dict(o)))
            for o in orders
            if parse_link_id(o.link_id) is not None
        ]
        return self._write(keys.view_orders(self.prefix, account), rows)

    def apply_fills(self, account: str, fills: Iterable[tuple[str, int]]) -> int:
        """Pushed executions as (symbol, execution time ms): the latest per symbol, newer-wins."""
        latest: dict[str, int] = {}
        for symbol, ms in fills:
            latest[symbol] = max(ms, latest.get(symbol, 0))
        rows = [(symbol, ms, str(ms)) for symbol, ms in latest.items()]
        return self._write(keys.view_fills(self.prefix, account), rows)

    def apply_stop_fills(self, account: str, fills: Iterable[tuple[str, Side, int]]) -> int:
        """Pushed fills of positions' own stop-losses as (symbol, side of the execution, execTime
        ms): the latest per (symbol, side), newer-wins. A check that finds one judges the close it
        made without looking the executions up by REST (`workers.lookups`)."""
        latest: dict[str, int] = {}
        for symbol, side, ms in fills:
            key = f"{symbol}|{side.value}"
            latest[key] = max(ms, latest.get(key, 0))
        rows = [(key, ms, str(ms)) for key, ms in latest.items()]
        return self._write(keys.view_stop_fills(self.prefix, account), rows)

    def apply_positions(
        self, account: str, positions: Iterable[tuple[Position, int]], *, seen_at: float
    ) -> int:
        """Pushed positions with their update time (ms), newer-wins; received at `seen_at` (this
        host's clock, which the workers share: a check compares it with when it sent a stop)."""
        rows = [
            (key_of(p.symbol, p.position_idx), stamp, _position_row(p, seen_at)) for p, stamp in positions
        ]
        return self._write(keys.view_positions(self.prefix, account), rows)

    def mark_gap(self, account: str, at: float) -> None:
        """The stream (re)subscribed at `at`: what happened before is only in REST; the view is not
        read again until a REST read that started after this reconciled it."""
        self.redis.hset(keys.view_meta(self.prefix, account), "gap_at", repr(at))

    def mark_alive(self, account: str) -> None:
        self.redis.set(keys.view_alive(self.prefix, account), "1", ex=ALIVE_TTL_S)

    def mark_down(self, account: str) -> None:
        self.redis.delete(keys.view_alive(self.prefix, account))

    # ------------------------------------------------------------------------------- reads

    def _load(self, account: str) -> _Loaded:
        ok, pk = keys.view_orders(self.prefix, account), keys.view_positions(self.prefix, account)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.view_meta(self.prefix, account))
        pipe.hgetall(ok)
        pipe.hgetall(keys.view_stamps(ok))
        pipe.hgetall(pk)
        pipe.hgetall(keys.view_stamps(pk))
        pipe.hgetall(keys.view_fills(self.prefix, account))
        meta, orows, ostamps, prows, pstamps, fills = pipe.execute()
        self._orphan_stamps = {
            **{(ok, k): int(v) for k, v in ostamps.items() if k not in orows},
            **{(pk, k): int(v) for k, v in pstamps.items() if k not in prows},
        }
        orders = {}
        for k, v in orows.items():
            orders[k] = (exchange_order_from_dict(orjson.loads(v)), int(ostamps.get(k, 0)))
        positions = {}
        for k, v in prows.items():
            positions[k] = (position_from_dict(orjson.loads(v)), int(pstamps.get(k, 0)))
        return _Loaded(
            meta,
            orders,
            positions,
            {k: int(v) for k, v in fills.items()},
        )

    def usable(self, meta: Mapping[str, str], alive: bool, now: float) -> bool:
        reconciled = float(meta.get("reconciled_at", "0") or 0)
        gap = float(meta.get("gap_at", "0") or 0)
        return alive and reconciled > gap and now - reconciled <= self.reconcile_s

    def read(
        self,
        account: str,
        *,
        now: float,
        instruments: Callable[[], Mapping[str, Instrument]],
        orders_for: Callable[[Snapshot], Iterable[str]] | None = None,
        behind_wait_s: float = 0.0,
    ) -> ViewRead | None:
        """The account from the view (no REST call), or None when the view cannot be trusted now.
        Final orders the view holds come as looked up: the core's look-ups for them are answered.

        `orders_for`: given the snapshot with its positions (and no orders yet), the orderLinkIds
        the check needs; only those orders are read (a check of a few monitors does not decode an
        account's thousands of orders). None: every order of the account. The fills are read again
        with the orders, so a fill pushed in between (its order newer than the positions read) is
        behind as well.

        `behind_wait_s`: how young the fills of symbols that are behind may be for the read to
        name them in `ViewRead.behind` rather than answer None (0: any symbol behind answers None)."""
        pk = keys.view_positions(self.prefix, account)
        fills_key = keys.view_fills(self.prefix, account)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.view_alive(self.prefix, account))
        pipe.hgetall(keys.view_meta(self.prefix, account))
        pipe.hgetall(pk)
        pipe.hgetall(keys.view_stamps(pk))
        pipe.hgetall(fills_key)
        pipe.hgetall(keys.view_stop_fills(self.prefix, account))
        alive, meta, prows, pstamps, fills, stop_rows = pipe.execute()
        if not self.usable(meta, bool(alive), now):
            return None
        position_stamps = {k: int(v) for k, v in pstamps.items()}
        fill_ms = {k: int(v) for k, v in fills.items()}
        behind = positions_behind(fill_ms, position_stamps)
        if behind and not young_behind(behind, fill_ms, now, behind_wait_s):
            log.debug("view of %s: fills on %s not in a position push yet; read by REST", account, behind)
            return None
        decoded = [_positions.get((account, k), v) for k, v in prows.items()]
        open_rows = [(p, seen) for p, seen in decoded if p.size > 0]
        base = Snapshot(
            account=account,
            # pushes take a moment: what our own latest intents did may not be in the view yet, so
            # the view does not judge them (the core waits for a read taken after an intent)
            taken_at=now - self.read_margin_s,
            # without their pushed marks (`_view_position`): the check prices each symbol from the
            # tickers (pushed by the ticker streams while fresh, else the REST cache)
            positions={(p.symbol, p.position_idx): p for p, _ in open_rows},
            open_orders={},
            instruments=instruments(),
            pushed=True,
            stop_fills=_stop_fills(stop_rows),
            position_seen_at={(p.symbol, p.position_idx): seen for p, seen in open_rows if seen is not None},
        )
        ok = keys.view_orders(self.prefix, account)
        pipe = self.redis.pipeline(transaction=False)
        if orders_for is None:
            pipe.hgetall(ok)
        else:
            wanted = sorted(set(orders_for(base)))
            if wanted:
                pipe.hmget(ok, wanted)
        pipe.hgetall(fills_key)
        *got, fills = pipe.execute()
        fill_ms = {k: int(v) for k, v in fills.items()}
        behind = positions_behind(fill_ms, position_stamps)
        if behind and not young_behind(behind, fill_ms, now, behind_wait_s):
            return None
        if orders_for is None:
            rows = list(got[0].items())
        else:
            rows = [(k, r) for k, r in zip(wanted, got[0] if got else [], strict=False) if r is not None]
        orders = [_orders.get((account, k), r) for k, r in rows]
        finals = {o.link_id: o for o in orders if not o.status.is_open}
        snap = replace(
            base,
            open_orders={o.link_id: o for o in orders if o.status.is_open},
            closed_orders=finals,
            looked_up=frozenset(finals),
        )
        return ViewRead(snap, frozenset(behind))

    # ------------------------------------------------------------------------------ reconcile

    def reconcile(self, account: str, snap: Snapshot) -> list[Divergence] | None:
        """Make the view what a whole-account REST read answered (the exchange wins; newer pushes
        stay). None when the account's stream is not up (nothing is written then)."""
        if not self.redis.exists(keys.view_alive(self.prefix, account)):
            return None
        taken_ms = int(snap.taken_at * 1000)
        meta, orders, positions, fills = self._load(account)
        rest_orders = {lid: o for lid, o in snap.open_orders.items() if parse_link_id(lid) is not None}
        rest_positions = {key_of(s, i): p for (s, i), p in snap.positions.items() if p.size > 0}
        found, order_writes, position_writes = diverged(
            taken_ms, orders, positions, rest_orders, rest_positions
        )
        if float(meta.get("reconciled_at", "0") or 0) <= float(meta.get("gap_at", "0") or 0):
            found = []  # the first read after a gap: catching up with what happened meanwhile
        self._write(
            keys.view_orders(self.prefix, account),
            [
                (lid, stamp, b"" if o is None else orjson.dumps(exchange_order_to_dict(o)))
                for lid, (stamp, o) in order_writes.items()
            ],
        )
        self._write(
            keys.view_positions(self.prefix, account),
            [
                (key, stamp, b"" if p is None else _position_row(p, snap.taken_at))
                for key, (stamp, p) in position_writes.items()
            ],
        )
        meta_key = keys.view_meta(self.prefix, account)
        pipe = self.redis.pipeline(transaction=False)
        # stamps of rows deleted long ago: no push that old can still arrive
        for (rows_key, field), stamp in self._orphan_stamps.items():
            if stamp < taken_ms - FINAL_KEPT_MS:
                pipe.hdel(keys.view_stamps(rows_key), field)
        # pushed stop-loss fills older than a close can wait to be judged
        stop_key = keys.view_stop_fills(self.prefix, account)
        held = cast("dict[str, str]", self.redis.hgetall(stop_key))
        stale = [f for f, ms in held.items() if int(ms) < taken_ms - FINAL_KEPT_MS]
        if stale:
            pipe.hdel(stop_key, *stale)
            pipe.hdel(keys.view_stamps(stop_key), *stale)
        # fills this read started after are in its positions (now in the view): settled
        settled = [symbol for symbol, ms in fills.items() if ms <= taken_ms]
        if settled:
            pipe.hdel(keys.view_fills(self.prefix, account), *settled)
            pipe.hdel(keys.view_stamps(keys.view_fills(self.prefix, account)), *settled)
        pipe.hset(meta_key, "reconciled_at", repr(snap.taken_at))
        if found:
            pipe.hincrby(meta_key, "divergences", len(found))
        pipe.execute()
        for d in found:
            log.warning(
                "stream_divergence %s %s %s: view %s, exchange %s", account, d.kind, d.key, d.view, d.exchange
            )
        return found

    def state(self, account: str) -> dict[str, Any]:
        """For /metrics: whether the account's stream is up, when REST last reconciled its view,
        the divergences found so far."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.view_alive(self.prefix, account))
        pipe.hgetall(keys.view_meta(self.prefix, account))
        alive, meta = pipe.execute()
        return {
            "up": bool(alive),
            "reconciled_at": float(meta.get("reconciled_at", 0) or 0),
            "divergences": int(meta.get("divergences", 0) or 0),
        }

    def divergences(self, account: str) -> int:
        return int(
            cast("str | None", self.redis.hget(keys.view_meta(self.prefix, account), "divergences")) or 0
        )


def stream_view(rt: Runtime) -> StreamView | None:
    """The accounts' stream views, when streams are on (TPSL_STREAMS)."""
    if not rt.settings.streams:
        return None
    return StreamView(
        rt.redis,
        prefix=rt.prefix,
        reconcile_s=rt.settings.stream_reconcile_s,
        read_margin_s=rt.settings.stream_read_margin_s,
    )
