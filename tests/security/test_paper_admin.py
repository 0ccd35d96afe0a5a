"""Door 8: the paper exchange's admin API is unauthenticated by design — said so in `--help`, warned
about loudly on a non-loopback bind, closed to web pages of other sites, bounded in body size, and
naming accounts in /paper/stats by id, never by API key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from devtools.ports import free_port
from exchange.paper.server import ADMIN_MAX_BODY, V5_MAX_BODY

ROOT = Path(__file__).resolve().parents[2]


def test_cross_site_requests_are_refused(paper):
    base = paper.base_url
    host = base.split("://", 1)[1]
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        for method, path, body in (
            ("POST", "/paper/accounts", {"api_key": "evilkey00001", "api_secret": "evilsecret0001"}),
            ("POST", "/paper/prices", {"prices": {"BTCUSDT": "1"}}),
            ("GET", "/paper/accounts", None),
        ):
            r = requests.request(method, base + path, json=body, headers=headers, timeout=10)
            assert r.status_code == 403, (headers, path, r.text)
            assert r.json()["error"]["code"] == "cross_site"
    assert all(a["id"] != "evilkey00001" for a in paper.admin.accounts())
    # its own tools (no Origin) and a same-origin page pass
    assert requests.get(base + "/paper/health", timeout=10).status_code == 200
    assert (
        requests.get(base + "/paper/health", headers={"Origin": f"http://{host}"}, timeout=10).status_code
        == 200
    )


def test_bodies_are_capped(paper):
    with socket.create_connection(paper.base_url.split("://")[1].split(":"), timeout=10) as s:
        s.sendall(
            b"POST /paper/replay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
            + f"Content-Length: {ADMIN_MAX_BODY + 1}\r\n\r\nts,symbol,price\r\n".encode()
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 413")

    def chunks(total: int):
        sent = 0
        while sent <= total:
            yield b"x" * 65536
            sent += 65536

    r = requests.post(paper.base_url + "/paper/faults", data=chunks(ADMIN_MAX_BODY), timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = requests.post(paper.base_url + "/v5/order/create", data=chunks(V5_MAX_BODY), timeout=60)
    assert r.status_code == 413


def test_stats_name_accounts_by_id_never_by_key(paper):
    creds = paper.new_account()
    from tests.integration.paper.v5client import V5Client

    paper.admin.reset()
    V5Client(paper.base_url, creds).get("/v5/position/list", category="linear", settleCoin="USDT")
    stats = requests.get(paper.base_url + "/paper/stats", timeout=10)
    assert creds.api_key not in stats.text and creds.api_secret not in stats.text
    assert stats.json()["by_account"][creds.id] == {"/v5/position/list": 1}
    accounts = requests.get(paper.base_url + "/paper/accounts", timeout=10).text
    assert creds.api_key not in accounts and creds.api_secret not in accounts


def test_help_says_the_admin_api_is_unauthenticated():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "paper", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
    )
    assert "NO authentication" in out.stdout and "loopback" in out.stdout


def test_a_non_loopback_bind_is_warned_about_loudly(tmp_path):
    port = free_port()
    log = tmp_path / "paper.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "paper", "serve", "--host", "0.0.0.0", "--port", str(port)],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        deadline = time.monotonic() + 60
        while "WARNING" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "0.0.0.0" in text and "no authentication" in text
    finally:
        proc.terminate()
        proc.wait(20)
