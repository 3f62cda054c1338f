"""Projects over HTTP, end to end: a template pointed at the project folders of two SMB shares makes and
fills projects on the next scans, with no one touching the API again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from tests.conftest import b3sum, make_settings, write
from tests.servers.samba import PASSWORD, SambaServer


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as test_client:
        _, value = token_svc.create_token(app.state.ctx, "editor", "write")
        test_client.headers["Authorization"] = f"Bearer {value}"
        yield test_client


def scan(client: TestClient, source: str) -> dict[str, Any]:
    started = client.post(f"/api/v1/sources/{source}/scans", json={})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 30
    while True:
        record: dict[str, Any] = client.get(f"/api/v1/scans/{started.json()['id']}").json()
        if record["status"] != "running":
            return record
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_template_over_two_smb_shares(client: TestClient, samba: SambaServer) -> None:
    shares = {}
    for nas in ("nas19", "nas25"):
        root = samba.share_dir / uuid.uuid4().hex
        root.mkdir()
        shares[nas] = root
        created = client.post(
            "/api/v1/sources", json={"name": nas, "location": samba.url(root.name), "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
    write(shares["nas19"] / "Projects" / "Wedding" / "a.mov", 3000)
    write(shares["nas25"] / "Projects" / "Wedding" / "b.mov", 2000)  # the same project on both NAS
    write(shares["nas25"] / "Projects" / "Concert" / "c.wav", 1000)
    template = client.post("/api/v1/project-templates", json={"path": "Projects/{project}/**"})
    assert template.status_code == 201 and template.json()["projects_created"] == []

    for nas in shares:
        assert scan(client, nas)["status"] == "completed"
    listed = {p["name"]: p["stats"]["media"] for p in client.get("/api/v1/projects").json()["data"]}
    assert listed == {"Wedding": 2, "Concert": 1}

    write(shares["nas19"] / "Projects" / "Gala" / "d.mp4", 500)  # a new folder appears on a NAS...
    scan(client, "nas19")  # ...and the next scan (a schedule would do it) makes its project
    assert client.get("/api/v1/projects/Gala").json()["origin"] == "template"
    page = client.get("/api/v1/projects/Wedding/media").json()
    assert page["count"] == 2 and {m["locations"][0]["source"] for m in page["data"]} == {"nas19", "nas25"}
    assert client.get("/api/v1/media?project=Concert").json()["count"] == 1


def test_rules_manual_membership_and_explanations(client: TestClient, tmp_path: Path) -> None:
    clip = write(tmp_path / "lib" / "Shoot" / "clip.mov", 4000)
    photo = write(tmp_path / "lib" / "Other" / "photo.jpg", 1000)
    assert (
        client.post("/api/v1/sources", json={"name": "lib", "location": str(tmp_path / "lib")}).status_code
        == 201
    )
    scan(client, "lib")
    preview = client.post("/api/v1/projects/preview", json={"path": "Shoot/**"}).json()
    assert (preview["files"], preview["media"]) == (1, 1)
    made = client.post("/api/v1/projects", json={"name": "Shoot", "rules": [{"path": "Shoot/**"}]})
    assert made.status_code == 201 and made.json()["stats"]["media"] == 1
    ids = b3sum(clip, photo)
    added = client.post("/api/v1/projects/Shoot/media", json={"media_id": ids[photo]})
    assert added.status_code == 201 and added.json()["projects"][0]["reasons"] == [{"by": "hand"}]
    why = client.get(f"/api/v1/media/{ids[clip]}/projects").json()
    assert why["projects"][0]["reasons"][0]["location"] == "lib:Shoot/clip.mov"
    out = client.delete(f"/api/v1/projects/Shoot/media/{ids[clip]}")
    assert out.status_code == 200 and out.json()["excluded_from"] == [
        {"id": made.json()["id"], "name": "Shoot"}
    ]
    assert client.get("/api/v1/projects/Shoot").json()["stats"]["media"] == 1
    renamed = client.patch(
        "/api/v1/projects/Shoot", json={"name": "Shoot 2024", "rules": [{"kinds": ["image"]}]}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Shoot 2024"
    assert client.delete("/api/v1/projects/Shoot 2024").json()["removed"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/api/v1/projects", {"name": "x", "rules": [{"path": "a/[b"}]}, 422, "invalid glob"),
        ("post", "/api/v1/projects", {"name": "x", "rules": [{}]}, 422, "at least one"),
        ("post", "/api/v1/projects", {"name": "x", "rules": [{"kinds": ["movie"]}]}, 422, "unknown kind"),
        ("post", "/api/v1/project-templates", {"path": "Projects/**"}, 422, "exactly one"),
        ("post", "/api/v1/projects/nope/media", {"media_id": "0" * 64}, 404, "no project"),
        ("get", "/api/v1/media?project=nope", None, 404, "no project"),
        ("delete", "/api/v1/project-templates/7", None, 404, "no project template"),
    ],
)
def test_bad_project_input(
    client: TestClient, method: str, path: str, body: object, status: int, message: str
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
