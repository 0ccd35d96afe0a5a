"""Bearer-token access to the dashboard's data.

With `TPSL_DASHBOARD_TOKEN` set, every `/api/` route but `/api/health`, the page's data fragments
under `/ui/` and `/metrics` need `Authorization: Bearer <token>`. The page shell (`/`), its static
files and the OpenAPI docs carry no data and stay open. Without a token everything is open (bind
to localhost, or put the dashboard behind a proxy that authenticates).

The comparison is constant-time (`hmac.compare_digest` over bytes); the token is never logged,
echoed or put in the page.
"""

from __future__ import annotations

import hmac

from dashboard.errors import ApiError

OPEN_PATHS = frozenset({"/api/health"})
PROTECTED_PREFIXES = ("/api/", "/ui/", "/metrics")


class TokenGuard:
    """`TokenGuard(token).check(path, authorization_header)` raises ApiError(401) when refused."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def __repr__(self) -> str:
        return f"TokenGuard(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._token is not None

    @staticmethod
    def protects(path: str) -> bool:
        if path in OPEN_PATHS:
            return False
        return path == "/metrics" or path.startswith(PROTECTED_PREFIXES)

    def allows(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self._token)

    def check(self, path: str, authorization: str | None) -> None:
        if self._token is None or not self.protects(path):
            return
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
