"""Media served over HTTP from whichever copy can be reached: Range requests, ETags, failover between
sources, 503 naming the sources that cannot be reached, and no way to read outside a source root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediamesh.context import Context
from mediamesh.server import create_app
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as test_client:
        _, value = token_svc.create_token(app.state.ctx, "reader", "read")
        test_client.headers["Authorization"] = f"Bearer {value}"
        yield test_client


def ctx_of(client: TestClient) -> Context:
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    return ctx


def add_and_scan(client: TestClient, name: str, root: Path) -> None:
    source_svc.add_source(ctx_of(client), name, str(root))
    assert run_scan(ctx_of(client), name)["status"] == "completed"


@pytest.fixture
def clip(client: TestClient, tmp_path: Path) -> tuple[Path, str]:
    path = write(tmp_path / "lib" / "Shoot" / "clip one.mp4", 300_000)
    add_and_scan(client, "lib", tmp_path / "lib")
    return path, b3sum(path)[path]


def test_whole_file_with_type_etag_and_length(client: TestClient, clip: tuple[Path, str]) -> None:
    path, media_id = clip
    response = client.get(f"/api/v1/media/{media_id}/content")
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["etag"] == f'"{media_id}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(path.stat().st_size)
    assert "clip%20one.mp4" in response.headers["content-disposition"]
    assert response.headers["x-mediamesh-source"] == "lib"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=1000-1999", 1000, 2000),
        ("bytes=299990-", 299_990, 300_000),
        ("bytes=-10", 299_990, 300_000),
        ("bytes=-999999", 0, 300_000),  # a suffix longer than the file is the whole file
        ("bytes=299000-999999", 299_000, 300_000),
    ],
)
def test_ranges(client: TestClient, clip: tuple[Path, str], header: str, start: int, stop: int) -> None:
    path, media_id = clip
    response = client.get(f"/api/v1/media/{media_id}/content", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == path.read_bytes()[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/300000"
    assert response.headers["content-length"] == str(stop - start)


@pytest.mark.parametrize("header", ["bytes=300000-", "bytes=400000-400010"])
def test_unsatisfiable_range_is_416(client: TestClient, clip: tuple[Path, str], header: str) -> None:
    response = client.get(f"/api/v1/media/{clip[1]}/content", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */300000"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=abc", "lines=1-2", "bytes=5-1"])
def test_malformed_or_multipart_ranges_get_the_whole_file(
    client: TestClient, clip: tuple[Path, str], header: str
) -> None:
    response = client.get(f"/api/v1/media/{clip[1]}/content", headers={"Range": header})
    assert response.status_code == 200 and len(response.content) == 300_000


def test_conditional_requests(client: TestClient, clip: tuple[Path, str]) -> None:
    _, media_id = clip
    url = f"/api/v1/media/{media_id}/content"
    assert client.get(url, headers={"If-None-Match": f'"{media_id}"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    same = client.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{media_id}"'})
    assert same.status_code == 206
    other = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"something-else"'})
    assert other.status_code == 200 and len(other.content) == 300_000


def test_head_has_the_headers_and_no_body(client: TestClient, clip: tuple[Path, str]) -> None:
    response = client.head(f"/api/v1/media/{clip[1]}/content", headers={"Range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == b""
    assert response.headers["content-length"] == "10"


def test_a_reachable_copy_answers_and_503_names_the_rest(client: TestClient, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    one = write(tmp_path / "one" / "a.mov", data)
    write(tmp_path / "two" / "deep" / "b.mov", data)
    add_and_scan(client, "one", tmp_path / "one")
    add_and_scan(client, "two", tmp_path / "two")
    media_id = b3sum(one)[one]
    url = f"/api/v1/media/{media_id}/content"
    assert client.get(url).headers["x-mediamesh-source"] == "one"

    source_svc.set_mounted(ctx_of(client), "one", False)
    served = client.get(url)
    assert (served.status_code, served.headers["x-mediamesh-source"]) == (200, "two")
    assert served.content == data

    shutil.move(tmp_path / "two", tmp_path / "two-gone")  # the second disk goes away too
    gone = client.get(url)
    assert gone.status_code == 503
    message = gone.json()["error"]["message"]
    assert "one (unmounted)" in message and "two" in message


def test_changed_files_are_not_served_as_the_old_content(client: TestClient, clip: tuple[Path, str]) -> None:
    path, media_id = clip
    file_id = client.get("/api/v1/files").json()["data"][0]["id"]
    write(path, 300_000, mtime_offset=-60)  # new content since the scan
    assert client.get(f"/api/v1/media/{media_id}/content").status_code == 503
    changed = client.get(f"/api/v1/files/{file_id}/content")
    assert changed.status_code == 409 and "changed since the last scan" in changed.json()["error"]["message"]


def test_a_symlink_swapped_in_is_never_followed(
    client: TestClient, clip: tuple[Path, str], tmp_path: Path
) -> None:
    path, media_id = clip
    secret = write(tmp_path / "outside" / "secret.bin", b"s3cret" * 50_000)
    stat = path.stat()
    path.unlink()
    path.symlink_to(secret)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
    file_id = client.get("/api/v1/files").json()["data"][0]["id"]
    for url in (f"/api/v1/media/{media_id}/content", f"/api/v1/files/{file_id}/content"):
        response = client.get(url)
        assert response.status_code in (409, 503), url
        assert b"s3cret" not in response.content


def test_file_content_and_its_errors(client: TestClient, clip: tuple[Path, str]) -> None:
    path, _ = clip
    file_id = client.get("/api/v1/files").json()["data"][0]["id"]
    ok = client.get(f"/api/v1/files/{file_id}/content", headers={"Range": "bytes=5-9"})
    assert ok.status_code == 206 and ok.content == path.read_bytes()[5:10]
    assert ok.headers["cache-control"] == "private, no-cache"
    assert client.get("/api/v1/files/999999/content").status_code == 404
    path.unlink()
    assert client.get(f"/api/v1/files/{file_id}/content").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/files/..%2F..%2Fetc%2Fpasswd/content",
        "/api/v1/files/-1/content",
        "/api/v1/files/0/content",
        "/api/v1/media/..%2F..%2Fetc%2Fpasswd/content",
        "/api/v1/media/%2Fetc%2Fpasswd/content",
        "/api/v1/media/" + "g" * 64 + "/content",
    ],
)
def test_paths_never_reach_the_content_routes(client: TestClient, clip: tuple[Path, str], url: str) -> None:
    response = client.get(url)
    assert response.status_code in (404, 422), response.text
    assert "root:" not in response.text


def test_unknown_and_missing_media(client: TestClient, clip: tuple[Path, str]) -> None:
    path, media_id = clip
    assert client.get("/api/v1/media/" + "0" * 64 + "/content").status_code == 404
    path.unlink()
    assert run_scan(ctx_of(client), "lib", confirm_missing=True)["files_missing"] == 1
    missing = client.get(f"/api/v1/media/{media_id}/content")
    assert missing.status_code == 404 and "missing" in missing.json()["error"]["message"]


@pytest.mark.parametrize("size", [200_000, 9 * 1024 * 1024])  # below and above the libsmbclient threshold
def test_seeking_in_a_video_on_an_smb_share(client: TestClient, samba: object, size: int) -> None:
    import uuid

    from tests.servers.samba import PASSWORD, SambaServer

    assert isinstance(samba, SambaServer)
    share = samba.share_dir / uuid.uuid4().hex
    video = write(share / "Video" / "film.mkv", size)
    source_svc.add_source(ctx_of(client), "nas", samba.url(share.name), password=PASSWORD)
    assert run_scan(ctx_of(client), "nas")["status"] == "completed"
    url = f"/api/v1/media/{b3sum(video)[video]}/content"
    data = video.read_bytes()
    for start, stop in ((0, 1), (size // 2, size // 2 + 70_000), (size - 100, size)):
        response = client.get(url, headers={"Range": f"bytes={start}-{stop - 1}"})
        assert response.status_code == 206
        assert response.content == data[start:stop]
    whole = client.get(url)
    assert whole.headers["content-type"] == "video/x-matroska" and whole.content == data


def test_signed_links_play_without_a_token(client: TestClient, clip: tuple[Path, str]) -> None:
    path, media_id = clip
    made = client.post(f"/api/v1/media/{media_id}/link?ttl=600")
    assert made.status_code == 200
    url = made.json()["path"]
    assert url.startswith(f"/api/v1/media/{media_id}/content?expires=")
    assert made.json()["url"] == "http://testserver" + url  # absolute: what a player is given
    anonymous = TestClient(client.app, client=("127.0.0.1", 40001))
    ranged = anonymous.get(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == path.read_bytes()[100:200]
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert anonymous.get(tampered).status_code == 401
    expires = int(url.split("expires=")[1].split("&")[0])
    longer = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert anonymous.get(longer).status_code == 401  # the expiry is signed too
    other = client.post("/api/v1/media/" + "0" * 64 + "/link")
    assert other.status_code == 404  # no links for what is not in the catalog
    file_id = client.get("/api/v1/files").json()["data"][0]["id"]
    file_url = client.post(f"/api/v1/files/{file_id}/link").json()["url"]
    assert anonymous.get(file_url.replace(f"/files/{file_id}/", "/files/999/")).status_code == 401
    assert anonymous.get(file_url).content == path.read_bytes()
    assert anonymous.get(f"/api/v1/media/{media_id}").status_code == 401  # a link opens content only


def test_expired_links_are_refused(
    client: TestClient, clip: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    url = client.post(f"/api/v1/media/{clip[1]}/link?ttl=60").json()["url"]
    later = time.time() + 120
    monkeypatch.setattr("mediamesh.services.links._now", lambda: later)
    response = TestClient(client.app, client=("127.0.0.1", 40002)).get(url)
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_links_use_the_public_url_when_one_is_set(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path, public_url="https://media.example.lan:8443/mm/")
    assert settings.public_url == "https://media.example.lan:8443/mm"
    write(library / "a.mp4", 5000)
    app = create_app(settings)
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        client.headers["Authorization"] = "Bearer " + token_svc.create_token(ctx, "r", "read")[1]
        source_svc.add_source(ctx, "lib", str(library))
        run_scan(ctx, "lib")
        file_id = client.get("/api/v1/files").json()["data"][0]["id"]
        made = client.post(f"/api/v1/files/{file_id}/link").json()
    assert made["url"] == "https://media.example.lan:8443/mm" + made["path"]
    with pytest.raises(ValueError, match="MEDIAMESH_PUBLIC_URL"):
        make_settings(tmp_path, public_url="javascript:alert(1)")
