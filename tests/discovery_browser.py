"""Run inside the discovery tests' client namespace (tests/test_discovery.py): a real ``mediamesh serve``
and Chromium on that host's loopback, a new user who opens "Add a source", sees the NAS and the PC that
announced themselves, picks a share (the form is filled in) and adds it. Exits 0 when all of that held.

    python tests/discovery_browser.py WORKDIR NAS_ADDRESS SCREENSHOT USER PASSWORD
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_serve import free_port
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS


def main(workdir: Path, nas: str, screenshot: Path, user: str, password: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(workdir / "ui-data"),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
        "MEDIAMESH_DISCOVERY": "on",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.2)
        token = (workdir / "ui-data" / "admin-token").read_text().strip()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, base_url=base)
            page.goto("/sign-in")
            page.get_by_label("Token").fill(token)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            page.goto("/sources/new")
            found = page.locator("#discovered")
            expect(found).to_contain_text("DiskStation", timeout=30_000)
            expect(found).to_contain_text("WINPC")
            expect(found).to_contain_text("DS920+")
            expect(found.get_by_role("link", name="SMB Users")).to_be_visible()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            # Click one: the form opens on that kind, filled in.
            found.get_by_role("link", name="SMB video").click()
            expect(page.get_by_label("Host", exact=True)).to_have_value(nas)
            expect(page.get_by_label("Share", exact=True)).to_have_value("video")
            page.get_by_label("Name", exact=True).fill("nasvideo")
            page.get_by_label("User (optional)").fill(user)  # what the NAS asks of whoever reads the share
            page.get_by_label("Password", exact=True).fill(password)
            page.get_by_label("Scan it now").uncheck()
            # Click two: added.
            page.get_by_role("button", name="Add source").click()
            expect(page.locator('article[data-source="nasvideo"]')).to_be_visible(timeout=30_000)
            page.goto("/sources/new")
            expect(page.locator("#discovered")).to_contain_text("added as nasvideo", timeout=30_000)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr[-3000:]


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5])
