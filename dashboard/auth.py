"""Bearer-token access to the dashboard's data, decided by a dependency of the protected routers
(the API but /api/health, the page's fragments under /ui/, /metrics) and nothing else: no path is
looked at, so a path prefix (`root_path`, a mount) or a crafted `Host` cannot move a route out of
its protection. The page shell (`/`), its static files and the OpenAPI docs carry no data.

The dashboard always has a token (fail closed): `TPSL_DASHBOARD_TOKEN`, or one generated at start-up
that `tpsl web` prints once on its terminal. The comparison is constant-time
(`hmac.compare_digest` over bytes); the token is never logged, echoed or put in the page.
"""

from __future__ import annotations

import hmac
import secrets

from config.logging import register_secret
from readmodel.errors import ApiError

MIN_TOKEN_CHARS = 16


def generate_token() -> str:
    return secrets.token_urlsafe(24)


class TokenGuard:
    """`TokenGuard(token).check(authorization_header)` raises ApiError(401) when refused."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ValueError("the dashboard needs a token")
        register_secret(token)
        self._token = token.encode()

    def __repr__(self) -> str:
        return "TokenGuard(token='***')"

    def allows(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self._token)

    def check(self, authorization: str | None) -> None:
        if not authorization:
            raise ApiError(
                401,
                "unauthorized",
                "this dashboard needs a token: send Authorization: Bearer <token>",
                None,
                {"WWW-Authenticate": "Bearer"},
            )
        if not self.allows(authorization):
            raise ApiError(
                401,
                "unauthorized",
                "the token was refused",
                None,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
