"""Alerts reach people: a webhook (JSON POST) and Telegram's sendMessage, tested against a local
HTTP receiver; the Telegram token never shows in logs or errors."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workers.notifiers import TelegramNotifier, WebhookNotifier, describe, pooled_session

from .plans import conservative_long

TOKEN = "123456:telegram-token-that-must-stay-secret"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


ALERT = {
    "kind": "tp_hit",
    "account": "main",
    "monitor_id": "abc",
    "critical": True,
    "payload": {"symbol": "BTCUSDT", "level": 2, "qty": "0.002", "price": "63000"},
}


def test_webhook_posts_the_alert_as_json(receiver):
    WebhookNotifier(receiver.url + "/hook", pooled_session()).send(ALERT)
    path, body = receiver.requests[0]
    assert path == "/hook"
    assert body["alert"] == ALERT
    assert body["text"] == describe(ALERT) == "TP2 hit BTCUSDT (main / abc) qty 0.002 price 63000"


def test_telegram_send_message_and_the_token_stays_secret(receiver, caplog):
    from config.logging import RedactFilter

    caplog.set_level(logging.DEBUG)  # even urllib3's debug lines, which carry the URL
    caplog.handler.addFilter(RedactFilter())  # what setup_logging puts on every handler
    n = TelegramNotifier(TOKEN, "-1001", pooled_session(), api_url=receiver.url)
    n.send(ALERT)
    path, body = receiver.requests[0]
    assert path == f"/bot{TOKEN}/sendMessage"
    assert body == {"chat_id": "-1001", "text": describe(ALERT)}
    receiver.status = 500
    with pytest.raises(ConnectionError) as err:
        n.send(ALERT)
    assert TOKEN not in str(err.value) and TOKEN not in repr(n)
    assert TOKEN not in caplog.text


class TestThroughThePipeline:
    @pytest.fixture
    def stack_overrides(self, receiver):
        return {"webhook_url": receiver.url + "/alerts"}

    def test_critical_events_are_alerted(self, stack, receiver):
        stack.prices(BTCUSDT="60500")
        m = stack.create(conservative_long())
        stack.wait(
            lambda: any(b["alert"]["kind"] == "monitor_created" for _, b in receiver.requests),
            what="monitor_created alert",
        )
        alert = next(b["alert"] for _, b in receiver.requests if b["alert"]["kind"] == "monitor_created")
        assert alert["monitor_id"] == m.id
