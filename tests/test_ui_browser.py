"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real ``mediamesh serve``.

One new user's session, step by step: sign in with the keyboard, add a local source after testing the
connection, scan it and watch it finish without reloading, browse thumbnails, play a video, make projects
with a template and a rule, create and revoke a token; then the same pages on a phone-sized screen.
Screenshots of every page go to test-artifacts/ui/ (docs/ui.md links them). No console error is allowed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.media_factory import h264_mp4, jpeg_with_exif, wav
from tests.test_serve import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Headless, and nothing that would reach beyond this machine (the network is closed; see env notes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


class Server:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = tmp / "data"
        env = {
            **os.environ,
            "MEDIAMESH_DATA_DIR": str(self.data),
            "MEDIAMESH_HOST": "127.0.0.1",
            "MEDIAMESH_PORT": str(self.port),
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediamesh", "serve"], env=env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2):
                    break
            except OSError:
                assert self.proc.poll() is None, "the server stopped"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        self.admin_token = (self.data / "admin-token").read_text().strip()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=30)
        return stderr


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui") / "Media"
    h264_mp4(root / "Projects" / "Alpha" / "interview.mp4", seconds=4.0, size=(320, 180))
    jpeg_with_exif(root / "Projects" / "Alpha" / "portrait.jpg")
    h264_mp4(root / "Projects" / "Beta" / "b-roll.mp4", seconds=3.0, size=(256, 144))
    wav(root / "Music" / "tone.wav", seconds=1.0)
    an_hour_ago = time.time() - 3600  # files written just now would wait for the settle time
    for path in root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("ui-server"))
    yield running
    stderr = running.stop()
    assert "Traceback" not in stderr, stderr[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/install-system-deps.sh installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("dialog", lambda dialog: dialog.accept())  # confirm() before revoking and removing

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")

    def expected_refusal(self, status: int, path: str) -> None:
        """Chromium logs every 4xx answer as a console error. One that a test provoked on purpose (a wrong
        token, an invalid field) must be there once; it is taken off, and any other error stays."""
        mine = [e for e in self.errors if f"status of {status}" in e and f"{path}'" in e]
        assert len(mine) == 1, self.errors
        self.errors.remove(mine[0])

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_a_new_user_does_everything_in_the_browser(server: Server, library: Path, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.base)
    w = Watched(context.new_page())
    page = w.page

    # Sign in, with the keyboard only: a wrong token first.
    page.goto("/")
    expect(page).to_have_url(f"{server.base}/sign-in")
    w.shot("01-sign-in")
    expect(page.get_by_label("Token")).to_be_focused()
    page.keyboard.type("mm_wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#token-error")).to_contain_text("not valid")
    w.expected_refusal(401, "/sign-in")
    page.get_by_label("Token").fill("")
    page.get_by_label("Token").focus()
    page.keyboard.type(server.admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "mm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    w.shot("02-dashboard-empty")

    # Add a local source, testing the connection first; a wrong folder is explained next to the field.
    page.get_by_role("link", name="Add your first source").click()
    page.get_by_label("Name").fill("studio")
    page.get_by_label("Folder").fill(str(library / "not-there"))
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#location-error")).to_contain_text("✗")
    expect(page.get_by_label("Folder")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Folder").fill(str(library))
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#location-error")).to_contain_text(f"Connected to {library}")
    expect(page.locator("#location-error")).to_contain_text("free of")
    w.shot("03-add-source")
    expect(page.get_by_label("Scan it now")).to_be_checked()  # on by default; this test scans by hand
    page.get_by_label("Scan it now").uncheck()
    page.get_by_role("button", name="Add source").click()
    card = page.locator('article[data-source="studio"]')
    expect(card).to_be_visible()
    expect(card.locator(".badge")).to_have_text("online")

    # Scan it and watch it finish, without reloading the page.
    page.evaluate("window.stillTheSamePage = true")
    card.get_by_role("button", name="Scan now").click()
    expect(page.locator("#flash")).to_contain_text("Scan of studio")
    finished = page.locator('table.recent-scans tr[data-status="completed"]')
    expect(finished).to_have_count(1, timeout=60_000)
    assert page.evaluate("window.stillTheSamePage") is True
    # Files are counted at once; media per source is remade in the background at most every 10 s.
    expect(card.locator("dd").nth(1)).to_contain_text("4")
    expect(card.locator("dd").first).to_have_text("4", timeout=30_000)
    w.shot("04-dashboard-scanned")
    card.get_by_role("link", name=re.compile("completed")).click()
    expect(page.get_by_role("heading", name=re.compile("Scan 1 of studio"))).to_be_visible()
    expect(page.locator("dl.meta")).to_contain_text("New")
    w.shot("04b-scan")
    page.go_back()

    # Browse: four tiles, each thumbnail a real picture, not a placeholder for the videos and the photo.
    page.get_by_role("link", name="Media", exact=True).click()
    tiles = page.locator("#grid li.tile")
    expect(tiles).to_have_count(4)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    for tile in tiles.all():
        if "audio" in (tile.get_attribute("class") or ""):
            continue
        src = tile.locator("img").get_attribute("src")
        assert src is not None
        answer = context.request.get(src)
        assert answer.ok and answer.headers["content-type"] == "image/webp"
        assert "x-mediamesh-placeholder" not in answer.headers, tile.inner_text()
    w.shot("05-media")
    page.get_by_role("link", name="Duplicates").click()
    expect(page.get_by_text("No media match")).to_be_visible()
    page.get_by_role("link", name="Reachable now").click()
    expect(tiles).to_have_count(4)
    page.get_by_role("link", name="All", exact=True).click()
    page.get_by_label("Kind").select_option("video")
    page.get_by_role("button", name="Filter").click()
    expect(tiles).to_have_count(2)
    page.get_by_label("Search names and folders").fill("interview")
    page.get_by_role("button", name="Filter").click()
    expect(tiles).to_have_count(1)

    # Open the video and see it play (the content URL with Range, through the session cookie).
    tiles.first.locator("a").click()
    expect(page.get_by_role("heading", name="interview.mp4")).to_be_visible()
    video = page.locator("video#player")
    expect(video).to_be_visible()
    page.evaluate("document.getElementById('player').muted = true; document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.5", timeout=20_000)
    expect(page.get_by_text("Projects/Alpha/interview.mp4")).to_be_visible()
    w.shot("06-media-detail")

    # A template rule: the live preview says what it would make, then the projects appear.
    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Path with {project}").fill("Projects/{project}/**")
    expect(page.locator("#tpl-preview")).to_contain_text("Would make 2 projects with 3 media")
    page.get_by_role("button", name="Add template").click()
    expect(page.locator('tr[data-project="Alpha"]')).to_be_visible()
    expect(page.locator('tr[data-project="Beta"]')).to_be_visible()
    expect(page.locator('tr[data-project="Alpha"] td').nth(1)).to_have_text("2")

    # A rule with a live count: every audio file.
    page.get_by_label("Name", exact=True).fill("Sound")
    page.locator("#project-form").get_by_label("audio").check()
    expect(page.locator("#new-preview")).to_contain_text("Matches 1 media")
    w.shot("07-projects")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Sound")).to_be_visible()
    expect(page.locator("ul.grid li.tile")).to_have_count(1)

    # The project's rule editor: a second rule by extension (live count), then the first rule removed.
    page.get_by_label("Extensions").fill("jpg")
    expect(page.locator("#rule-preview")).to_contain_text("Matches 1 media")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("ul.grid li.tile")).to_have_count(2)
    expect(page.locator("ul.rules li")).to_have_count(2)
    w.shot("08-project")
    page.locator("ul.rules li").first.get_by_role("button", name="Remove").click()
    expect(page.locator("ul.rules li")).to_have_count(1)
    expect(page.locator("ul.rules")).to_contain_text(".jpg")
    expect(page.locator("ul.grid li.tile")).to_have_count(1)

    # The video's page now says which projects it is in, and why.
    page.goto("/media?q=interview")
    page.locator("#grid li.tile a").first.click()
    expect(page.locator("ul.reasons")).to_contain_text("template Projects/{project}/**")

    # Tokens: create one (shown once), then revoke it.
    page.get_by_role("link", name="Tokens").click()
    page.get_by_label("Name").fill("living-room tv")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create").click()
    value = page.locator("#new-token-value")
    expect(value).to_contain_text("mm_")
    tv_token = value.inner_text()
    row = page.locator("table.tokens tr", has_text="living-room tv")
    expect(row).to_contain_text("active")
    # A token for a guest's laptop: limited to one project, it opens the WebDAV view and nothing else.
    expect(page.locator("#dav-h + p code.copyable")).to_have_text(f"{server.base}/dav/")
    page.get_by_label("Name").fill("guest laptop")
    page.get_by_text("Limit a read token").click()
    page.get_by_label("Projects", exact=True).select_option("Beta")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("table.tokens tr", has_text="guest laptop")).to_contain_text(
        "projects Beta (WebDAV only)"
    )
    guest = page.locator("#new-token-value").inner_text()
    w.shot("09-tokens")
    headers = {"Authorization": f"Bearer {guest}", "Depth": "1"}
    listing = context.request.fetch("/dav/projects/", method="PROPFIND", headers=headers)
    assert listing.status == 207 and "/dav/projects/Beta/" in listing.text() and "Alpha" not in listing.text()
    assert context.request.get("/api/v1/sources", headers={"Authorization": f"Bearer {guest}"}).status == 403
    # The same folder in a browser, signed in as a file manager would (HTTP Basic): a plain, inert listing.
    laptop = browser.new_context(
        base_url=server.base, http_credentials={"username": "guest", "password": guest}
    )
    folder = laptop.new_page()
    folder.goto("/dav/projects/Beta/")
    expect(folder.get_by_role("link", name="b-roll.mp4")).to_be_visible()
    folder.screenshot(path=str(ARTIFACTS / "13-webdav-folder.png"))
    played, hidden = folder.goto("/dav/projects/Beta/b-roll.mp4"), folder.goto("/dav/projects/Alpha/")
    assert played is not None and played.headers["content-type"] == "video/mp4"
    assert hidden is not None and hidden.status == 404
    laptop.close()
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("table.tokens tr", has_text="living-room tv")).to_contain_text("revoked")
    assert (
        context.request.get("/api/v1/sources", headers={"Authorization": f"Bearer {tv_token}"}).status == 401
    )

    # Edit the source (its form is filled in), then sign out.
    page.get_by_role("link", name="Dashboard").click()
    page.locator('article[data-source="studio"]').get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Folder")).to_have_value(str(library))
    w.shot("10-edit-source")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.base}/sign-in")
    page.goto("/media")
    expect(page).to_have_url(f"{server.base}/sign-in?next=%2Fmedia")
    assert w.errors == []
    context.close()


def test_the_pages_fit_a_phone(server: Server, library: Path, browser: Browser) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=server.base, is_mobile=True
    )
    w = Watched(context.new_page())
    page = w.page
    page.goto("/sign-in")
    page.get_by_label("Token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    checked: dict[str, Any] = {}
    for name, path in (
        ("dashboard", "/"),
        ("media", "/media"),
        ("projects", "/projects"),
        ("tokens", "/tokens"),
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        checked[name] = no_horizontal_scroll(page)
        w.shot(f"phone-{name}")
    first = page.goto("/media")
    assert first is not None and first.ok
    tile = page.locator("#grid li.tile a").first
    if tile.count():
        tile.click()
        checked["detail"] = no_horizontal_scroll(page)
        w.shot("phone-media-detail")
    assert all(checked.values()), checked
    assert w.errors == []
    context.close()


def test_keyboard_reaches_every_control_with_a_visible_focus(server: Server, browser: Browser) -> None:
    context = browser.new_context(base_url=server.base)
    w = Watched(context.new_page())
    page = w.page
    page.goto("/sign-in")
    page.get_by_label("Token").fill(server.admin_token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.goto("/media")
    labelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .every(el => el.labels && el.labels.length > 0)"""
    )
    assert labelled
    assert w.errors == []
    context.close()


def test_adding_an_smb_share_explains_a_wrong_password_and_keeps_the_stored_one(
    server: Server, browser: Browser, samba: Any
) -> None:
    from tests.servers.samba import PASSWORD, SHARE, USER

    folder = samba.share_dir / "ui-test"
    h264_mp4(folder / "clip.mp4", seconds=1.0)
    context = browser.new_context(base_url=server.base)
    w = Watched(context.new_page())
    page = w.page
    page.goto("/sign-in")
    page.get_by_label("Token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/sources/new")
    page.get_by_role("link", name="SMB share").click()
    page.get_by_label("Name").fill("nas")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(samba.port))
    page.get_by_label("Share", exact=True).fill(SHARE)
    page.get_by_label("Folder in the share").fill("ui-test")
    page.get_by_label("User").fill(USER)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#location-error")
    expect(result).to_contain_text("✗", timeout=20_000)
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Host")).not_to_have_attribute("aria-invalid", "true")
    w.shot("11-smb-wrong-password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    expect(result).to_contain_text(f"Connected to smb://{USER}@127.0.0.1:{samba.port}/{SHARE}/ui-test")
    page.get_by_role("button", name="Add source").click()  # and scanned at once (the box is ticked)
    expect(page.locator('article[data-source="nas"] .badge')).to_have_text("online")
    nas_scan = page.locator('table.recent-scans tr[data-status="completed"]', has_text="nas")
    expect(nas_scan).to_have_count(1, timeout=60_000)

    # Editing: the fields come back apart, the password is never shown, and testing uses the stored one.
    page.goto("/sources/nas/edit")
    expect(page.get_by_label("Host")).to_have_value("127.0.0.1")
    expect(page.get_by_label("Folder in the share")).to_have_value("ui-test")
    expect(page.get_by_label("Password")).to_have_value("")
    assert PASSWORD not in page.content()
    page.get_by_role("button", name="Test connection").click()
    expect(result).to_contain_text("Connected to")
    page.get_by_text("Schedule and filters").click()
    page.get_by_label("Scan schedule").fill("every tuesday")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#schedule-error")).to_be_visible()
    expect(page.get_by_label("Scan schedule")).to_have_attribute("aria-invalid", "true")
    w.expected_refusal(422, "/api/v1/sources/nas")
    page.get_by_label("Scan schedule").fill("6h")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('article[data-source="nas"]')).to_contain_text("6h")

    # Unmount (the NAS goes away for maintenance) and mount again: nothing is lost either way.
    page.goto("/sources/nas/edit")
    page.get_by_role("button", name="Unmount").click()
    expect(page.get_by_role("button", name="Mount again")).to_be_visible()
    page.goto("/")
    expect(page.locator('article[data-source="nas"] .badge')).to_have_text("unmounted")
    page.goto("/sources/nas/edit")
    page.get_by_role("button", name="Mount again").click()
    expect(page.get_by_role("button", name="Unmount")).to_be_visible()
    assert w.errors == []
    context.close()


def test_adding_an_sftp_folder_with_a_key_shows_the_host_key_it_trusts(
    server: Server, browser: Browser, sshd: Any
) -> None:
    from tests.servers.openssh import USER

    folder = sshd.share_dir / "ui-sftp"
    h264_mp4(folder / "clip.mp4", seconds=1.0)
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    context = browser.new_context(base_url=server.base)
    w = Watched(context.new_page())
    page = w.page
    page.goto("/sign-in")
    page.get_by_label("Token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/sources/new")
    page.get_by_role("link", name="SFTP folder").click()
    page.get_by_label("Name").fill("box")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port").fill(str(sshd.port))
    page.get_by_label("Folder", exact=True).fill(str(folder))
    page.get_by_label("User").fill(USER)
    page.get_by_label("Private key").fill(sshd.client_key.read_text())
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#location-error")
    fingerprint = sshd.host_key_fingerprint()
    expect(result).to_contain_text(f"host key {fingerprint}", timeout=20_000)
    w.shot("12-sftp-host-key")
    page.get_by_role("button", name="Add source").click()
    expect(page.locator('article[data-source="box"] .badge')).to_have_text("online")
    expect(page.locator('table.recent-scans tr[data-status="completed"]', has_text="box")).to_have_count(
        1, timeout=60_000
    )
    # The key trusted on first use is in the stored location, and editing shows it; the key text never.
    page.goto("/sources/box/edit")
    expect(page.get_by_label("Host key fingerprint")).to_have_value(fingerprint)
    assert sshd.client_key.read_text().splitlines()[1] not in page.content()
    assert w.errors == []
    context.close()
