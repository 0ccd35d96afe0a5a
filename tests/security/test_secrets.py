"""Door 4: credentials never show in a repr, a log line (tracebacks included), an error or a task
message. The settings hold them as SecretStr; the log formatter masks what a library might still
print; a failing webhook names its host only."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from config.logging import RedactingFormatter, register_secret
from config.settings import Settings
from dashboard.app import create_app
from dashboard.server import DashboardServer
from tests.integration.pipeline.plans import conservative_long
from tests.integration.pipeline.test_alerts import Receiver
from workers.notifiers import WebhookNotifier, pooled_session
from workers.runtime import build_runtime

REDIS_PW = "redis-password-9f3a"
DB_PW = "db-password-41c7"
HOOK_PATH = "/hooks/T0001/B0002/webhook-secret-path-77d1"
TOKEN = "dashboard-token-for-the-secret-test-3e5b"
TG_TOKEN = "424242:telegram-token-of-the-secret-test"
FLOWER = "ops:flower-password-of-the-test-1a2b"
ACCOUNTS = [
    {
        "id": "main",
        "base_url": "http://127.0.0.1:1",
        "api_key": "KEY-main-5c6d7e",
        "api_secret": "SEC-main-8f9a0b",
    }
]


def all_settings() -> Settings:
    return Settings(
        redis_url=f"redis://:{REDIS_PW}@127.0.0.1:1/0",
        database_url=f"postgresql://tpsl:{DB_PW}@127.0.0.1:1/tpsl",
        accounts=json.dumps(ACCOUNTS),
        webhook_url=f"https://hooks.example.com{HOOK_PATH}",
        dashboard_token=TOKEN,
        telegram_bot_token=TG_TOKEN,
        telegram_chat_id="-100",
        flower_basic_auth=FLOWER,
    )


SECRETS = [
    REDIS_PW,
    DB_PW,
    HOOK_PATH,
    TOKEN,
    TG_TOKEN,
    FLOWER.split(":")[1],
    "KEY-main-5c6d7e",
    "SEC-main-8f9a0b",
]


def test_settings_and_runtime_reprs_hold_no_credential():
    s = all_settings()
    rt = build_runtime(s)  # nothing connects yet: Redis and the database are lazy
    try:
        shown = [repr(s), str(s), repr(rt), str(rt), repr(rt.accounts), repr(s.model_dump())]
        for text in shown:
            for secret in SECRETS:
                assert secret not in text, (secret, text[:200])
        # and the clear values are still there for the clients that connect with them
        assert REDIS_PW in (s.redis_dsn or "") and DB_PW in s.database_dsn
    finally:
        rt.close()


def test_the_log_mask_runs_after_formatting_tracebacks_included():
    all_settings()  # reading the settings registers their credentials with the mask
    log = logging.getLogger("tests.security.mask")
    fmt = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError(f"connect failed: redis://:{REDIS_PW}@127.0.0.1:1/0 token={TOKEN}")
    except RuntimeError:
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 1, "call to %s failed", (HOOK_PATH,), sys.exc_info()
        )
    record.stack_info = f"stack with {TG_TOKEN}"
    line = fmt.format(record)
    assert "Traceback" in line and "connect failed" in line and "***" in line
    for secret in SECRETS:
        assert secret not in line, secret


def test_a_secret_registered_is_masked_wherever_the_formatter_finds_it():
    register_secret("one-more-secret-b7c8")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%r", ({"k": "one-more-secret-b7c8"},), None)
    assert "one-more-secret-b7c8" not in RedactingFormatter("%(message)s").format(record)


def test_a_failing_webhook_never_logs_or_raises_its_url(caplog):
    receiver = Receiver()
    receiver.status = 500
    url = receiver.url + HOOK_PATH
    caplog.set_level(logging.INFO)  # production levels, raw records: no mask in between
    try:
        n = WebhookNotifier(url, pooled_session())
        with pytest.raises(ConnectionError) as err:
            n.send({"kind": "tp_hit", "payload": {}})
        assert receiver.requests and receiver.requests[0][0] == HOOK_PATH  # it was really sent
        receiver.server.shutdown()
        receiver.server.server_close()
        with pytest.raises(ConnectionError) as down:
            n.send({"kind": "tp_hit", "payload": {}})
    finally:
        receiver.close()
    for text in (str(err.value), repr(err.value), str(down.value), repr(n), caplog.text):
        assert HOOK_PATH not in text and "webhook-secret" not in text, text
    assert "127.0.0.1" in str(err.value)  # the host is named


class TestAWholeLifecycle:
    """A monitor created through the dashboard, filled, taken profit on, alerted through a failing
    webhook: no credential in any raw log record of this process (before any mask)."""

    @pytest.fixture
    def receiver(self):
        r = Receiver()
        r.status = 500
        yield r
        r.close()

    @pytest.fixture
    def stack_overrides(self, receiver):
        return {"webhook_url": receiver.url + HOOK_PATH}

    def test_no_credential_in_any_raw_log_record(self, stack, receiver, caplog):
        import httpx

        caplog.set_level(logging.INFO)
        secrets = [HOOK_PATH, TOKEN]
        for c in stack.creds.values():
            secrets += [c.api_key, c.api_secret]
        stack.prices(BTCUSDT="60500")
        with (
            DashboardServer(create_app(stack.rt, token=TOKEN)) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
        ):
            r = client.post("/api/monitors", json=conservative_long())
            assert r.status_code == 201, r.text
            mid = r.json()["id"]
            stack.prices(BTCUSDT="59990")
            stack.wait(lambda: stack.monitor(mid).built_qty > 0, what="the first fill")
            stack.wait(lambda: receiver.requests, what="an alert attempt at the failing webhook")
            stack.wait(lambda: "alert through" in caplog.text, what="the failed alert logged")
            pages = [
                client.get(p).text for p in ("/", "/api/monitors", f"/api/monitors/{mid}", "/ui/monitors")
            ]
        raw = [
            rec.getMessage() + (logging.Formatter().formatException(rec.exc_info) if rec.exc_info else "")
            for rec in caplog.records
        ]
        for secret in secrets:
            assert not any(secret in line for line in raw), secret
            assert not any(secret in page for page in pages), secret
