"""Codec round trips: exact values and exponents, through real JSON text."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from core import codec
from core.codec import CodecError
from core.errors import FixInput, InternalError
from core.models import (
    BreakevenState,
    Event,
    EventKind,
    Instrument,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    Phase,
    Plan,
    Side,
    Tier,
)
from tests.unit.core import strategies as s
from tests.unit.core.test_plan_parse import EXPECTED

D = Decimal


def exact(value: Any) -> Any:
    """A structure equal only when every value, type and Decimal exponent is the same."""
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, bool | int | str | type(None)):
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", value.hex())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple(exact(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, Mapping):
        return ("map", tuple((exact(k), exact(v)) for k, v in value.items()))
    if isinstance(value, frozenset):
        return ("frozenset", frozenset(exact(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(exact(v) for v in value))
    if isinstance(value, list):
        return ("list", tuple(exact(v) for v in value))
    raise TypeError(type(value))


def through_json(d: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(d)
    assert orjson.loads(orjson.dumps(d)) == json.loads(text)  # both encoders take it as it is
    return json.loads(text)


# ------------------------------------------------------------------------------- round-trip props


@settings(max_examples=100)
@given(s.monitors())
def test_monitor_round_trip(monitor: Monitor) -> None:
    d = codec.monitor_to_dict(monitor)
    assert d["v"] == 1
    back = codec.monitor_from_dict(through_json(d))
    assert back == monitor
    assert exact(back) == exact(monitor)


@settings(max_examples=100)
@given(s.plans())
def test_plan_round_trip(plan: Plan) -> None:
    back = codec.plan_from_dict(through_json(codec.plan_to_dict(plan)))
    assert exact(back) == exact(plan)


@settings(max_examples=100)
@given(s.events())
def test_event_round_trip(event: Event) -> None:
    d = codec.event_to_dict(event)
    assert d["critical"] is event.kind.critical
    back = codec.event_from_dict(through_json(d))
    assert exact(back) == exact(event)
    assert type(back.payload) is dict


@settings(max_examples=100)
@given(s.instruments())
def test_instrument_round_trip(inst: Instrument) -> None:
    back = codec.instrument_from_dict(through_json(codec.instrument_to_dict(inst)))
    assert exact(back) == exact(inst)


# ------------------------------------------------------------------------------------ the shapes


def test_decimals_keep_value_and_exponent() -> None:
    plan = dataclasses.replace(
        EXPECTED, stop_loss=D("5.8E+4"), fee_buffer=D("0.00080"), take_profits=EXPECTED.take_profits
    )
    d = codec.plan_to_dict(plan)
    assert d["stop_loss"] == "5.8E+4"
    assert d["fee_buffer"] == "0.00080"
    assert d["entries"][0] == {"price": "60000", "qty": "0.010"}
    back = codec.plan_from_dict(d)
    assert str(back.stop_loss) == "5.8E+4"
    assert str(back.fee_buffer) == "0.00080"
    assert str(back.entries[0].qty) == "0.010"


def test_plan_dict_is_the_request_shape() -> None:
    d = codec.plan_to_dict(EXPECTED)
    assert d == {
        "symbol": "BTCUSDT",
        "side": "Buy",
        "preset": "conservative",
        "entries": [
            {"price": "60000", "qty": "0.010"},
            {"price": "59500", "qty": "0.010"},
            {"price": "59000", "qty": "0.010"},
        ],
        "take_profits": [
            {"price": "62000", "fraction": "0.85"},
            {"price": "63000", "fraction": "0.05"},
            {"price": "64000", "fraction": "0.05"},
            {"price": "65000", "fraction": "0.05"},
        ],
        "stop_loss": "58000",
        "breakeven_after": 1,
        "mirror": True,
        "adopt": False,
        "position_idx": 0,
        "fee_buffer": "0.0008",
        "entry_time_limit_s": None,
    }
    market = dataclasses.replace(EXPECTED, entries=(dataclasses.replace(EXPECTED.entries[0], price=None),))
    assert codec.plan_to_dict(market)["entries"] == [{"type": "market", "qty": "0.010"}]
    # the request's single-object market entry decodes too
    assert (
        codec.plan_from_dict({**codec.plan_to_dict(market), "entries": {"type": "market", "qty": "0.010"}})
        == market
    )


def sample_monitor() -> Monitor:
    order = OwnedOrder(
        role=OrderRole.TP,
        level=2,
        generation=1,
        link_id="tg0123456789-TP2-1",
        side=Side.SELL,
        qty=D("0.0015"),
        price=D("63000.0"),
        filled=D("0.0005"),
        status=OrderStatus.OPEN,
        changed_at=1700000000.25,
    )
    return Monitor(
        id="0123456789",
        account="main",
        plan=EXPECTED,
        phase=Phase.PROFIT_TAKING,
        orders=(order,),
        position_size=D("0.0255"),
        avg_entry=D("59500.00"),
        built_qty=D("0.030"),
        stop_price=D("59547.6"),
        breakeven=BreakevenState.PENDING,
        tp_hits=(1,),
        tier=Tier.CRITICAL,
        version=7,
    )


def test_monitor_dict_shape() -> None:
    d = codec.monitor_to_dict(sample_monitor())
    assert d["v"] == 1
    assert d["phase"] == "profit_taking"
    assert d["tier"] == "critical"
    assert d["breakeven"] == "pending"
    assert d["tp_hits"] == [1]
    assert d["closed_reason"] is None
    assert d["orders"][0]["role"] == "TP"
    assert d["orders"][0]["qty"] == "0.0015"
    assert d["orders"][0]["trigger_price"] is None
    assert set(d) == {f.name for f in dataclasses.fields(Monitor)} | {"v"}
    assert set(d["orders"][0]) == {f.name for f in dataclasses.fields(OwnedOrder)}


def test_event_critical_is_derived_out_and_ignored_in() -> None:
    event = Event("e1", "0123456789", "main", EventKind.TP_HIT, 1.5, 3, {"level": 1, "qty": "0.025"})
    d = codec.event_to_dict(event)
    assert d["critical"] is True
    assert d["kind"] == "tp_hit"
    assert codec.event_from_dict({**d, "critical": False}).critical is True
    assert (
        codec.event_to_dict(dataclasses.replace(event, kind=EventKind.POSITION_UPDATE))["critical"] is False
    )


# ---------------------------------------------------------------------------------------- errors


def test_unknown_monitor_version_is_refused() -> None:
    d = codec.monitor_to_dict(sample_monitor())
    for version in (2, 0, None, "1"):
        with pytest.raises(CodecError) as err:
            codec.monitor_from_dict({**d, "v": version})
        assert err.value.field == "v"
        assert f"unknown monitor schema version {version!r}" in err.value.problem
        assert "reads version 1" in err.value.problem
    without = dict(d)
    del without["v"]
    with pytest.raises(CodecError):
        codec.monitor_from_dict(without)


def test_malformed_dicts_raise_codec_errors() -> None:
    d = codec.monitor_to_dict(sample_monitor())
    broken = {**d, "phase": "sleeping"}
    with pytest.raises(CodecError) as err:
        codec.monitor_from_dict(broken)
    assert "'sleeping'" in err.value.problem
    assert err.value.field == "monitor '0123456789'"
    missing = dict(d)
    del missing["stop_price"]
    with pytest.raises(CodecError, match="stop_price"):
        codec.monitor_from_dict(missing)
    with pytest.raises(CodecError):
        codec.monitor_from_dict({**d, "position_size": "lots"})
    with pytest.raises(CodecError):
        codec.event_from_dict({"id": "x"})
    with pytest.raises(CodecError):
        codec.plan_from_dict({"symbol": "BTCUSDT"})
    # corrupt stored state is a bug for the operator, not a typo for a person to fix
    assert issubclass(CodecError, InternalError) and not issubclass(CodecError, FixInput)


@pytest.mark.parametrize(
    ("encode", "value", "extra"),
    [
        (codec.plan_to_dict, EXPECTED, set()),
        (codec.monitor_to_dict, sample_monitor(), {"v"}),
        (codec.owned_order_to_dict, sample_monitor().orders[0], set()),
        (codec.event_to_dict, Event("e", "m", "a", EventKind.SL_HIT, 0.0, 0), {"critical"}),
        (codec.instrument_to_dict, Instrument("X", D(1), D(1), D(1), D(1)), set()),
    ],
)
def test_every_field_is_encoded(encode: Any, value: Any, extra: set[str]) -> None:
    """A field added to a model without the codec learning it fails here, not in production."""
    assert set(encode(value)) == {f.name for f in dataclasses.fields(value)} | extra
