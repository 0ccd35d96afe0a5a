"""Doors 1, 3, 6 and 7: the dashboard fails closed, over real HTTP against the real app under uvicorn.

1. no token configured → nothing but /api/health answers (and `tpsl web` generates one and prints it
   once); a text/plain "simple request" cannot create a monitor; a foreign Host is refused (DNS
   rebinding); a cross-site Origin / Sec-Fetch-Site cannot change anything.
3. auth is a router dependency: behind a root_path or a mount the data routes still need the token.
6. bodies are capped before and while they are read; cache keys are bounded; plans take ASCII
   decimals only.
7. every answer carries the browser hardening headers; the open page shell shows no account id.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from packaging.version import Version
from starlette.applications import Starlette
from starlette.routing import Mount

from dashboard.api import MAX_BODY
from dashboard.app import create_app
from dashboard.server import DashboardServer
from devtools.ports import free_port
from tests.integration.pipeline.plans import conservative_long
from tests.plugins.secrets import httpx_scan_hook

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "security-suite-dashboard-token-0b9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(stack):
    with DashboardServer(create_app(stack.rt, token=TOKEN)) as server:
        yield server


def client(server: DashboardServer, **kw) -> httpx.Client:
    # every answer goes to the session-wide secret scan as well
    return httpx.Client(base_url=server.url, timeout=30, event_hooks={"response": [httpx_scan_hook]}, **kw)


# ------------------------------------------------------------------------------- door 1: fail closed


def test_without_any_token_only_health_answers(stack):
    stack.prices(BTCUSDT="60500")
    with DashboardServer(create_app(stack.rt)) as server, client(server) as c:
        assert c.get("/api/health").status_code == 200
        for method, path in (("GET", "/api/monitors"), ("GET", "/api/accounts"), ("GET", "/metrics")):
            assert c.request(method, path).status_code == 401
        # the CSRF a web page can send without a preflight: text/plain, no Authorization
        r = c.post(
            "/api/monitors", content=json.dumps(conservative_long()), headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 401
    assert stack.exchange_orders("main") == []


def test_a_simple_request_cannot_create_a_monitor_even_with_the_token(stack, served):
    stack.prices(BTCUSDT="60500")
    body = json.dumps(conservative_long())
    with client(served, headers=AUTH) as c:
        for ctype in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            None,
        ):
            headers = {"Content-Type": ctype} if ctype else {}
            r = c.post("/api/monitors", content=body, headers=headers)
            assert r.status_code == 415, (ctype, r.text)
            assert r.json()["error"]["field"] == "Content-Type"
        assert stack.exchange_orders("main") == []
        ok = c.post(
            "/api/monitors", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert ok.status_code == 201, ok.text


def test_a_foreign_host_is_refused_everywhere(served):
    with client(served, headers=AUTH) as c:
        for path in ("/api/health", "/", "/api/monitors", "/static/app.js", "/docs"):
            for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil"):
                r = c.get(path, headers={"Host": host})
                assert r.status_code == 400, (path, host)
                assert r.json()["error"]["code"] == "bad_host"
        for host in (
            f"127.0.0.1:{served.port}",
            f"localhost:{served.port}",
            "localhost",
            f"[::1]:{served.port}",
        ):
            assert c.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_tpsl_allowed_hosts_adds_names(stack):
    with (
        DashboardServer(
            create_app(stack.rt, token=TOKEN, allowed_hosts="dash.example.com, ops.example")
        ) as s,
        client(s) as c,
    ):
        assert c.get("/api/health", headers={"Host": "dash.example.com"}).status_code == 200
        assert c.get("/api/health", headers={"Host": "OPS.example:8443"}).status_code == 200
        assert c.get("/api/health", headers={"Host": "evil.example"}).status_code == 400


def test_cross_site_writes_are_refused(stack, served):
    stack.prices(BTCUSDT="60500")
    origin = f"http://127.0.0.1:{served.port}"
    with client(served, headers=AUTH) as c:
        refused = [
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://localhost:{served.port + 1}"},  # same site, another origin
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": origin, "Sec-Fetch-Site": "cross-site"},
        ]
        for headers in refused:
            r = c.post("/api/monitors", json=conservative_long(), headers=headers)
            assert r.status_code == 403, (headers, r.text)
            assert r.json()["error"]["code"] == "cross_site"
            assert c.delete("/api/monitors/abcdefghij", headers=headers).status_code == 403
        assert stack.exchange_orders("main") == []
        # reads are not writes; and the page's own requests pass
        assert c.get("/api/monitors", headers={"Origin": "http://evil.example"}).status_code == 200
        r = c.post(
            "/api/monitors",
            json=conservative_long(),
            headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        )
        assert r.status_code == 201, r.text


def test_tpsl_web_generates_a_token_and_prints_it_once(stack, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TPSL_", "FLOWER_"))}
    env.update(
        REDIS_URL=stack.settings.redis_dsn,
        DATABASE_URL=stack.settings.database_dsn,
        TPSL_ACCOUNTS=stack.settings.accounts.get_secret_value(),
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "web", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while "?token=" not in log.read_text() or not _listening(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        token = text.split("?token=", 1)[1].split()[0]
        assert len(token) >= 24
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/api/monitors").status_code == 401
            assert c.get("/api/monitors", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
    assert log.read_text().count(token) == 1  # printed once, never logged


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------- door 3: dependency, not path


def test_behind_a_root_path_the_data_routes_still_need_the_token(stack):
    with DashboardServer(create_app(stack.rt, token=TOKEN), root_path="/tpsl") as server, client(server) as c:
        for path in (
            "/tpsl/api/monitors",
            "/tpsl/api/accounts",
            "/tpsl/metrics",
            "/tpsl/ui/monitors",
            "/api/monitors",
            "/api/accounts",
            "/metrics",
        ):
            r = c.get(path)
            assert r.status_code in (401, 404), (path, r.status_code)
            assert r.status_code != 200
        # the route is reachable (how uvicorn joins root_path and path varies): the token opens it
        assert 200 in (c.get(p, headers=AUTH).status_code for p in ("/tpsl/api/monitors", "/api/monitors"))


def test_mounted_under_a_prefix_the_data_routes_still_need_the_token(stack):
    outer = Starlette(routes=[Mount("/guard", app=create_app(stack.rt, token=TOKEN))])
    with DashboardServer(outer) as server, client(server) as c:
        for path in ("/guard/api/monitors", "/guard/api/accounts", "/guard/metrics", "/guard/ui/accounts"):
            assert c.get(path).status_code == 401, path
        assert c.get("/guard/api/monitors", headers=AUTH).status_code == 200
        assert c.get("/guard/api/health").status_code == 200


def test_a_crafted_host_opens_nothing(served):
    with client(served) as c:
        for host in ("127.0.0.1/api/health?", "localhost/api/health#", "127.0.0.1:1/api/health"):
            r = c.get("/api/monitors", headers={"Host": host})
            assert r.status_code in (400, 401), (host, r.status_code)


def test_starlette_is_past_the_host_header_advisory():
    assert Version(version("starlette")) >= Version("1.0.1")
    pins = (ROOT / "pyproject.toml").read_text()
    assert '"starlette>=1.0.1' in pins


# --------------------------------------------------------------------------- door 6: bounded input


def test_a_declared_oversized_body_is_refused_before_it_is_read(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(
            b"POST /api/monitors HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 500000000\r\n\r\n{"
        )
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_a_streamed_oversized_body_is_cut_off_at_the_cap(stack, served):
    def chunks():
        yield b'{"account": "main", "pad": "'
        for _ in range(MAX_BODY // 1024 + 8):
            yield b"x" * 1024
        yield b'"}'

    with client(served, headers=AUTH) as c:
        r = c.post("/api/monitors", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        for body, code in ((b"{not json", "bad_json"), (b"\xff\xfe{}", "bad_json"), (b"", "bad_json")):
            r = c.post("/api/monitors", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["code"] == code, body
        r = c.post(
            "/api/monitors",
            content=b'{"a": ' + b"9" * 5000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400
    assert stack.exchange_orders("main") == []


def _cache_keys(stack, what: str) -> set[bytes]:
    return {k for k in stack.rt.redis.scan_iter(match="*") if what in k}


def test_query_values_do_not_grow_the_cache(stack, served):
    stack.prices(BTCUSDT="60500")
    with client(served, headers=AUTH) as c:
        mid = c.post("/api/monitors", json=conservative_long()).json()["id"]
        before_keys = _cache_keys(stack, "days:")
        for i in range(40):
            assert c.get("/api/insights", params={"days": 1 + i * 0.137}).status_code == 200
        grown = _cache_keys(stack, "days:") - before_keys
        assert 0 < len(grown) <= 2  # 1 → 1 day; 1.1 … 6.3 → 7 days
        assert c.get("/api/insights", params={"days": 3}).json()["days"] == 7
        events_before = _cache_keys(stack, "events:")
        for i in range(30):
            assert c.get(f"/api/monitors/{mid}/events", params={"before": 1.7e9 + i}).status_code == 200
            assert c.get(f"/api/monitors/{mid}/events", params={"limit": 100 + i}).status_code == 200
        assert _cache_keys(stack, "events:") == events_before


@pytest.mark.parametrize("digits", ["٥٨٠٠٠", "５８０００", "58٠00"])
def test_plans_take_ascii_decimals_only(stack, served, digits):
    stack.prices(BTCUSDT="60500")
    with client(served, headers=AUTH) as c:
        r = c.post("/api/monitors", json=conservative_long(stop_loss=digits))
    assert r.status_code == 422 and r.json()["error"]["field"] == "stop_loss", r.text
    assert stack.exchange_orders("main") == []


def test_a_toml_plan_with_a_huge_integer_is_one_line_of_error(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'account = "main"\nsymbol = "BTCUSDT"\nside = "Buy"\nstop_loss = {"9" * 5000}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPSL_")}
    env.update(PYTHONPATH=str(ROOT), REDIS_URL="redis://127.0.0.1:1/0")
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "monitor", "add", "--plan", str(plan)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("error: plan:")


# ------------------------------------------------------------------------- door 7: browser hardening


def _hardened(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (r.url, csp)
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("referrer-policy") == "no-referrer"
    assert r.headers.get("x-content-type-options") == "nosniff"


def test_every_answer_is_hardened(served):
    with client(served) as c:
        for path, headers in (
            ("/", {}),
            ("/api/health", {}),
            ("/api/monitors", AUTH),
            ("/api/monitors", {}),
            ("/ui/ops", AUTH),
            ("/metrics", AUTH),
            ("/static/app.js", {}),
            ("/docs", {}),
            ("/openapi.json", {}),
            ("/nowhere", {}),
        ):
            _hardened(c.get(path, headers=headers))
        _hardened(c.get("/", headers={"Host": "evil.example"}))
        _hardened(c.post("/api/monitors", content=b"x", headers={**AUTH, "Content-Type": "text/plain"}))
        page_csp = c.get("/").headers["content-security-policy"]
        assert "script-src 'self';" in page_csp  # no inline script on the page


def test_an_internal_error_is_hardened_too(stack):
    from pydantic import SecretStr

    from workers.runtime import build_runtime

    dead = "postgresql+psycopg://tpsl@127.0.0.1:1/tpsl?connect_timeout=2"  # nothing listens
    rt = build_runtime(stack.settings.model_copy(update={"database_url": SecretStr(dead)}))
    try:
        with DashboardServer(create_app(rt, token=TOKEN)) as server, client(server, headers=AUTH) as c:
            r = c.get("/api/monitors", params={"status": "closed"})
            assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
            _hardened(r)
    finally:
        rt.close()


def test_the_open_page_shell_shows_no_account_id(stack, served):
    with client(served) as c:
        page = c.get("/").text
        assert "mirror1" not in page and 'value="main"' not in page
        options = c.get("/ui/account-options", headers=AUTH)
        assert options.status_code == 200 and 'value="main"' in options.text
        assert c.get("/ui/account-options").status_code == 401
