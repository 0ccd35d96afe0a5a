"""The dashboard's outer wall, one pure ASGI middleware in front of every route (the page, the API,
/metrics, /docs, the static files):

- **Host allow-list**: a request whose `Host` is not a loopback name (`localhost`, `127.0.0.1`,
  `::1`) or one of `TPSL_ALLOWED_HOSTS` is refused (400 `bad_host`). A DNS-rebinding page reaches
  the server with its own host name, so it is turned away before any route runs.
- **Same-origin writes**: a state-changing request (anything but GET, HEAD, OPTIONS) is refused
  (403 `cross_site`) when its `Sec-Fetch-Site` says it comes from another site, or its `Origin` is
  not this server's own origin. A browser sends both on a cross-site request; curl and the CLI send
  neither and pass.
- **Bounded bodies**: a `Content-Length` over the cap is refused before a byte is read (413), and the
  body is counted as it streams, so a chunked body is cut off at the cap too.
- **Browser hardening** on every answer: Content-Security-Policy (no script but this server's own
  files, no framing), X-Frame-Options DENY, Referrer-Policy no-referrer, X-Content-Type-Options
  nosniff.

Authentication is not decided here: it is a dependency of the protected routers (dashboard/auth.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from dashboard.errors import error_body
from persistence.jsonable import dumps_bytes as dumps
from readmodel.errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI's page starts itself with an inline script (FastAPI's get_swagger_ui_html)
CSP_DOCS = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
HARDENING = (
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


def host_name(host_header: str) -> str:
    """The host of a `Host` header, without its port, lower-case ("[::1]:8000" → "::1")."""
    h = host_header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h
    if h.count(":") == 1:
        return h.split(":", 1)[0]
    return h


def parse_allowed_hosts(value: str | Iterable[str] | None) -> frozenset[str]:
    """Loopback names plus the given ones (a comma-separated string or a list); lower-case, no port."""
    if value is None:
        extra: Iterable[str] = ()
    elif isinstance(value, str):
        extra = value.split(",")
    else:
        extra = value
    return LOOPBACK_HOSTS | {host_name(h) for h in extra if h.strip()}


def _headers(scope: Scope) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for k, v in scope.get("headers") or ():
        out.setdefault(k.lower(), v)
    return out


class _BodyTooLarge(ApiError):
    def __init__(self, cap: int) -> None:
        super().__init__(413, "too_large", f"the request body is over {cap // 1024} KiB")


class RequestGuard:
    """`RequestGuard(app, allowed_hosts=…, max_body=…)` wraps an ASGI app (see the module doc)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], max_body: int) -> None:
        self.app = app
        self.allowed_hosts = frozenset(allowed_hosts)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, refusal, scope)
            return
        await self.app(scope, self._capped(receive), _hardened(send, scope))

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> ApiError | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host or host_name(host) not in self.allowed_hosts:
            return ApiError(
                400,
                "bad_host",
                "this host name is not served here: add it to TPSL_ALLOWED_HOSTS",
                "Host",
            )
        if scope.get("method", "GET") not in SAFE_METHODS:
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
            if site and site not in SAME_SITE_FETCH:
                return ApiError(403, "cross_site", "a request from another site cannot change anything")
            origin = headers.get(b"origin")
            if origin is not None and not _same_origin(origin.decode("latin-1"), host):
                return ApiError(403, "cross_site", "a request from another origin cannot change anything")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return ApiError(400, "bad_request", "Content-Length is not a number", "Content-Length")
            if n > self.max_body:
                return _BodyTooLarge(self.max_body)
        return None

    def _capped(self, receive: Receive) -> Receive:
        seen = 0
        cap = self.max_body

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _BodyTooLarge(cap)
            return message

        return capped


def _same_origin(origin: str, host: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def _security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    path = scope.get("path", "")
    csp = CSP_DOCS if path == "/docs" or path.endswith("/docs") else CSP
    return [(b"content-security-policy", csp.encode()), *HARDENING]


def _hardened(send: Send, scope: Scope) -> Send:
    extra = _security_headers(scope)

    async def hardened(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            present = {k.lower() for k, _ in headers}
            headers += [(k, v) for k, v in extra if k not in present]
            message["headers"] = headers
        await send(message)

    return hardened


async def _answer(send: Send, err: ApiError, scope: Scope) -> None:
    body = dumps(error_body(err.code, err.message, err.field))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *_security_headers(scope),
    ]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
