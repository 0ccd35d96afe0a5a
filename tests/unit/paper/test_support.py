"""The paper exchange's supporting parts: instruments, feeds, faults, rate limits, parameters,
signature verification, indexes. No I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import FixInput
from exchange.paper.auth import H_KEY, H_RECV, H_SIGN, H_TS, signature, verify
from exchange.paper.errors import PaperError
from exchange.paper.faults import FaultBook
from exchange.paper.feeds import RandomWalk, parse_replay_csv
from exchange.paper.indexes import SeqIndex
from exchange.paper.instruments import REAL_INSTRUMENTS, default_instruments, synthetic_instruments
from exchange.paper.params import Params, order_request, parse_query
from exchange.paper.ratelimit import UNLIMITED, RateLimiter
from exchange.paper.records import PaperAccount

D = Decimal

# ------------------------------------------------------------------------------ instruments


def test_real_symbols_have_real_looking_filters() -> None:
    symbols = {s.symbol: s for s in REAL_INSTRUMENTS}
    assert len(symbols) >= 10
    for name in (
        "BTCUSDT",
        "ETHUSDT",
        "SOLUSDT",
        "XRPUSDT",
        "DOGEUSDT",
        "ADAUSDT",
        "LINKUSDT",
        "AVAXUSDT",
        "LTCUSDT",
        "BNBUSDT",
    ):
        assert name in symbols
    btc = symbols["BTCUSDT"]
    assert (btc.tick_size, btc.qty_step, btc.min_qty, btc.max_qty) == (
        D("0.10"),
        D("0.001"),
        D("0.001"),
        D(1190),
    )
    eth = symbols["ETHUSDT"]
    assert (eth.tick_size, eth.qty_step) == (D("0.01"), D("0.01"))
    for spec in REAL_INSTRUMENTS:
        assert spec.start_price % spec.tick_size == 0 and spec.min_qty % spec.qty_step == 0


def test_synthetic_symbols_for_load_tests() -> None:
    syn = list(synthetic_instruments(10_000))
    assert len({s.symbol for s in syn}) == 10_000
    assert syn[0].symbol == "SYN00001USDT" and syn[-1].symbol == "SYN10000USDT"
    assert next(iter(synthetic_instruments(3))).symbol == "SYN0001USDT"
    assert all(s.start_price % s.tick_size == 0 and s.start_price * s.min_qty < 5 for s in syn[:100])
    assert len(default_instruments(5)) == len(REAL_INSTRUMENTS) + 5
    with pytest.raises(ValueError, match="extra_symbols"):
        list(synthetic_instruments(-1))


# ------------------------------------------------------------------------------------ feeds


def test_random_walk_is_deterministic_and_on_tick() -> None:
    def path(seed: int) -> list[dict[str, Decimal]]:
        walk = RandomWalk(
            {"BTCUSDT": D(65000), "XRPUSDT": D("0.55")},
            {"BTCUSDT": D("0.10"), "XRPUSDT": D("0.0001")},
            seed=seed,
            volatility=0.01,
        )
        return [walk.step() for _ in range(50)]

    a, b, c = path(1), path(1), path(2)
    assert a == b and a != c
    for step in a:
        assert step["BTCUSDT"] % D("0.10") == 0 and step["XRPUSDT"] % D("0.0001") == 0
        assert step["XRPUSDT"] > 0
    with pytest.raises(FixInput, match="volatility"):
        RandomWalk({"BTCUSDT": D(1)}, {"BTCUSDT": D("0.1")}, volatility=2)


def test_replay_csv() -> None:
    steps = parse_replay_csv(
        "ts,symbol,price\n1000,BTCUSDT,65000\n1000,ETHUSDT,3500\n"
        "1500,BTCUSDT,65100.5\n# note\n1200,BTCUSDT,64900\n",
        {"BTCUSDT", "ETHUSDT"},
    )
    assert [(s.offset_ms, s.prices) for s in steps] == [
        (0, {"BTCUSDT": D(65000), "ETHUSDT": D(3500)}),
        (200, {"BTCUSDT": D(64900)}),
        (500, {"BTCUSDT": D("65100.5")}),
    ]
    with pytest.raises(FixInput, match="csv line 2") as err:
        parse_replay_csv("ts,symbol,price\n1,NOPE,1\n", {"BTCUSDT"})
    assert "unknown symbol" in str(err.value)
    with pytest.raises(FixInput, match="csv line 1"):
        parse_replay_csv("1,BTCUSDT\n", {"BTCUSDT"})
    with pytest.raises(FixInput, match="csv line 1"):
        parse_replay_csv("1,BTCUSDT,-5\n", {"BTCUSDT"})


# ----------------------------------------------------------------------------------- faults


def test_fault_count_expires() -> None:
    book = FaultBook(hold_s=0.5)
    book.add({"endpoint": "/v5/order/create", "http_status": 503, "count": 2})
    assert book.pick("/v5/position/list") is None
    assert book.pick("/v5/order/create").http_status == 503
    assert book.pick("/v5/order/create").kind == "http"
    assert book.pick("/v5/order/create") is None
    assert not book


def test_fault_error_rate_is_deterministic_for_a_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        book = FaultBook()
        book.add({"endpoint": "*", "ret_code": 10016, "error_rate": 0.5, "seed": seed})
        return [book.pick("/v5/order/realtime") is not None for _ in range(100)]

    assert pattern(3) == pattern(3)
    assert pattern(3) != pattern(4)
    assert 20 < sum(pattern(3)) < 80


def test_faults_combine_latency_and_the_first_terminal_effect_wins() -> None:
    book = FaultBook(hold_s=7)
    book.add({"endpoint": "/v5/order/*", "latency_ms": 30})
    book.add({"endpoint": "*", "timeout": True})
    book.add({"endpoint": "*", "drop_connection": True, "latency_ms": 5})
    action = book.pick("/v5/order/create")
    assert (action.kind, action.latency_s, action.hold_s, action.execute) == ("timeout", 0.03, 7, True)
    assert book.pick("/v5/market/time").kind == "timeout"  # the prefix fault does not match


def test_fault_spec_validation_names_the_field() -> None:
    book = FaultBook()
    cases = [
        ({"endpoint": "v5/x", "http_status": 500}, "endpoint"),
        ({"error_rate": 2, "http_status": 500}, "error_rate"),
        ({"http_status": 99}, "http_status"),
        ({"count": 0, "http_status": 500}, "count"),
        ({"http_status": 500, "ret_code": 10006}, "ret_code"),
        ({"colour": "red"}, "colour"),
        ({}, "fault"),
    ]
    for spec, field in cases:
        with pytest.raises(FixInput) as err:
            book.add(spec)
        assert err.value.field == field, spec


# ------------------------------------------------------------------------------- rate limits


def test_rolling_window_rate_limit() -> None:
    rl = RateLimiter()
    for i in range(10):
        q = rl.take("k", "/v5/order/create", 1000 + i)
        assert q.granted == 1 and q.remaining == 9 - i
    q = rl.take("k", "/v5/order/create", 1500)
    assert (q.granted, q.remaining, q.reset_ms) == (0, 0, 2000)
    assert rl.take("other", "/v5/order/create", 1500).granted == 1  # per account
    assert rl.take("k", "/v5/order/amend", 1500).granted == 1  # per endpoint
    assert rl.take("k", "/v5/order/create", 2000).granted == 1  # the first one left the window
    q = rl.take("k", "/v5/order/create", 2000)
    assert q.granted == 0 and q.reset_ms >= 2000


def test_batch_items_count_one_unit_each() -> None:
    rl = RateLimiter()
    q = rl.take("k", "/v5/order/create-batch", 0, units=15)
    assert (q.granted, q.remaining) == (10, 0)
    assert rl.take("k", "/v5/order/create", 0).granted == 1  # a separate pool


def test_rate_limits_switched_off_and_configured() -> None:
    rl = RateLimiter(enabled=False)
    assert all(rl.take("k", "/v5/order/create", 0).granted for _ in range(100))
    # …and the headers say so: a client pacing itself by them is not held to the nominal 10/s
    q = rl.take("k", "/v5/order/create", 0)
    assert (q.limit, q.remaining) == (UNLIMITED, UNLIMITED)
    rl = RateLimiter({"/v5/position/list": 2})
    assert [rl.take("k", "/v5/position/list", 0).granted for _ in range(3)] == [1, 1, 0]
    with pytest.raises(FixInput):
        RateLimiter({"/v5/position/list": 0})


# ------------------------------------------------------------------------------- parameters


def test_parse_query_and_typed_params() -> None:
    q = parse_query(b"category=linear&symbol=BTCUSDT&reduceOnly=True&limit=5&cursor=ab%3D")
    assert q == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "reduceOnly": "True",
        "limit": "5",
        "cursor": "ab=",
    }
    p = Params(q)
    assert p.flag("reduceOnly") is True and p.limit(20, 50) == 5
    with pytest.raises(PaperError, match="limit"):
        Params({"limit": "51"}).limit(20, 50)
    with pytest.raises(PaperError, match="reduceOnly"):
        Params({"reduceOnly": "yes"}).flag("reduceOnly")


def test_order_request_accepts_numbers_and_strings_and_names_bad_fields() -> None:
    req = order_request(
        Params(
            {
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": 0.1,
                "price": "60000",
                "positionIdx": "0",
                "triggerPrice": 61000,
                "triggerDirection": "1",
                "orderLinkId": "tg-1_a",
            }
        )
    )
    assert (req.qty, req.price, req.trigger_price, req.trigger_direction) == (D("0.1"), D(60000), D(61000), 1)
    bad = [
        ({"side": "Long"}, "params error: side invalid"),
        ({"qty": "abc"}, "params error: qty invalid"),
        ({"orderType": "Stop"}, "params error: orderType invalid"),
        ({"orderLinkId": "x" * 37}, "orderLinkId"),
        ({"orderLinkId": "a b"}, "orderLinkId"),
        ({"triggerPrice": "61000"}, "triggerDirection"),
        ({"takeProfit": "70000"}, "takeProfit"),
        ({"stopLoss": "59000", "tpslMode": "Partial"}, "tpslMode"),
        ({"stopLoss": "59000", "slOrderType": "Limit"}, "slOrderType"),
        ({"stopLoss": "59000", "reduceOnly": True}, "stopLoss"),
        ({"stopLoss": "59000", "slTriggerBy": "Nowhere"}, "slTriggerBy"),
        ({"timeInForce": "GTD"}, "timeInForce"),
    ]
    base = {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.1", "price": "60000"}
    for change, message in bad:
        with pytest.raises(PaperError) as err:
            order_request(Params({**base, **change}))
        assert err.value.code == 10001 and message in err.value.message, change


# ------------------------------------------------------------------------------- signatures


def _acct() -> PaperAccount:
    return PaperAccount(id="a", api_key="KEY123456", api_secret="SECRET-VALUE-XYZ")


def _headers(
    ts: int, payload: bytes, secret: str = "SECRET-VALUE-XYZ", rw: str = "5000"
) -> dict[bytes, bytes]:
    sign = signature(secret, str(ts), "KEY123456", rw, payload)
    return {H_KEY: b"KEY123456", H_TS: str(ts).encode(), H_RECV: rw.encode(), H_SIGN: sign.encode()}


def test_signature_verification() -> None:
    acct = _acct()
    lookup = {"KEY123456": acct}.get
    now = 1_700_000_000_000
    payload = b"symbol=BTCUSDT&category=linear"  # unsorted: signed as sent
    assert verify(_headers(now, payload), payload, now, lookup) is acct
    assert verify(_headers(now - 5000, payload), payload, now, lookup) is acct  # window edge
    assert verify(_headers(now + 999, payload), payload, now, lookup) is acct
    for ts in (now - 5001, now + 1000):
        with pytest.raises(PaperError) as err:
            verify(_headers(ts, payload), payload, now, lookup)
        assert err.value.code == 10002 and f"req_timestamp[{ts}]" in err.value.message
    with pytest.raises(PaperError) as err:
        verify(_headers(now, payload, secret="WRONG"), payload, now, lookup)
    assert err.value.code == 10004 and err.value.message.startswith("error sign! origin_string[")
    assert "SECRET" not in err.value.message and "KEY123456" not in err.value.message
    with pytest.raises(PaperError) as err:
        verify(_headers(now, payload), b"category=linear&symbol=BTCUSDT", now, lookup)  # re-sorted
    assert err.value.code == 10004
    with pytest.raises(PaperError) as err:
        verify({**_headers(now, payload), H_KEY: b"OTHER"}, payload, now, lookup)
    assert (err.value.code, err.value.message) == (10003, "API key is invalid.")
    missing = _headers(now, payload)
    del missing[H_SIGN]
    with pytest.raises(PaperError) as err:
        verify(missing, payload, now, lookup)
    assert err.value.http_status == 401


def test_repr_of_an_account_hides_the_key_and_secret() -> None:
    text = repr(_acct())
    assert "SECRET" not in text and "KEY123456" not in text


# ---------------------------------------------------------------------------------- indexes


def test_seq_index_newest_first_with_before() -> None:
    idx: SeqIndex[str] = SeqIndex()
    for seq in (1, 3, 5, 4, 2):
        idx.add(seq, f"o{seq}")
    idx.remove(3)
    idx.remove(99)
    assert list(idx.newest_first()) == ["o5", "o4", "o2", "o1"]
    assert list(idx.newest_first(4)) == ["o2", "o1"]
    assert len(idx) == 4 and 3 not in idx
