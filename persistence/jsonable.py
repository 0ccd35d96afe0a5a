"""The one JSON convention of the product: orjson, Decimals written as strings (`str(Decimal)`, exponent
kept), sets and tuples as lists. The JSON columns, the Redis buffer of persistence, the dashboard's
cache and the API's responses all encode through here; `core.codec` writes its dicts by the same rule
(a Decimal is its `str`), so a stored monitor reads back the same whichever encoded it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from persistence.records import BadRecord


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default).decode()


def dumps_bytes(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


loads = orjson.loads


def jsonable(field: str, value: Any) -> dict[str, Any]:
    """`value` (a mapping) as plain JSON data: Decimals become strings; anything else that JSON
    cannot hold is a BadRecord naming `field`."""
    if not hasattr(value, "items"):
        raise BadRecord(field, f"must be a JSON object (dict), got {type(value).__name__}")
    try:
        return orjson.loads(orjson.dumps(dict(value), default=_default))
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise BadRecord(field, f"is not JSON-able: {exc}") from None
