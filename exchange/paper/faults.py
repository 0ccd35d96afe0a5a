"""Injected faults: latency, HTTP errors, retCodes (10006 with rate-limit headers), held requests
(timeouts) and dropped connections, applied to /v5 requests by endpoint.

A fault fires on a matching request with probability `error_rate`, drawn from its own
`random.Random(seed)`: the same seed and the same request sequence fire on the same requests.
`count` is how many times it fires before it expires (None: until cleared). Several faults can be
active: on one request, the latencies of every firing fault add up and the first firing fault with
a terminal effect (http_status, ret_code, timeout, drop_connection) decides the outcome.

`timeout` holds the answer for `hold_ms` (default: the server's fault_hold_s, longer than a
client's read timeout); the request IS executed first unless `execute` is false, so an order can
exist although its client never saw the answer. `drop_connection` closes the socket without an
answer; the request is NOT executed unless `execute` is true.

Stream faults name a stream as their endpoint (`/v5/private` or `/v5/public/linear`, exactly; REST
faults never touch streams and stream effects never touch REST) and are drawn per message the
server sends on a connection of that stream:
- `drop_connection`: the connection is closed abruptly (no close frame) instead of sending;
- `stall`: from then on the connection sends nothing (pushes, acks, pongs) but stays open, for
  `hold_ms` (default: until it closes);
- `lose`: the push is not sent (acks and pongs are never lost); with `error_rate` < 1 a fraction;
  with `topic` only the pushes of that topic (one message carries every row of one engine
  operation, so losing it loses all of them: a burst's fills, say);
- `latency_ms` alone: the push is sent that much later (later messages wait behind it);
- `refuse_auth`: drawn on auth requests only; the auth is refused ("Request not authorized").
A push that was lost or stalled away is gone: only a REST read recovers what it carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any

from core.errors import FixInput

RET_MESSAGES = {
    10000: "Server Timeout",
    10001: "params error",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10003: "API key is invalid.",
    10004: "error sign!",
    10006: "Too many visits. Exceeded the API Rate Limit.",
    10016: "Server error",
    110001: "order not exists or too late to cancel",
}
_TERMINAL = ("http_status", "ret_code", "timeout", "drop_connection", "stall", "lose", "refuse_auth")
STREAM_PATHS = ("/v5/private", "/v5/public/linear")
# the topics a stream fault can be limited to (the base topic, without `.linear`), by stream
STREAM_TOPICS = {
    "/v5/private": ("execution", "execution.fast", "order", "position", "wallet"),
    "/v5/public/linear": ("tickers",),
}
_STREAM_ONLY = ("stall", "lose", "refuse_auth")


@dataclass(slots=True)
class Fault:
    id: int
    endpoint: str = "*"
    latency_ms: int = 0
    error_rate: float = 1.0
    http_status: int | None = None
    ret_code: int | None = None
    ret_msg: str | None = None
    timeout: bool = False
    drop_connection: bool = False
    stall: bool = False
    lose: bool = False
    refuse_auth: bool = False
    topic: str | None = None  # a stream fault: only the pushes of this topic (None: every push)
    count: int | None = None
    seed: int = 0
    hold_ms: int | None = None
    execute: bool | None = None
    reset_after_ms: int = 200  # a 10006 fault's X-Bapi-Limit-Reset-Timestamp = now + this
    fired: int = 0
    rng: Random = field(default_factory=Random, repr=False)

    def matches(self, path: str) -> bool:
        e = self.endpoint
        if e == "*" or e == path:
            return True
        return e.endswith("*") and path.startswith(e[:-1])

    @property
    def kind(self) -> str | None:
        if self.http_status is not None:
            return "http"
        if self.ret_code is not None:
            return "ret_code"
        if self.timeout:
            return "timeout"
        if self.drop_connection:
            return "drop"
        if self.stall:
            return "stall"
        if self.lose:
            return "lose"
        if self.refuse_auth:
            return "refuse_auth"
        return None

    @property
    def on_stream(self) -> bool:
        return self.endpoint in STREAM_PATHS

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "http_status": self.http_status,
            "ret_code": self.ret_code,
            "timeout": self.timeout,
            "drop_connection": self.drop_connection,
            "stall": self.stall,
            "lose": self.lose,
            "refuse_auth": self.refuse_auth,
            "topic": self.topic,
            "count": self.count,
            "seed": self.seed,
            "hold_ms": self.hold_ms,
            "execute": self.execute,
            "fired": self.fired,
        }


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What to do to one request."""

    latency_s: float = 0.0
    kind: str | None = None  # None (latency only) | http | ret_code | timeout | drop
    http_status: int = 0
    ret_code: int = 0
    ret_msg: str = ""
    hold_s: float = 0.0
    execute: bool = False
    reset_after_ms: int = 200


