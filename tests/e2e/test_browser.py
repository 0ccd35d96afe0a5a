"""The dashboard page in a real browser: Debian's headless Chromium driven by Playwright, over the
page served by uvicorn on a free port over the whole stack (paper exchange, Redis, SQLite, a Celery
worker, the dispatcher). Skips only where no Chromium binary exists (fails instead under CI=true).
Never `playwright install`: the browser is the system's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.app import create_app
from dashboard.server import DashboardServer
from tests.integration.pipeline.plans import conservative_long
from tests.plugins.services import require

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token-5f2a"
WAIT_MS = 30_000


@pytest.fixture
def browser() -> Iterator[object]:
    require(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        require(False, "the playwright package is not installed")
        return
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), args=ARGS
        )
        try:
            yield b
        finally:
            b.close()


def page_for(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a Content-Security-Policy violation (the dashboard sends one) shows as a console error
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url)
    return page, errors


def test_page_shows_monitors_and_creates_one_through_the_form(stack, browser):
    stack.prices(BTCUSDT="60500", SOLUSDT="150")
    seeded = stack.create(conservative_long())
    with DashboardServer(create_app(stack.rt, token=TOKEN)) as server:
        page, errors = page_for(browser, f"{server.url}/?token={TOKEN}")

        # the seeded monitor, with its badges and ladder
        row = page.locator(f'tr.monitor-row[data-monitor="{seeded.id}"]')
        row.wait_for()
        assert "BTCUSDT" in row.inner_text()
        assert row.locator(".badge.tier").count() == 1 and row.locator(".rung").count() == 4
        page.locator(".card.account h3", has_text="main").wait_for()  # account cards
        page.locator("#ops .kpi").first.wait_for()  # operations panel

        # its detail: the price chart (server-side SVG), orders and events
        row.click()
        page.locator(f'[data-detail="{seeded.id}"] svg.chart').wait_for()
        assert "Monitor created" in page.locator(f'[data-detail="{seeded.id}"]').inner_text()

        # a refused plan: the error shows next to its field, nothing is placed
        form = page.locator("#create-form")
        form.locator('input[name="symbol"]').fill("SOLUSDT")
        form.locator('select[name="preset"]').select_option("fast")
        form.locator('input[name="entry_mode"][value="market"]').check()
        form.locator('input[name="market_qty"]').fill("10")
        form.locator('#tp-rows input[data-part="price"]').first.fill("160")
        form.locator('input[name="stop_loss"]').fill("155")  # above the mark of a long: refused
        form.locator('input[name="mirror"]').uncheck()
        form.locator("#create-submit").click()
        stop_error = form.locator('label:has(input[name="stop_loss"]) .err')
        stop_error.wait_for()
        assert stop_error.inner_text().strip()
        assert "invalid" in (form.locator('input[name="stop_loss"]').get_attribute("class") or "")

        # fixed: created, and it appears in the table
        form.locator('input[name="stop_loss"]').fill("140")
        form.locator("#create-submit").click()
        page.locator("#create-result.ok").wait_for()
        created = page.locator("#create-result").inner_text()
        new_id = created.split()[1]
        page.locator(f'tr.monitor-row[data-monitor="{new_id}"]').wait_for()
        assert stack.monitor(new_id) is not None and stack.monitor(new_id).plan.symbol == "SOLUSDT"
        assert errors == []


def test_page_asks_for_the_token_once_and_keeps_it(stack, browser):
    stack.prices(BTCUSDT="60500")
    seeded = stack.create(conservative_long())
    with DashboardServer(create_app(stack.rt, token=TOKEN)) as server:
        page, errors = page_for(browser, server.url + "/")
        dialog = page.locator("#token-dialog")
        dialog.wait_for(state="visible")
        page.fill("#token-input", "not-the-token")
        page.click("#token-submit")
        page.locator("#token-error", has_text="refused").wait_for()

        page.fill("#token-input", TOKEN)
        page.click("#token-submit")
        dialog.wait_for(state="hidden")
        page.locator(f'tr.monitor-row[data-monitor="{seeded.id}"]').wait_for()

        page.reload()  # kept in this browser: no second prompt
        page.locator(f'tr.monitor-row[data-monitor="{seeded.id}"]').wait_for()
        assert not dialog.is_visible()
        assert TOKEN not in page.content()
        assert errors == []


def test_token_in_the_url_is_taken_once_and_removed(stack, browser):
    stack.prices(BTCUSDT="60500")
    seeded = stack.create(conservative_long())
    with DashboardServer(create_app(stack.rt, token=TOKEN)) as server:
        page, errors = page_for(browser, f"{server.url}/?token={TOKEN}")
        page.locator(f'tr.monitor-row[data-monitor="{seeded.id}"]').wait_for()
        assert "token=" not in page.url
        assert not page.locator("#token-dialog").is_visible()
        assert errors == []
