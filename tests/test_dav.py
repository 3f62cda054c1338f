"""The WebDAV view (/dav/) through the app: the tree and its names, PROPFIND as RFC 4918 says, content
through the content endpoint's code, nothing that writes, and tokens (also limited ones) as the only key.
Real clients (rclone, litmus, a FUSE mount) are in test_dav_clients.py."""

from __future__ import annotations

import base64
import os
import shutil
import unicodedata
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from mediamesh.server import create_app
from mediamesh.services import namespace
from mediamesh.services import projects as project_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write
from tests.test_api_content import add_and_scan, ctx_of

D = "{DAV:}"


def basic(token: str, user: str = "kodi") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
def app_client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, db_url))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        _, value = token_svc.create_token(app.state.ctx, "player", "read")
        client.headers.update(basic(value))
        yield client


def propfind(
    client: TestClient, url: str, depth: str = "1", body: str = "", **headers: str
) -> ElementTree.Element:
    response = client.request("PROPFIND", url, headers={"Depth": depth, **headers}, content=body)
    assert response.status_code == 207, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ElementTree.fromstring(response.content)


def entries(root: ElementTree.Element) -> dict[str, dict[str, str | None]]:
    """href (decoded) -> {property: text} of the 200 propstat."""
    out: dict[str, dict[str, str | None]] = {}
    for resp in root.findall(f"{D}response"):
        href = unquote(resp.findtext(f"{D}href") or "")
        props: dict[str, str | None] = {}
        for propstat in resp.findall(f"{D}propstat"):
            if "200" not in (propstat.findtext(f"{D}status") or ""):
                continue
            for prop in propstat.find(f"{D}prop") or []:
                name = prop.tag.removeprefix(D)
                props[name] = "collection" if prop.find(f"{D}collection") is not None else prop.text
        out[href] = props
    return out


def names(root: ElementTree.Element, folder: str) -> list[str]:
    """The entries of a depth-1 answer below ``folder`` (folders end with /)."""
    return sorted(h[len(folder) :] for h in entries(root) if h != folder)


