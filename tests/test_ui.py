"""The web UI without a browser: sign-in and sessions, CSRF, what each scope is offered, every page renders
from a real catalog, and bad input gives a page with a message (the browser tests are in test_ui_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediamesh.context import Context
from mediamesh.server import create_app
from mediamesh.services import projects as project_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write

LOCAL = ("127.0.0.1", 40000)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[TestClient, Context]]:
    library = tmp_path / "library"
    write(library / "Projects" / "Alpha" / "a.mp4", b"alpha video bytes")
    write(library / "Projects" / "Beta" / "b.jpg", b"beta image bytes")
    write(library / "loose" / "c.wav", b"loose audio bytes")
    settings = make_settings(tmp_path, thumbnails="off")
    setup = Context(settings)
    source_svc.add_source(setup, "disk", str(library))
    assert run_scan(setup, "disk")["status"] == "completed"
    setup.close()
    app = create_app(settings)
    with TestClient(app, client=LOCAL, base_url="http://127.0.0.1:8000") as client:
        yield client, app.state.ctx


def sign_in(client: TestClient, ctx: Context, scope: str) -> str:
    """Sign in with a new token of this scope; the page's CSRF token."""
    _, value = token_svc.create_token(ctx, f"{scope} user", scope)
    response = client.post("/sign-in", data={"token": value, "next": "/media"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/media"
    page = client.get("/")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def test_pages_need_a_session_and_sign_in_sets_a_strict_httponly_cookie(
    ui: tuple[TestClient, Context],
) -> None:
    client, ctx = ui
    response = client.get("/media?kind=video", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fmedia%3Fkind%3Dvideo"
    assert client.get("/api/v1/sources").status_code == 401

    _, value = token_svc.create_token(ctx, "me", "read")
    response = client.post("/sign-in", data={"token": value, "next": "/media"}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS the cookie is Secure (see below)
    assert value not in cookie  # the token itself never goes to the browser
    # The cookie now authenticates pages and the API's reads (thumbnails, content, JSON).
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/sources").json()["count"] == 1


def test_a_wrong_token_is_told_plainly_and_open_redirects_are_refused(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    response = client.post("/sign-in", data={"token": "mm_not-a-token"})
    assert response.status_code == 401
    assert "That token is not valid" in response.text
    assert "mm_session" not in response.headers.get("set-cookie", "")
    _, value = token_svc.create_token(ctx, "me", "read")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = client.post("/sign-in", data={"token": value, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/", target
    # A sign-in form posted from another site is refused (login CSRF).
    response = client.post("/sign-in", data={"token": value}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403


def test_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=LOCAL, base_url="https://127.0.0.1:8443") as client:
        _, value = token_svc.create_token(app.state.ctx, "me", "read")
        response = client.post("/sign-in", data={"token": value}, follow_redirects=False)
        assert "Secure" in response.headers["set-cookie"]


def test_changes_with_a_session_need_the_csrf_token(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    csrf = sign_in(client, ctx, "write")
    refused = client.post("/api/v1/sources/disk/check")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert client.post("/api/v1/sources/disk/check", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/api/v1/sources/disk/check", headers={"X-CSRF-Token": csrf}).status_code == 200
    # Sign-out is a change too.
    assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 403
    response = client.post("/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and 'mm_session=""' in response.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_read_token_is_not_offered_what_it_cannot_do(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    sign_in(client, ctx, "read")
    dashboard = client.get("/").text
    assert (
        "Scan now" not in dashboard and "Add a source" not in dashboard and 'href="/tokens"' not in dashboard
    )
    projects = client.get("/projects").text
    assert "New project" not in projects and "Add template" not in projects
    assert client.get("/tokens").status_code == 403
    assert client.get("/sources/new").text.count("needs a write token") == 1


def test_a_write_token_gets_the_actions_but_not_tokens(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    sign_in(client, ctx, "write")
    dashboard = client.get("/").text
    assert "Scan now" in dashboard and "Add a source" in dashboard and 'href="/tokens"' not in dashboard
    assert "New project" in client.get("/projects").text
    assert client.get("/tokens").status_code == 403


def test_revoking_the_token_ends_its_sessions(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    csrf = sign_in(client, ctx, "admin")
    tokens = client.get("/api/v1/tokens").json()["data"]
    mine = next(t for t in tokens if t["name"] == "admin user")
    assert client.delete(f"/api/v1/tokens/{mine['id']}", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/sources").status_code == 401


def test_every_page_renders_from_the_catalog(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    sign_in(client, ctx, "admin")
    project_svc.add_template(ctx, "Projects/{project}/**")
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "default-src 'self'" in dashboard.headers["content-security-policy"]
    assert 'data-source="disk"' in dashboard.text and "completed" in dashboard.text
    live = client.get("/ui/live/dashboard").text
    assert 'data-source="disk"' in live and "<html" not in live

    media = client.get("/media").text
    ids = re.findall(r'href="/media/([0-9a-f]{64})"', media)
    assert len(set(ids)) == 3
    assert "a.mp4" in media and "/api/v1/media/" in media
    video = client.get("/media?kind=video").text
    assert len(set(re.findall(r'href="/media/([0-9a-f]{64})"', video))) == 1
    assert (
        len(set(re.findall(r'href="/media/([0-9a-f]{64})"', client.get("/media?view=reachable").text))) == 3
    )
    assert "No media match" in client.get("/media?view=missing").text
    assert "b.jpg" in client.get("/media?q=beta").text and "a.mp4" not in client.get("/media?q=beta").text

    detail = client.get(f"/media/{ids[0]}").text
    assert "Locations" in detail and "disk" in detail

    projects = client.get("/projects").text
    assert 'data-project="Alpha"' in projects and 'data-project="Beta"' in projects
    alpha = client.get("/projects/Alpha").text
    assert "a.mp4" in alpha and "b.jpg" not in alpha
    assert "Create a token" in client.get("/tokens").text
    scan_page = client.get("/scans/1").text
    assert "Files seen" in scan_page
    assert "Test connection" in client.get("/sources/new?kind=smb").text
    edit = client.get("/sources/disk/edit").text
    assert 'data-edit="disk"' in edit and "Remove source" in edit


def test_paging_through_the_grid(ui: tuple[TestClient, Context], monkeypatch: pytest.MonkeyPatch) -> None:
    client, ctx = ui
    sign_in(client, ctx, "read")
    monkeypatch.setattr("mediamesh.ui.pages.PAGE_SIZE", 2)
    first = client.get("/media").text
    more = re.search(r'data-more="([^"]+)"', first)
    assert more is not None
    rest = client.get(more.group(1).replace("&amp;", "&")).text
    seen = set(re.findall(r'href="/media/([0-9a-f]{64})"', first)) | set(
        re.findall(r'href="/media/([0-9a-f]{64})"', rest)
    )
    assert len(seen) == 3 and "data-more" not in rest


def test_bad_input_is_a_page_with_a_message(ui: tuple[TestClient, Context]) -> None:
    client, ctx = ui
    sign_in(client, ctx, "write")
    cases = {
        "/media/nothex": (422, "is not a media id"),
        "/media/" + "0" * 64: (404, "no media"),
        "/media?view=weird": (422, "unknown view"),
        "/media?taken_after=yesterday": (422, "is not a date"),
        "/media?kind=hologram": (422, "invalid kind"),
        "/media?source=nope": (404, "no source"),
        "/projects/nope": (404, "no project"),
        "/sources/nope/edit": (404, "no source"),
        "/sources/new?kind=ftp": (422, "unknown kind of source"),
        "/scans/999": (404, "no scan"),
        "/nowhere": (404, "Not Found"),
    }
    for url, (status, text) in cases.items():
        response = client.get(url)
        assert response.status_code == status, url
        assert response.headers["content-type"].startswith("text/html"), url
        assert text.lower() in response.text.lower(), (url, response.text[:300])
    # The API keeps answering JSON.
    assert client.get("/api/v1/media/nothex").json()["error"]["code"] == "invalid_input"


def test_testing_a_location_before_saving(ui: tuple[TestClient, Context], tmp_path: Path) -> None:
    client, ctx = ui
    csrf = sign_in(client, ctx, "write")
    headers = {"X-CSRF-Token": csrf}
    ok = client.post("/api/v1/sources/test", json={"location": str(tmp_path / "library")}, headers=headers)
    assert ok.status_code == 200 and ok.json()["reachable"] is True and ok.json()["capacity_bytes"] > 0
    gone = client.post("/api/v1/sources/test", json={"location": str(tmp_path / "nope")}, headers=headers)
    assert gone.status_code == 200 and gone.json()["reachable"] is False and gone.json()["error"]
    bad = client.post("/api/v1/sources/test", json={"location": "ftp://x"}, headers=headers)
    assert bad.status_code == 422 and "unrecognised source location" in bad.json()["error"]["message"]
    assert client.get("/api/v1/sources").json()["count"] == 1  # nothing was saved


def test_how_pages_show_figures() -> None:
    from mediamesh.ui import format as fmt

    assert (fmt.size(None), fmt.size(999), fmt.size(1500), fmt.size(3_200_000_000)) == (
        "–",
        "999 B",
        "1.5 KB",
        "3.2 GB",
    )
    assert (fmt.duration(4.4), fmt.duration(3725), fmt.took(0.42), fmt.took(125)) == (
        "0:04",
        "1:02:05",
        "0.4 s",
        "2:05",
    )
    assert fmt.ago(None) == "never" and fmt.ago("2000-01-01T00:00:00+00:00").endswith("d ago")
    assert (
        fmt.first_name({"id": "ab" * 32, "locations": [{"path": "a/b/clip.mov", "state": "present"}]})
        == "clip.mov"
    )
    lines = fmt.technical(
        {
            "bit_rate": 42220,
            "streams": [{"type": "video", "codec": "h264", "width": 320, "height": 180, "frame_rate": 25.0}],
        }
    )
    assert lines == [("Bit rate", "42 kb/s"), ("Video stream", "h264 · 320×180 · 25 fps")]


def test_edited_media_have_their_view_and_history(ui: tuple[TestClient, Context], tmp_path: Path) -> None:
    client, ctx = ui
    sign_in(client, ctx, "read")
    clip = tmp_path / "library" / "Projects" / "Alpha" / "a.mp4"
    old_id = b3sum(clip)[clip]
    write(clip, b"alpha video, second cut", mtime_offset=-60)
    assert run_scan(ctx, "disk")["files_changed"] == 1
    edited = client.get("/media", params={"view": "replaced"})
    assert edited.status_code == 200 and old_id in edited.text
    assert old_id not in client.get("/media", params={"view": "missing"}).text
    detail = client.get(f"/media/{old_id}").text
    assert "disk:Projects/Alpha/a.mp4" in detail and "held this content until" in detail
    assert b3sum(clip)[clip][:12] in detail
