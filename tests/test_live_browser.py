"""Live changes in a real browser against a real ``mediamesh serve``: a photo copied into a watched folder
appears on the open dashboard without a reload or a scan; webhooks are added and tested on their page."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.media_factory import jpeg_with_exif
from tests.test_events_api import Receiver
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, Server, Watched


@pytest.fixture
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, MEDIAMESH_SETTLE_SECONDS="1", MEDIAMESH_WEBHOOK_ALLOW="127.0.0.1/32")
    yield running
    stderr = running.stop()
    assert "Traceback" not in stderr, stderr[-3000:]


def test_a_copied_photo_shows_up_on_the_open_dashboard(
    live_server: Server, tmp_path: Path, chromium: Browser
) -> None:
    library = tmp_path / "Photos"
    jpeg_with_exif(library / "Day 1" / "first.jpg")
    old = time.time() - 3600
    for path in library.rglob("*"):
        os.utime(path, (old, old))
    api = httpx.Client(
        base_url=live_server.base, headers={"Authorization": f"Bearer {live_server.admin_token}"}
    )
    assert api.post("/api/v1/sources", json={"name": "photos", "location": str(library)}).status_code == 201
    assert api.post("/api/v1/sources/photos/scans").status_code in (200, 201, 202)
    deadline = time.monotonic() + 30
    while (api.get("/api/v1/sources/photos").json()["last_scan"] or {}).get("status") != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.base)
    w = Watched(context.new_page())
    page = w.page
    page.goto("/sign-in")
    page.get_by_label("Token").fill(live_server.admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    watch = page.locator('article[data-source="photos"] [data-watch]')
    expect(watch).to_contain_text("watching 2 folders (inotify)", timeout=15_000)
    page.evaluate("window.__stayed = true")  # gone if the page reloads

    jpeg_with_exif(library / "Day 2" / "sunset.jpg", size=(640, 480))  # copied in while the page is open
    added = page.locator("section.just-added")
    expect(added.get_by_text("sunset.jpg")).to_be_visible(timeout=30_000)
    assert page.evaluate("window.__stayed === true"), "the page reloaded"
    expect(page.locator(".totals .stat").first).to_contain_text("2")
    w.shot("15-dashboard-live")
    assert w.errors == []

    # Webhooks: add one, copy its secret, send a test; the delivery shows on the page.
    receiver = Receiver()
    try:
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_label("Name").fill("home-assistant")
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Events").select_option("media.*")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#new-secret-value")).to_contain_text("whsec_")
        hook = page.locator('li[data-webhook="home-assistant"]')
        expect(hook).to_contain_text("media.*")
        hook.get_by_role("button", name="Send a test").click()
        expect(page.locator('li[data-webhook="home-assistant"]')).to_contain_text("delivered", timeout=10_000)
        assert [p["type"] for p in receiver.payloads()] == ["ping"]
        w.shot("16-webhooks")
        assert w.errors == []
    finally:
        receiver.close()
        context.close()