@pytest.fixture
def lib(app_client: TestClient, tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    write(root / "Shoot" / "clip one.mp4", 30_000)
    write(root / "Shoot" / "deep" / "c.mp4", 1000)
    write(root / "Shoot-x" / "b.jpg", 2000)  # sorts between "Shoot" and "Shoot/": a sibling, not a child
    write(root / "Shoot.old" / "d.jpg", 2100)
    write(root / "top #1 50%.mp3", 500)
    add_and_scan(app_client, "lib", root)
    return root


def test_the_tree_of_a_source_lists_each_folder_once_with_its_files(
    app_client: TestClient, lib: Path
) -> None:
    top = propfind(app_client, "/dav/")
    assert names(top, "/dav/") == ["duplicates/", "media/", "projects/", "sources/"]
    assert names(propfind(app_client, "/dav/sources/"), "/dav/sources/") == ["lib/"]
    root = propfind(app_client, "/dav/sources/lib/")
    assert names(root, "/dav/sources/lib/") == ["Shoot-x/", "Shoot.old/", "Shoot/", "top #1 50%.mp3"]
    shoot = propfind(app_client, "/dav/sources/lib/Shoot/")
    assert names(shoot, "/dav/sources/lib/Shoot/") == ["clip one.mp4", "deep/"]
    assert names(propfind(app_client, "/dav/sources/lib/Shoot/deep/"), "/dav/sources/lib/Shoot/deep/") == [
        "c.mp4"
    ]


def test_file_properties_come_from_the_catalog(app_client: TestClient, lib: Path) -> None:
    clip = lib / "Shoot" / "clip one.mp4"
    found = entries(propfind(app_client, "/dav/sources/lib/Shoot/clip%20one.mp4", depth="0"))
    props = found["/dav/sources/lib/Shoot/clip one.mp4"]
    assert props["getcontentlength"] == "30000"
    assert props["getetag"] == f'"{b3sum(clip)[clip]}"'
    assert props["getcontenttype"] == "video/mp4"
    assert props["displayname"] == "clip one.mp4"
    modified = parsedate_to_datetime(props["getlastmodified"] or "")
    assert int(modified.timestamp()) == int(clip.stat().st_mtime)
    assert "resourcetype" in props and props["resourcetype"] is None  # a file: an empty resourcetype
    folder = entries(propfind(app_client, "/dav/sources/lib/Shoot/", depth="0"))
    assert folder == {"/dav/sources/lib/Shoot/": {"displayname": "Shoot", "resourcetype": "collection"}}


def test_prop_and_propname_requests(app_client: TestClient, lib: Path) -> None:
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:example">'
        "<D:prop><D:getcontentlength/><Z:rating/><D:getetag/></D:prop></D:propfind>"
    )
    response = app_client.request(
        "PROPFIND", "/dav/sources/lib/top%20%231%2050%25.mp3", headers={"Depth": "0"}, content=body
    )
    root = ElementTree.fromstring(response.content)
    [resp] = root.findall(f"{D}response")
    statuses = {
        ps.findtext(f"{D}status"): [p.tag for p in ps.find(f"{D}prop") or []]
        for ps in resp.findall(f"{D}propstat")
    }
    assert statuses["HTTP/1.1 200 OK"] == [f"{D}getcontentlength", f"{D}getetag"]
    assert statuses["HTTP/1.1 404 Not Found"] == ["{urn:example}rating"]
    names_only = app_client.request(
        "PROPFIND",
        "/dav/sources/lib/",
        headers={"Depth": "0"},
        content='<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    )
    prop = ElementTree.fromstring(names_only.content).find(f"{D}response/{D}propstat/{D}prop")
    assert prop is not None and all(not list(p) and not p.text for p in prop)


@pytest.mark.parametrize("depth", ["infinity", None, "2"])
def test_depth_infinity_is_refused(app_client: TestClient, lib: Path, depth: str | None) -> None:
    headers = {"Depth": depth} if depth is not None else {}
    response = app_client.request("PROPFIND", "/dav/sources/", headers=headers)
    assert response.status_code == 403
    assert ElementTree.fromstring(response.content).find(f"{D}propfind-finite-depth") is not None


@pytest.mark.parametrize(
    "body",
    [
        "<foo>",  # not well formed (litmus propfind_invalid)
        '<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>',  # propfind_invalid2
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop>&b;</D:prop></D:propfind>',  # entities: never expanded
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:">&e;</D:propfind>',
        "<x/>",
    ],
)
def test_bad_propfind_bodies_are_400(app_client: TestClient, lib: Path, body: str) -> None:
    response = app_client.request("PROPFIND", "/dav/sources/", headers={"Depth": "0"}, content=body)
    assert response.status_code == 400, response.text
    assert "passwd" not in response.text and "root:" not in response.text


def test_a_huge_propfind_body_is_refused(app_client: TestClient, lib: Path) -> None:
    body = '<D:propfind xmlns:D="DAV:"><D:prop>' + "<D:getetag/>" * 20_000 + "</D:prop></D:propfind>"
    response = app_client.request("PROPFIND", "/dav/sources/", headers={"Depth": "0"}, content=body)
    assert response.status_code == 413


def test_get_head_and_range_go_through_the_content_endpoint(app_client: TestClient, lib: Path) -> None:
    clip = lib / "Shoot" / "clip one.mp4"
    media_id = b3sum(clip)[clip]
    url = "/dav/sources/lib/Shoot/clip%20one.mp4"
    whole = app_client.get(url)
    assert whole.status_code == 200 and whole.content == clip.read_bytes()
    assert whole.headers["etag"] == f'"{media_id}"'
    assert whole.headers["content-security-policy"].startswith("sandbox")
    assert whole.headers["x-content-type-options"] == "nosniff"
    part = app_client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == clip.read_bytes()[100:200]
    head = app_client.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "30000"
    assert app_client.get(url, headers={"If-None-Match": f'"{media_id}"'}).status_code == 304


def test_a_share_file_never_runs_in_the_browser(app_client: TestClient, tmp_path: Path) -> None:
    write(
        tmp_path / "evil" / "x.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    )
    write(tmp_path / "evil" / "<img src=x onerror=alert(1)>.jpg", b"<script>alert(2)</script>")
    add_and_scan(app_client, "evil", tmp_path / "evil")
    svg = app_client.get("/dav/sources/evil/x.svg")
    assert svg.headers["content-type"] == "application/octet-stream"
    assert svg.headers["content-disposition"].startswith("attachment")
    page = app_client.get("/dav/sources/evil/")  # a folder in a browser: a listing that runs nothing
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("sandbox")
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;.jpg" in page.text


def test_every_view_of_the_same_content(app_client: TestClient, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    one = write(tmp_path / "one" / "Trip" / "a.mov", data)
    write(tmp_path / "two" / "backup" / "a copy.mov", data)
    write(tmp_path / "two" / "other.mov", 3000)
    add_and_scan(app_client, "one", tmp_path / "one")
    add_and_scan(app_client, "two", tmp_path / "two")
    media_id = b3sum(one)[one]

    listed = names(propfind(app_client, "/dav/media/"), "/dav/media/")
    assert f"{media_id}.mov" in listed and len(listed) == 2
    assert app_client.get(f"/dav/media/{media_id}.mov").content == data

    groups = names(propfind(app_client, "/dav/duplicates/"), "/dav/duplicates/")
    assert groups == [f"a ({media_id[:12]})/"]
    group = f"/dav/duplicates/a ({media_id[:12]})/"
    assert names(propfind(app_client, group), group) == ["one - a.mov", "two - a copy.mov"]
    copy = app_client.get(group + "two - a copy.mov")
    assert copy.content == data and copy.headers["x-mediamesh-source"] == "two"


def test_a_copy_that_cannot_be_read_is_served_from_another_and_503_names_them_all(
    app_client: TestClient, tmp_path: Path
) -> None:
    data = os.urandom(20_000)
    write(tmp_path / "one" / "a.mov", data)
    write(tmp_path / "two" / "b.mov", data)
    add_and_scan(app_client, "one", tmp_path / "one")
    add_and_scan(app_client, "two", tmp_path / "two")
    source_svc.set_mounted(ctx_of(app_client), "one", False)
    url = "/dav/sources/one/a.mov"
    # An unmounted source keeps its listing; its file plays from the copy that can be read.
    assert names(propfind(app_client, "/dav/sources/one/"), "/dav/sources/one/") == ["a.mov"]
    served = app_client.get(url)
    assert (served.status_code, served.headers["x-mediamesh-source"], served.content) == (200, "two", data)
    shutil.move(tmp_path / "two", tmp_path / "two-gone")
    gone = app_client.get(url)
    assert gone.status_code == 503
    message = gone.json()["error"]["message"]
    assert "one (unmounted)" in message and "two" in message


def test_an_offline_source_keeps_its_last_listing(app_client: TestClient, tmp_path: Path) -> None:
    write(tmp_path / "nas" / "Film" / "x.mkv", 5000)
    add_and_scan(app_client, "nas", tmp_path / "nas")
    shutil.move(tmp_path / "nas", tmp_path / "nas-unplugged")
    assert names(propfind(app_client, "/dav/sources/nas/Film/"), "/dav/sources/nas/Film/") == ["x.mkv"]
    assert app_client.get("/dav/sources/nas/Film/x.mkv").status_code == 503


def test_projects_are_laid_out_below_the_template_folder_and_flat_by_hand(
    app_client: TestClient, tmp_path: Path
) -> None:
    root = tmp_path / "work"
    write(root / "Projects" / "Alpha" / "day1" / "a.mp4", 1000)
    write(root / "Projects" / "Alpha" / "b.jpg", 1100)
    loose = write(root / "Misc" / "c.mp4", 1200)
    same_name = write(root / "Elsewhere" / "day1" / "a.mp4", 1300)  # lands on "day1/a.mp4" too, by a rule
    add_and_scan(app_client, "work", root)
    ctx = ctx_of(app_client)
    project_svc.add_template(ctx, "Projects/{project}/**")
    project_svc.add_media(ctx, "Alpha", b3sum(loose)[loose])
    project_svc.update_project(ctx, "Alpha", rules=[{"path": "Elsewhere/**"}])
    project_svc.apply_rules(ctx)
    assert names(propfind(app_client, "/dav/projects/"), "/dav/projects/") == ["Alpha/"]
    assert names(propfind(app_client, "/dav/projects/Alpha/"), "/dav/projects/Alpha/") == [
        "b.jpg",
        "c.mp4",
        "day1/",
    ]
    tag = b3sum(same_name)[same_name][:8]
    day1 = names(propfind(app_client, "/dav/projects/Alpha/day1/"), "/dav/projects/Alpha/day1/")
    assert day1 == sorted(["a.mp4", f"a ({tag}).mp4"])
    assert app_client.get(f"/dav/projects/Alpha/day1/a ({tag}).mp4").content == same_name.read_bytes()
    assert app_client.get("/dav/projects/Alpha/c.mp4").content == loose.read_bytes()


def test_names_from_the_share_round_trip(app_client: TestClient, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "Café")
    weird = ["a#b?c.mp4", "50% off.jpg", "x;y=z&w.mp3", "ctl\x01name.mp4", f"{nfd}.mov"]
    for name in weird:
        write(tmp_path / "w" / name, 100 + len(name))
    add_and_scan(app_client, "w", tmp_path / "w")
    root = propfind(app_client, "/dav/sources/w/")
    listed = names(root, "/dav/sources/w/")
    assert sorted(unicodedata.normalize("NFC", n) for n in listed) == sorted(
        unicodedata.normalize("NFC", n) for n in weird
    )
    shown = {p["displayname"] for p in entries(root).values()}
    assert "ctl\ufffdname.mp4" in shown  # XML cannot hold U+0001: shown replaced, the href keeps it
    raw = [h.text or "" for h in root.iter(f"{D}href")]
    assert all("#" not in h and "?" not in h and " " not in h for h in raw)  # percent-encoded, every one
    for href in raw[1:]:
        assert app_client.get(href).status_code == 200, href
    nfc_request = app_client.get("/dav/sources/w/Caf%C3%A9.mov")  # a Mac asks in NFD, Linux in NFC: both
    assert nfc_request.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/dav/sources/lib/../../../../etc/passwd",
        "/dav/sources/lib/%2e%2e/%2e%2e/etc/passwd",
        "/dav/sources/lib/Shoot%2Fclip%20one.mp4",
        "/dav/sources/lib/Shoot/clip%20one.mp4%00",
        "/dav/sources/nope/",
        "/dav/nothing/",
    ],
)
def test_paths_never_leave_the_catalog(app_client: TestClient, lib: Path, url: str) -> None:
    response = app_client.get(url)
    assert response.status_code == 404, response.text
    assert b"root:" not in response.content


def test_a_name_that_is_not_utf8_is_400(app_client: TestClient, lib: Path) -> None:
    assert app_client.get("/dav/sources/lib/%ff%fe.mp4").status_code == 400


@pytest.mark.parametrize(
    "method", ["PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST"]
)
def test_nothing_writes(app_client: TestClient, lib: Path, method: str) -> None:
    before = sorted((p.relative_to(lib), p.stat().st_mtime_ns) for p in lib.rglob("*"))
    response = app_client.request(
        method,
        "/dav/sources/lib/Shoot/clip%20one.mp4",
        content=b"overwritten",
        headers={"Destination": "http://testserver/dav/sources/lib/moved.mp4", "Depth": "0"},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "OPTIONS, GET, HEAD, PROPFIND"
    assert "read-only" in response.json()["error"]["message"]
    assert sorted((p.relative_to(lib), p.stat().st_mtime_ns) for p in lib.rglob("*")) == before


def test_options_says_class_1_to_anyone(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        response = client.options("/dav/")
    assert response.status_code == 200
    assert response.headers["dav"] == "1"
    assert "PROPFIND" in response.headers["allow"] and "PUT" not in response.headers["allow"]


def test_a_token_is_needed_as_basic_or_bearer_never_a_cookie(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        _, value = token_svc.create_token(app.state.ctx, "tv", "read")
        for headers in ({}, basic("mm_wrong"), {"Authorization": "Basic !!!"}, {"Authorization": "Digest x"}):
            response = client.request("PROPFIND", "/dav/", headers={**headers, "Depth": "0"})
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith('Basic realm="mediamesh"')
        assert client.get("/dav/", headers={}).status_code == 401
        assert client.request("PROPFIND", "/dav/", headers={**basic(value), "Depth": "0"}).status_code == 207
        bearer = {"Authorization": f"Bearer {value}", "Depth": "0"}
        assert client.request("PROPFIND", "/dav/", headers=bearer).status_code == 207
        # Signed in to the UI: the session cookie opens pages, not the WebDAV view.
        client.post("/sign-in", data={"token": value, "next": "/"}, follow_redirects=False)
        assert client.cookies
        assert client.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 401


def test_a_limited_token_sees_only_its_sources_and_projects_and_only_here(
    app_client: TestClient, tmp_path: Path
) -> None:
    write(tmp_path / "kids" / "cartoon.mp4", 1000)
    secret = write(tmp_path / "private" / "secret.mp4", 1100)
    write(tmp_path / "private" / "Projects" / "Holiday" / "beach.jpg", 1200)
    add_and_scan(app_client, "kids", tmp_path / "kids")
    add_and_scan(app_client, "private", tmp_path / "private")
    ctx = ctx_of(app_client)
    project_svc.add_template(ctx, "Projects/{project}/**")
    project_svc.create_project(ctx, "Taxes")
    token, value = token_svc.create_token(
        ctx, "kids tv", "read", source_names=["kids"], project_names=["Holiday"]
    )
    assert token["limits"] == {"sources": ["kids"], "projects": ["Holiday"]}
    tv = {**basic(value), "Depth": "1"}
    assert names(propfind(app_client, "/dav/", **tv), "/dav/") == ["projects/", "sources/"]
    assert names(propfind(app_client, "/dav/sources/", **tv), "/dav/sources/") == ["kids/"]
    assert names(propfind(app_client, "/dav/projects/", **tv), "/dav/projects/") == ["Holiday/"]
    assert app_client.get("/dav/projects/Holiday/beach.jpg", headers=basic(value)).status_code == 200
    for hidden in (
        "/dav/sources/private/",
        "/dav/sources/private/secret.mp4",
        "/dav/projects/Taxes/",
        "/dav/media/",
        f"/dav/media/{b3sum(secret)[secret]}.mp4",
        "/dav/duplicates/",
    ):
        assert app_client.request("PROPFIND", hidden, headers=tv).status_code == 404, hidden
        assert app_client.get(hidden, headers=basic(value)).status_code == 404, hidden
    # The same token opens nothing else: not the API, not a signed link, not the UI.
    bearer = {"Authorization": f"Bearer {value}"}
    refused = app_client.get("/api/v1/media", headers=bearer)
    assert refused.status_code == 403 and "WebDAV" in refused.json()["error"]["message"]
    assert app_client.post(f"/api/v1/media/{b3sum(secret)[secret]}/link", headers=bearer).status_code == 403
    sign_in = app_client.post("/sign-in", data={"token": value, "next": "/"}, follow_redirects=False)
    assert sign_in.status_code == 403 and "set-cookie" not in sign_in.headers


def test_limits_are_checked_when_a_token_is_made(app_client: TestClient, lib: Path) -> None:
    ctx = ctx_of(app_client)
    with pytest.raises(Exception, match="only a read token"):
        token_svc.create_token(ctx, "x", "write", source_names=["lib"])
    with pytest.raises(Exception, match="no source named 'nas'"):
        token_svc.create_token(ctx, "x", "read", source_names=["nas"])
    with pytest.raises(Exception, match="no project named 'Nope'"):
        token_svc.create_token(ctx, "x", "read", project_names=["Nope"])


def test_a_large_folder_comes_in_pages_and_every_entry_once(
    app_client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(namespace, "PAGE", 7)
    for i in range(40):
        write(tmp_path / "big" / f"f{i:03}.jpg", 100 + i)
    for i in range(9):
        write(tmp_path / "big" / f"d{i}" / "x.jpg", 300 + i)
    add_and_scan(app_client, "big", tmp_path / "big")
    pages = list(app_client.app.state.namespace.children(["sources", "big"], namespace.View()))  # type: ignore[attr-defined]
    assert len(pages) > 6 and all(len(p) <= 7 for p in pages)
    listed = names(propfind(app_client, "/dav/sources/big/"), "/dav/sources/big/")
    assert listed == sorted([f"d{i}/" for i in range(9)] + [f"f{i:03}.jpg" for i in range(40)])
    media = names(propfind(app_client, "/dav/media/"), "/dav/media/")
    assert len(media) == 49 == len(set(media))


def test_limited_tokens_from_the_api_and_their_errors(app_client: TestClient, lib: Path) -> None:
    ctx = ctx_of(app_client)
    _, admin = token_svc.create_token(ctx, "admin", "admin")
    bearer = {"Authorization": f"Bearer {admin}"}
    made = app_client.post(
        "/api/v1/tokens", json={"name": "tv", "scope": "read", "sources": ["lib"]}, headers=bearer
    )
    assert made.status_code == 201 and made.json()["limits"] == {"sources": ["lib"], "projects": []}
    tv = {**basic(made.json()["token"]), "Depth": "1"}
    assert names(propfind(app_client, "/dav/", **tv), "/dav/") == ["sources/"]
    listed = app_client.get("/api/v1/tokens", headers=bearer).json()["data"]
    assert [t["limits"] for t in listed if t["name"] == "tv"] == [{"sources": ["lib"], "projects": []}]
    for body, message in (
        ({"name": "x", "scope": "write", "sources": ["lib"]}, "only a read token"),
        ({"name": "x", "scope": "read", "projects": ["Nope"]}, "no project named 'Nope'"),
    ):
        refused = app_client.post("/api/v1/tokens", json=body, headers=bearer)
        assert refused.status_code == 422 and message in refused.json()["error"]["message"]


def test_limited_tokens_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mediamesh.cli.main import app as cli

    monkeypatch.setenv("MEDIAMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MEDIAMESH_DATABASE_URL", raising=False)
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "--name", "tv", "--scope", "read", "--project", "Nope"])
    assert created.exit_code == 2 and "no project named 'Nope'" in created.stderr
    assert runner.invoke(cli, ["project", "add", "Holiday"]).exit_code == 0
    created = runner.invoke(
        cli, ["token", "create", "--name", "tv", "--scope", "read", "--project", "Holiday"]
    )
    assert created.exit_code == 0, created.stderr
    assert "limited to projects Holiday (WebDAV only)" in created.stdout
    assert created.stdout.strip().splitlines()[-1].startswith("mm_")
    listed = runner.invoke(cli, ["token", "list"], env={"COLUMNS": "200"})
    assert "projects Holiday (WebDAV only)" in listed.stdout


def test_folders_are_told_apart_whatever_the_databases_collation(
    app_client: TestClient, tmp_path: Path
) -> None:
    """On PostgreSQL with a collation that does not sort by bytes (the tests' database is ICU en-US),
    "A/sub" sorts between "a/" and "a0": a folder's range must still hold only that folder."""
    root = tmp_path / "case"
    for i in range(20):  # enough that one file more or less missing is under the scan's safety threshold
        write(root / "a" / f"y{i:02}.jpg", 100 + i)
    write(root / "A" / "sub" / "x.jpg", 200)
    write(root / "a-b" / "z.jpg", 300)
    add_and_scan(app_client, "case", root)
    assert names(propfind(app_client, "/dav/sources/case/"), "/dav/sources/case/") == ["A/", "a-b/", "a/"]
    assert names(propfind(app_client, "/dav/sources/case/a/"), "/dav/sources/case/a/") == [
        f"y{i:02}.jpg" for i in range(20)
    ]
    assert names(propfind(app_client, "/dav/sources/case/A/"), "/dav/sources/case/A/") == ["sub/"]
    # A scan of one folder leaves the other's files alone (they are outside its scope, not missing).
    scan = run_scan(ctx_of(app_client), "case", path="a")
    assert (scan["status"], scan["files_missing"]) == ("completed", 0)
    assert names(propfind(app_client, "/dav/sources/case/A/sub/"), "/dav/sources/case/A/sub/") == ["x.jpg"]