class FaultBook:
    def __init__(self, hold_s: float = 30.0) -> None:
        self.hold_s = hold_s
        self._faults: list[Fault] = []
        self._next_id = 0

    def __bool__(self) -> bool:
        return bool(self._faults)

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        return [f.public() for f in self._faults]

    def add(self, spec: dict[str, Any]) -> Fault:
        """Validate a fault spec (the JSON of POST /paper/faults) and activate it."""
        if not isinstance(spec, dict):
            raise FixInput("fault", "must be a JSON object")
        known = {
            "endpoint",
            "latency_ms",
            "error_rate",
            "http_status",
            "ret_code",
            "ret_msg",
            "timeout",
            "drop_connection",
            "stall",
            "lose",
            "refuse_auth",
            "topic",
            "count",
            "seed",
            "hold_ms",
            "execute",
            "reset_after_ms",
        }
        for name in spec:
            if name not in known:
                raise FixInput(name, "unknown fault field")
        endpoint = spec.get("endpoint", "*")
        if not isinstance(endpoint, str) or not (endpoint == "*" or endpoint.startswith("/v5/")):
            raise FixInput("endpoint", 'must be "*" or a /v5/ path (a trailing * matches a prefix)')
        self._next_id += 1
        seed = _int(spec, "seed", 0)
        fault = Fault(
            id=self._next_id,
            endpoint=endpoint,
            latency_ms=_int(spec, "latency_ms", 0, lo=0),
            error_rate=_rate(spec),
            http_status=_opt_int(spec, "http_status", lo=100, hi=599),
            ret_code=_opt_int(spec, "ret_code", lo=1),
            ret_msg=_opt_str(spec, "ret_msg"),
            timeout=_bool(spec, "timeout"),
            drop_connection=_bool(spec, "drop_connection"),
            stall=_bool(spec, "stall"),
            lose=_bool(spec, "lose"),
            refuse_auth=_bool(spec, "refuse_auth"),
            topic=_opt_str(spec, "topic"),
            count=_opt_int(spec, "count", lo=1),
            seed=seed,
            hold_ms=_opt_int(spec, "hold_ms", lo=0),
            execute=_bool(spec, "execute") if "execute" in spec else None,
            reset_after_ms=_int(spec, "reset_after_ms", 200, lo=1),
            rng=Random(seed),
        )
        terminal = [name for name in _TERMINAL if spec.get(name) not in (None, False)]
        if len(terminal) > 1:
            raise FixInput(terminal[1], f"a fault has one terminal effect; {terminal[0]} is set already")
        if not terminal and fault.latency_ms == 0:
            raise FixInput(
                "fault",
                "needs an effect: latency_ms, http_status, ret_code, timeout, drop_connection, "
                "stall, lose or refuse_auth",
            )
        if fault.on_stream:
            if terminal and terminal[0] not in ("drop_connection", *_STREAM_ONLY):
                raise FixInput(terminal[0], "a stream fault drops, stalls, loses, delays or refuses auth")
        elif terminal and terminal[0] in _STREAM_ONLY:
            raise FixInput("endpoint", f"{terminal[0]} needs a stream endpoint: {' or '.join(STREAM_PATHS)}")
        if fault.topic is not None:
            topics = STREAM_TOPICS.get(fault.endpoint, ())
            if not topics:
                raise FixInput("topic", f"needs a stream endpoint: {' or '.join(STREAM_PATHS)}")
            if fault.topic not in topics:
                raise FixInput("topic", f"must be one of {', '.join(topics)} on {fault.endpoint}")
        self._faults.append(fault)
        return fault

    def pick(self, path: str) -> FaultAction | None:
        """Draw every active fault for this request; None when none fires."""
        latency = 0
        chosen: Fault | None = None
        fired_any = False
        for fault in self._faults:
            if fault.on_stream or not fault.matches(path):
                continue
            if fault.error_rate < 1.0 and fault.rng.random() >= fault.error_rate:
                continue
            kind = fault.kind
            if kind is not None and chosen is not None:
                continue  # an earlier fault already decides the outcome; this one does not fire
            fired_any = True
            fault.fired += 1
            latency += fault.latency_ms
            if kind is not None:
                chosen = fault
        self._faults = [f for f in self._faults if f.count is None or f.fired < f.count]
        if not fired_any:
            return None
        if chosen is None:
            return FaultAction(latency_s=latency / 1000)
        kind = chosen.kind
        code = chosen.ret_code or 0
        return FaultAction(
            latency_s=latency / 1000,
            kind=kind,
            http_status=chosen.http_status or 0,
            ret_code=code,
            ret_msg=chosen.ret_msg or RET_MESSAGES.get(code, "paper exchange fault"),
            hold_s=(chosen.hold_ms / 1000) if chosen.hold_ms is not None else self.hold_s,
            execute=chosen.execute if chosen.execute is not None else kind == "timeout",
            reset_after_ms=chosen.reset_after_ms,
        )

    def pick_stream(
        self, path: str, event: str, topic: str | None = None
    ) -> tuple[str | None, float, float | None]:
        """Draw the faults of one stream for one outgoing message (`event` "push" or "reply"; a
        push's base `topic`) or one auth request ("auth"): (effect, latency_s, stall_s). effect:
        None, "drop", "stall", "lose" or "refuse_auth"; stall_s None = until the connection closes."""
        if not self._faults:
            return None, 0.0, None
        latency = 0
        chosen: Fault | None = None
        for fault in self._faults:
            if fault.endpoint != path or (fault.topic is not None and fault.topic != topic):
                continue
            kind = fault.kind
            if event == "auth":
                if kind != "refuse_auth":
                    continue
            elif kind == "refuse_auth" or (event != "push" and kind in (None, "lose")):
                continue
            if kind is not None and chosen is not None:
                continue
            if fault.error_rate < 1.0 and fault.rng.random() >= fault.error_rate:
                continue
            fault.fired += 1
            if kind is None:
                latency += fault.latency_ms
            else:
                chosen = fault
        if chosen is None and latency == 0:
            return None, 0.0, None
        self._faults = [f for f in self._faults if f.count is None or f.fired < f.count]
        if chosen is None:
            return None, latency / 1000, None
        stall_s = chosen.hold_ms / 1000 if chosen.hold_ms is not None else None
        return chosen.kind, latency / 1000, stall_s


def _int(spec: dict[str, Any], name: str, default: int, *, lo: int | None = None) -> int:
    v = spec.get(name, default)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        raise FixInput(name, "must be an integer")
    if lo is not None and v < lo:
        raise FixInput(name, f"must be >= {lo}")
    return v


def _opt_int(spec: dict[str, Any], name: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
    v = spec.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise FixInput(name, "must be an integer")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise FixInput(name, f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}")
    return v


def _opt_str(spec: dict[str, Any], name: str) -> str | None:
    v = spec.get(name)
    if v is not None and not isinstance(v, str):
        raise FixInput(name, "must be a string")
    return v


def _bool(spec: dict[str, Any], name: str) -> bool:
    v = spec.get(name, False)
    if not isinstance(v, bool):
        raise FixInput(name, "must be true or false")
    return v


def _rate(spec: dict[str, Any]) -> float:
    v = spec.get("error_rate", 1.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise FixInput("error_rate", "must be a number between 0 and 1")
    return float(v)
