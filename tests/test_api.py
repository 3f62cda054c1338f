"""The LAN API's access control and source routes (the first part of the API issue)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from tests.conftest import make_settings, write


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        yield client


def token(client: TestClient, scope: str) -> dict[str, str]:
    _, value = token_svc.create_token(client.app.state.ctx, f"{scope} test", scope)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {value}"}


def every_operation() -> list[tuple[str, str]]:
    """Every operation in the app's own OpenAPI, path parameters filled in."""
    import tempfile

    from mediamesh.config import Settings

    with tempfile.TemporaryDirectory(prefix="mediamesh-routes-") as data:
        app = create_app(Settings(data_dir=Path(data)))
        spec = app.openapi()
        app.state.ctx.close()
    filled = {
        "id_or_name": "x",
        "media_id": "a" * 64,
        "file_id": "1",
        "scan_id": "1",
        "token_id": "1",
        "template_id": "1",
        "job_id": "1",
    }
    operations = []
    for template, methods in spec["paths"].items():
        path = template
        for name, value in filled.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"fill in the parameter of {template}"
        operations += [(method, path) for method in methods]
    return operations


ROUTES = every_operation()


def test_health_needs_no_token(app_client: TestClient) -> None:
    body = app_client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["version"]


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[1] != "/api/v1/health"])
def test_every_route_but_health_needs_a_token(app_client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer mm_not-a-token"}, {"Authorization": "Basic abc"}):
        response = app_client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        if method != "head":  # a HEAD answer has no body
            assert response.json()["error"]["code"] == "unauthorized"


def test_scopes(app_client: TestClient, library: Path) -> None:
    read, write_, admin = token(app_client, "read"), token(app_client, "write"), token(app_client, "admin")
    assert app_client.get("/api/v1/sources", headers=read).status_code == 200
    denied = app_client.post("/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=read)
    assert denied.status_code == 403 and "write" in denied.json()["error"]["message"]
    assert (
        app_client.post(
            "/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=write_
        ).status_code
        == 201
    )
    assert app_client.get("/api/v1/tokens", headers=write_).status_code == 403
    assert app_client.get("/api/v1/tokens", headers=admin).status_code == 200


def test_sources_over_http(app_client: TestClient, library: Path) -> None:
    auth = token(app_client, "write")
    write(library / "a.jpg", 100)
    created = app_client.post("/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=auth)
    assert created.status_code == 201
    source = created.json()
    assert {"id", "name", "kind", "location", "enabled", "health", "last_scan"} <= set(source)
    assert set(source["health"]) >= {
        "status",
        "checked_at",
        "error",
        "latency_ms",
        "capacity_bytes",
        "free_bytes",
    }
    assert app_client.get(f"/api/v1/sources/{source['id']}", headers=auth).json()["name"] == "lib"
    listed = app_client.get("/api/v1/sources", headers=auth).json()
    assert listed["count"] == 1 and listed["data"][0]["name"] == "lib"
    assert app_client.post("/api/v1/sources/lib/check", headers=auth).json()["health"]["status"] == "online"
    unmounted = app_client.patch("/api/v1/sources/lib", json={"enabled": False}, headers=auth).json()
    assert unmounted["enabled"] is False and unmounted["mount"]["state"] == "disconnected"
    assert app_client.delete("/api/v1/sources/lib", headers=auth).json()["name"] == "lib"
    assert app_client.get("/api/v1/sources/lib", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Bad Name", "location": "LIB"}, 422, "invalid_input"),
        ({"name": "x", "location": "ftp://nope"}, 422, "invalid_input"),
        ({"name": "x"}, 422, "invalid_input"),
        ({"name": "x", "location": "LIB", "colour": "red"}, 422, "invalid_input"),
        ({"name": "x", "location": "LIB/definitely/not/here"}, 422, "location_unreachable"),
        ({"name": "x", "location": "LIB", "exclude": ["[oops"]}, 422, "invalid_input"),
        ({"name": "x", "location": "/etc"}, 403, "forbidden"),
    ],
)
def test_bad_input_gets_the_error_body(
    app_client: TestClient, library: Path, body: dict[str, object], status: int, code: str
) -> None:
    if isinstance(body.get("location"), str):
        body = {**body, "location": str(body["location"]).replace("LIB", str(library))}
    response = app_client.post("/api/v1/sources", json=body, headers=token(app_client, "write"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_passwords_are_never_returned(app_client: TestClient, tmp_path: Path) -> None:
    auth = token(app_client, "write")
    body = {
        "name": "nas",
        "location": "smb://u@127.0.0.1:1/share",
        "password": "hunter2-secret",
        "force": True,
    }
    created = app_client.post("/api/v1/sources", json=body, headers=auth)
    assert created.status_code == 201, created.text
    for response in (
        created,
        app_client.get("/api/v1/sources", headers=auth),
        app_client.get("/api/v1/sources/nas", headers=auth),
    ):
        assert "hunter2-secret" not in response.text


def test_tokens_are_shown_once_and_can_be_revoked(app_client: TestClient) -> None:
    admin = token(app_client, "admin")
    made = app_client.post("/api/v1/tokens", json={"name": "laptop", "scope": "read"}, headers=admin).json()
    new = {"Authorization": f"Bearer {made['token']}"}
    assert app_client.get("/api/v1/sources", headers=new).status_code == 200
    listed = app_client.get("/api/v1/tokens", headers=admin).text
    assert made["token"] not in listed and made["prefix"] in listed
    assert app_client.delete(f"/api/v1/tokens/{made['id']}", headers=admin).json()["revoked"] is True
    assert app_client.get("/api/v1/sources", headers=new).status_code == 401
    bad = app_client.post("/api/v1/tokens", json={"name": "x", "scope": "root"}, headers=admin)
    assert bad.status_code == 422


def test_a_token_cannot_grant_more_than_it_has(app_client: TestClient) -> None:
    from mediamesh.errors import InvalidInput

    with pytest.raises(InvalidInput, match="cannot create"):
        token_svc.create_token(app_client.app.state.ctx, "x", "admin", granted_by="write")  # type: ignore[attr-defined]


def test_addresses_outside_the_allowlist_are_refused(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, allow="127.0.0.0/8"))
    with TestClient(app, client=("192.168.0.19", 40000)) as outsider:
        response = outsider.get("/api/v1/health")
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    with TestClient(app, client=("127.0.0.1", 40000)) as insider:
        assert insider.get("/api/v1/health").status_code == 200


def test_repeated_bad_tokens_are_slowed_down(app_client: TestClient) -> None:
    bad = {"Authorization": "Bearer mm_wrong"}
    times = []
    for _ in range(8):
        t0 = time.monotonic()
        assert app_client.get("/api/v1/sources", headers=bad).status_code == 401
        times.append(time.monotonic() - t0)
    assert max(times[:5]) < 0.2 and times[-1] >= 0.9


def test_first_start_makes_one_admin_token(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    ctx = app.state.ctx
    value = token_svc.ensure_admin_token(ctx)
    saved = tmp_path / "data" / token_svc.ADMIN_TOKEN_FILE
    assert value is not None and saved.read_text().strip() == value
    assert saved.stat().st_mode & 0o777 == 0o600
    assert token_svc.verify(ctx, value)["scope"] == "admin"  # type: ignore[index]
    assert not saved.exists()  # deleted at the token's first use: no token stays on disk
    assert token_svc.ensure_admin_token(ctx) is None  # only on the very first start
    assert json.dumps(token_svc.list_tokens(ctx)).count(value) == 0
    ctx.close()


def test_scan_over_http_and_query_the_catalog(app_client: TestClient, library: Path) -> None:
    auth = token(app_client, "write")
    clip = write(library / "sub" / "clip.mp4", 5000)
    write(library / "sub" / "copy.mp4", clip.read_bytes())
    write(library / "other" / "song.flac", 300)
    assert (
        app_client.post(
            "/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=auth
        ).status_code
        == 201
    )
    started = app_client.post("/api/v1/sources/lib/scans", json={}, headers=auth)
    assert started.status_code == 202, started.text
    scan_id = started.json()["id"]
    deadline = time.monotonic() + 30
    while (scan := app_client.get(f"/api/v1/scans/{scan_id}", headers=auth).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (scan["status"], scan["files_new"]) == ("completed", 3)
    media = app_client.get("/api/v1/media", headers=auth).json()
    assert media["count"] == 2
    dupes = app_client.get("/api/v1/media?duplicates=true", headers=auth).json()
    assert [len(m["locations"]) for m in dupes["data"]] == [2]
    one = app_client.get(f"/api/v1/media/{dupes['data'][0]['id']}", headers=auth).json()
    assert sorted(loc["path"] for loc in one["locations"]) == ["sub/clip.mp4", "sub/copy.mp4"]
    files = app_client.get("/api/v1/files?source=lib&path_prefix=sub", headers=auth).json()
    assert sorted(f["path"] for f in files["data"]) == ["sub/clip.mp4", "sub/copy.mp4"]
    page = app_client.get("/api/v1/files?limit=1", headers=auth).json()
    assert page["count"] == 3 and len(page["data"]) == 1 and page["next"] is not None
    sub_scan = app_client.post("/api/v1/sources/lib/scans", json={"path": "other"}, headers=auth)
    assert sub_scan.status_code == 202 and sub_scan.json()["path"] == "other"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/media?limit=0", 422),
        ("get", "/api/v1/media?limit=100000", 422),
        ("get", "/api/v1/media?state=gone", 422),
        ("get", "/api/v1/media?cursor=zzz", 422),
        ("get", "/api/v1/media/not-an-id", 422),
        ("get", "/api/v1/media/" + "0" * 64, 404),
        ("get", "/api/v1/scans/999", 404),
        ("get", "/api/v1/scans/abc", 422),
        ("post", "/api/v1/sources/nope/scans", 404),
        ("get", "/api/v1/files?cursor=-1", 422),
        ("get", "/api/v1/scans/9223372036854775808", 422),  # ids are bounded (schemathesis found a 500)
        ("get", "/api/v1/sources/99999999999999999999999", 404),
        ("get", "/api/v1/sources/%C2%B2", 404),  # "²" is a digit to str.isdigit (found by schemathesis)
        ("get", "/api/v1/projects/%C2%B3", 404),
        ("get", "/api/v1/media?q=x&cursor=f%C2%B2", 422),
        ("get", "/api/v1/media?sourec=nas19", 422),  # a typo is not "no filter"
        ("post", "/api/v1/scans/1/cancel", 404),
    ],
)
def test_bad_queries_are_4xx_with_the_error_body(
    app_client: TestClient, method: str, path: str, status: int
) -> None:
    response = app_client.request(method, path, headers=token(app_client, "write"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_metrics(app_client: TestClient, library: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert app_client.get("/metrics").status_code == 401
    auth = token(app_client, "write")
    write(library / "a.mp4", 100)
    write(library / "b.mp4", 200)
    app_client.post("/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=auth)
    from mediamesh.services.scans import run_scan

    run_scan(app_client.app.state.ctx, "lib")  # type: ignore[attr-defined]
    app_client.get("/api/v1/media/" + "0" * 64, headers=auth)
    response = app_client.get("/metrics", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("mediamesh_source_health", (("source", "lib"), ("status", "online")))] == 1
    assert samples[("mediamesh_source_health", (("source", "lib"), ("status", "offline")))] == 0
    assert samples[("mediamesh_files", (("source", "lib"), ("state", "present")))] == 2
    assert samples[("mediamesh_media", ())] == 2
    not_found = (
        "mediamesh_http_requests_total",
        (("method", "GET"), ("route", "/api/v1/media/{media_id}"), ("status", "404")),
    )
    assert samples[not_found] == 1  # by route template, never the raw path
    assert (
        "mediamesh_source_last_scan_timestamp_seconds",
        (("source", "lib"), ("status", "completed")),
    ) in samples


def test_allowed_host_names(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, allowed_hosts="mediamesh.lan, *.home.lan"))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        for host, status in [
            ("mediamesh.lan", 200),
            ("MediaMesh.lan:8470", 200),
            ("nas.home.lan", 200),
            ("attacker.example", 421),
            ("home.lan.attacker.example", 421),
            ("127.0.0.1:8470", 200),  # an address: DNS rebinding needs a name
            ("[::1]:8470", 200),
            ("localhost:8470", 200),
        ]:
            response = client.get("/api/v1/health", headers={"Host": host})
            assert response.status_code == status, host
            if status == 421:
                assert response.json()["error"]["code"] == "misdirected_request"


def test_a_json_body_sent_as_curl_sends_it(app_client: TestClient, library: Path) -> None:
    """``curl -d '{...}'`` says form-urlencoded, some clients say nothing: the API reads JSON anyway when
    a token comes with it; a body that is not JSON is still refused with a message."""
    admin = token(app_client, "admin")
    body = json.dumps({"name": "lib", "location": str(library)})
    as_curl = {**admin, "Content-Type": "application/x-www-form-urlencoded"}
    added = app_client.post("/api/v1/sources", content=body, headers=as_curl)
    assert added.status_code == 201, added.text
    unnamed = app_client.post(
        "/api/v1/sources/test", content=json.dumps({"location": str(library)}), headers=admin
    )
    assert unnamed.status_code == 200 and unnamed.json()["reachable"]
    form = app_client.post("/api/v1/sources", content="name=x&location=/tmp", headers=as_curl)
    assert form.status_code == 422 and form.json()["error"]["message"]


def test_a_scan_of_a_folder_that_is_not_there_is_422(app_client: TestClient, library: Path) -> None:
    admin = token(app_client, "admin")
    assert (
        app_client.post(
            "/api/v1/sources", json={"name": "lib", "location": str(library)}, headers=admin
        ).status_code
        == 201
    )
    response = app_client.post("/api/v1/sources/lib/scans", json={"path": "nope"}, headers=admin)
    assert response.status_code == 422 and "no folder 'nope'" in response.json()["error"]["message"]
    assert app_client.get("/api/v1/scans", headers=admin).json()["count"] == 0


def test_text_no_path_or_row_can_carry_is_refused_before_anything_is_stored(
    app_client: TestClient, tmp_path: Path
) -> None:
    """A NUL in a location, or half a surrogate pair anywhere in a body: 422, never a 500, nothing kept
    (a glob with a lone surrogate used to be stored, and every listing showing it then failed)."""
    admin = {**token(app_client, "admin"), "Content-Type": "application/json"}
    nul = app_client.post("/api/v1/sources", json={"name": "n", "location": "/tmp/a\x00b"}, headers=admin)
    assert nul.status_code == 422 and "NUL" in nul.json()["error"]["message"]
    library = tmp_path / "lib"
    library.mkdir()
    where = json.dumps(str(library))
    for body in (
        '{"name": "n", "location": ' + where + ', "include": ["\\udcff*"]}',
        '{"name": "n\\ud800", "location": ' + where + "}",
    ):
        refused = app_client.post("/api/v1/sources", content=body, headers=admin)
        assert refused.status_code == 422 and "Unicode" in refused.json()["error"]["message"], refused.text
    assert app_client.get("/api/v1/sources", headers=admin).json()["count"] == 0
    # A whole pair is text like any other (an emoji in a glob).
    paired = '{"name": "n", "location": ' + where + ', "include": ["\\ud83d\\udcf7*"]}'
    added = app_client.post("/api/v1/sources", content=paired, headers=admin)
    assert added.status_code == 201 and added.json()["include"] == ["\U0001f4f7*"]
    assert app_client.get("/api/v1/sources", headers=admin).status_code == 200
