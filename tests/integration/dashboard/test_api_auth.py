"""Every /api/ route but /api/health, the page's fragments and /metrics need the bearer token (there
is always one); the token never shows in an answer."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.pipeline.plans import conservative_long

TOKEN = "s3cret-dashboard-token-for-tests"
PROTECTED = [
    ("GET", "/api/monitors"),
    ("POST", "/api/monitors"),
    ("GET", "/api/monitors/abcdefghij"),
    ("DELETE", "/api/monitors/abcdefghij"),
    ("GET", "/api/monitors/abcdefghij/events"),
    ("GET", "/api/accounts"),
    ("GET", "/api/accounts/main"),
    ("GET", "/api/stats"),
    ("GET", "/api/insights"),
    ("GET", "/metrics"),
    ("GET", "/ui/monitors"),
    ("GET", "/ui/accounts"),
    ("GET", "/ui/ops"),
    ("GET", "/ui/events"),
]


@pytest.fixture
def dashboard_token():
    return TOKEN


def bare(dash):
    return httpx.Client(base_url=dash.url, timeout=30)


def test_every_data_route_needs_the_token(dash):
    with bare(dash) as client:
        for method, path in PROTECTED:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                r = client.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert TOKEN not in r.text
        assert dash.stack.exchange_orders("main") == []  # the refused POST placed nothing


def test_health_page_shell_static_and_docs_stay_open(dash):
    with bare(dash) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        page = client.get("/")
        assert page.status_code == 200 and 'data-token-required="true"' in page.text
        assert TOKEN not in page.text
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        # the OpenAPI page works offline: Swagger UI's files come from this server, not a CDN
        docs = client.get("/docs")
        assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert "cdn." not in docs.text
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_the_right_token_opens_everything(dash):
    dash.stack.prices(BTCUSDT="60500")
    r = dash.client.post("/api/monitors", json=conservative_long())  # dash.client sends the token
    assert r.status_code == 201
    for method, path in PROTECTED:
        if method != "GET" or "abcdefghij" in path:
            continue
        r = dash.client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert TOKEN not in r.text
    with bare(dash) as client:  # the scheme name is case-insensitive
        assert client.get("/api/stats", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_no_secret_leaves_the_dashboard(dash):
    """Neither the token nor any account credential appears in any answer."""
    dash.stack.prices(BTCUSDT="60500")
    m = dash.client.post("/api/monitors", json=conservative_long()).json()
    secrets = [TOKEN]
    for creds in dash.stack.creds.values():
        secrets += [creds.api_key, creds.api_secret]
    paths = [
        "/",
        "/api/monitors",
        f"/api/monitors/{m['id']}",
        f"/api/monitors/{m['id']}/events",
        "/api/accounts",
    ]
    paths += ["/api/accounts/main", "/api/accounts/mirror1", "/api/stats", "/api/insights", "/metrics"]
    paths += [
        "/ui/monitors",
        f"/ui/monitors/{m['id']}",
        "/ui/accounts",
        "/ui/ops",
        "/ui/events",
        "/openapi.json",
    ]
    for path in paths:
        text = dash.client.get(path).text
        for s in secrets:
            assert s not in text, path
    assert TOKEN not in repr(dash.server.app.state.dashboard)


def test_shut_without_a_token(stack):
    """No token configured and none given: fail closed, only /api/health answers."""
    from dashboard.app import create_app
    from dashboard.server import DashboardServer

    with DashboardServer(create_app(stack.rt)) as server, httpx.Client(base_url=server.url) as client:
        for method, path in PROTECTED:
            assert client.request(method, path).status_code == 401, path
        assert client.get("/api/health").status_code == 200
        assert 'data-token-required="true"' in client.get("/").text
    assert stack.exchange_orders("main") == []
