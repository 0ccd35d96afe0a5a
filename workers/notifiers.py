"""Alerts to people: a webhook (JSON POST) and Telegram (Bot API sendMessage), over one pooled session.

A webhook URL and the Telegram token (part of its URL) are secrets: neither is ever logged, put in
an error or a repr (the log names the host only); both are registered with the log mask as well.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from config.logging import register_secret, register_url_secrets

log = logging.getLogger(__name__)

_TITLES = {
    "tp_hit": "TP{level} hit",
    "sl_hit": "Stop-loss hit",
    "breakeven_moved": "Stop moved to breakeven",
    "position_closed": "Position closed ({reason})",
    "monitor_created": "Now guarding",
    "monitor_removed": "No longer guarding",
    "order_adjustment": "Order attention needed ({action})",
    "account_error": "Account error",
    "mirror_failed": "Mirror failed",
    "mirror_skipped": "Not mirrored",
    "monitor_quarantined": "Monitor quarantined: its plan failed validation ({reason})",
}


def describe(alert: dict[str, Any]) -> str:
    """One human line for an alert event dict."""
    payload = alert.get("payload") or {}
    kind = str(alert.get("kind"))
    title = _TITLES.get(kind, kind)
    try:
        title = title.format(**{k: payload.get(k, "?") for k in ("level", "reason", "action")})
    except (KeyError, IndexError):
        pass
    parts = [title]
    symbol = payload.get("symbol")
    if symbol:
        parts.append(str(symbol))
    where = [str(x) for x in (alert.get("account"), alert.get("monitor_id")) if x]
    if where:
        parts.append("(" + " / ".join(where) + ")")
    for key in ("qty", "price", "message"):
        if payload.get(key):
            parts.append(f"{key} {payload[key]}")
    return " ".join(parts)


class Notifier(Protocol):
    def send(self, alert: dict[str, Any]) -> None: ...


def pooled_session() -> requests.Session:
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


class WebhookNotifier:
    def __init__(self, url: str, session: requests.Session, *, timeout_s: float = 10.0) -> None:
        register_url_secrets(url, whole=True)  # a webhook URL is a credential (its path is the secret)
        self._url = url
        self.host = urlsplit(url).netloc
        self.session = session
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={self.host!r})"

    def send(self, alert: dict[str, Any]) -> None:
        body = {"text": describe(alert), "alert": alert}
        try:
            r = self.session.post(self._url, json=body, timeout=self.timeout_s)
        except requests.RequestException as e:
            # the exception text carries the URL: never let it out
            raise ConnectionError(f"webhook {self.host}: {type(e).__name__}") from None
        log.info("alert webhook %s: HTTP %s", self.host, r.status_code)
        if r.status_code >= 400:  # raise_for_status() would put the URL in the message
            raise ConnectionError(f"webhook {self.host}: HTTP {r.status_code}")


class TelegramNotifier:
    def __init__(
        self,
        token: str,
        chat_id: str,
        session: requests.Session,
        *,
        api_url: str = "https://api.telegram.org",
        timeout_s: float = 10.0,
    ) -> None:
        register_secret(token)  # the token is in the URL: mask it wherever a library logs that
        self._token = token
        self.chat_id = chat_id
        self.api_url = api_url.rstrip("/")
        self.session = session
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, api={urlsplit(self.api_url).netloc!r})"

    def send(self, alert: dict[str, Any]) -> None:
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        try:
            r = self.session.post(
                url, json={"chat_id": self.chat_id, "text": describe(alert)}, timeout=self.timeout_s
            )
        except requests.RequestException as e:
            # the exception text carries the URL, and with it the token: never let it out
            raise ConnectionError(f"telegram {urlsplit(self.api_url).netloc}: {type(e).__name__}") from None
        log.info("alert telegram %s: HTTP %s", urlsplit(self.api_url).netloc, r.status_code)
        if r.status_code >= 400:
            raise ConnectionError(f"telegram {urlsplit(self.api_url).netloc}: HTTP {r.status_code}")


def notifiers_from(settings: Any, session: requests.Session) -> list[Notifier]:
    out: list[Notifier] = []
    if settings.webhook_url is not None and settings.webhook_url.get_secret_value():
        out.append(WebhookNotifier(settings.webhook_url.get_secret_value(), session))
    if settings.telegram_bot_token and settings.telegram_chat_id:
        out.append(
            TelegramNotifier(
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id,
                session,
                api_url=settings.telegram_api_url,
            )
        )
    return out
