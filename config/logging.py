"""Logging: per-module loggers, one format, repeated warnings de-duplicated, secrets masked.

`setup_logging()` is called once per process (CLI entry, Celery's `setup_logging` signal).
Secrets are kept out of log calls by construction (core.models.Secret never prints itself, settings
hold credentials as SecretStr); the second line of defence is `RedactingFormatter`, which masks every
registered secret in the finished line — message, arguments, traceback and stack included.
"""

from __future__ import annotations

import logging
import threading
import time

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def register_secret(value: str | None) -> None:
    """Mask this value wherever it would appear in a log line (values shorter than 6 are ignored)."""
    if value and len(value) >= 6:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def registered_secrets() -> frozenset[str]:
    """Every value registered so far (for checks that scan output for secrets)."""
    with _SECRETS_LOCK:
        return frozenset(_SECRETS)


def redact(text: str) -> str:
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


def register_url_secrets(url: str | None, *, whole: bool = False) -> None:
    """Mask the password of a URL (and, with `whole`, the URL itself and its path and query: a
    webhook's secret is often its path)."""
    if not url:
        return
    from urllib.parse import urlsplit

    if whole:
        register_secret(url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return
    register_secret(password)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if whole and len(tail) >= 16:  # a secret path is long; "/alerts" would mask ordinary words
        register_secret(tail)


class RedactingFormatter(logging.Formatter):
    """A Formatter that masks every registered secret in the formatted line (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatException(self, ei) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


class RedactFilter(logging.Filter):
    """Masks the message of a record (for handlers whose formatter is not ours, e.g. a test's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            msg = record.getMessage()
            clean = redact(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return True


class DedupFilter(logging.Filter):
    """Lets a WARNING-or-above message through once per `window_s`; the next one after the window
    says how many were suppressed. INFO and below always pass (one line per exchange call)."""

    def __init__(self, window_s: float = 60.0, clock=time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            first, suppressed = self._seen.get(key, (None, 0))
            if first is not None and now - first < self.window_s:
                self._seen[key] = (first, suppressed + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 5000:  # bounded memory
                self._seen.clear()
        if suppressed:
            record.msg = f"{record.msg} (repeated {suppressed} more times in the last {self.window_s:.0f} s)"
        return True


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_tpsl_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RedactFilter())
    handler.addFilter(DedupFilter())
    root.addHandler(handler)
    root.setLevel(level)
    root._tpsl_configured = True  # type: ignore[attr-defined]
    for noisy in ("urllib3.connectionpool", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
