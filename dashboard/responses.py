"""The JSON response of every API route: orjson, Decimals written as strings."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from persistence.jsonable import dumps_bytes as dumps


class JSONBytes(Response):
    """`JSONBytes(content)`: serialised with orjson (fast; Decimal → str; sets/tuples → lists)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
