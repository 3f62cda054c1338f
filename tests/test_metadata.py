"""Metadata and thumbnails from real media made here (H.264, uncompressed MOV over 100 MB, JPEG with
EXIF, WAV, FLAC), on a local source and on an SMB share: values, bytes read, and decoded thumbnails."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageStat

from mediamesh.context import Context
from mediamesh.metadata import thumbnails
from mediamesh.server import create_app
from mediamesh.services import media as media_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from tests import media_factory as make
from tests.conftest import b3sum, make_settings, write
from tests.helpers import scan_and_enrich
from tests.servers.samba import PASSWORD, SambaServer


def library_of_media(root: Path) -> dict[str, Path]:
    files = {
        "video": make.h264_mp4(root / "Clips" / "dusk.mp4"),
        "photo": make.jpeg_with_exif(root / "Photos" / "portrait.jpg"),
        "wav": make.wav(root / "Audio" / "tone.wav"),
        "flac": make.flac(root / "Audio" / "tone.flac"),
        "disguised": make.jpeg_with_exif(root / "Clips" / "not-a-video.mov", size=(120, 80), orientation=1),
        "broken": write(root / "Clips" / "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000)),
    }
    for path in files.values():
        os.utime(path, (path.stat().st_mtime - 3600,) * 2)  # settled
    return files


def shown(ctx: Context, path: Path) -> dict[str, Any]:
    return media_svc.show_media(ctx, b3sum(path)[path])


def check_values(ctx: Context, files: dict[str, Path]) -> None:
    video = shown(ctx, files["video"])
    assert (video["kind"], video["mime"], video["codec"]) == ("video", "video/mp4", "h264")
    assert (video["width"], video["height"], video["duration"]) == (160, 96, 2.0)
    assert video["taken_at"] == "2024-05-01T10:00:00+00:00"
    assert video["info"]["streams"][0]["frame_rate"] == 25.0
    photo = shown(ctx, files["photo"])
    assert (photo["kind"], photo["mime"], photo["width"], photo["height"]) == (
        "image",
        "image/jpeg",
        300,
        400,
    )
    assert (photo["camera"], photo["taken_at"]) == ("Canon EOS R5", "2024-06-01T12:34:56+00:00")
    assert photo["info"]["lens"] == "RF24-70mm F2.8 L IS USM"
    assert photo["info"]["gps"] == {"latitude": 48.8582222, "longitude": 2.2945}
    wav = shown(ctx, files["wav"])
    assert (wav["kind"], wav["codec"], wav["duration"]) == ("audio", "pcm_s16le", 1.0)
    assert wav["info"]["streams"][0]["channels"] == 2 and wav["info"]["streams"][0]["sample_rate"] == 44100
    flac = shown(ctx, files["flac"])
    assert (flac["codec"], flac["duration"], flac["info"]["streams"][0]["sample_rate"]) == (
        "flac",
        1.5,
        48000,
    )
    disguised = shown(ctx, files["disguised"])  # named .mov, but a JPEG: the content decides
    assert (disguised["kind"], disguised["mime"]) == ("image", "image/jpeg")
    broken = shown(ctx, files["broken"])
    assert broken["metadata_error"] and broken["width"] is None


def check_thumbnails(ctx: Context, files: dict[str, Path]) -> None:
    root = ctx.settings.thumbnail_dir
    for label, edge in (("photo", (240, 320)), ("video", (160, 96))):
        media_id = b3sum(files[label])[files[label]]
        small = thumbnails.cache_path(root, media_id, "small")
        with Image.open(small) as picture:
            picture.load()
            assert picture.format == "WEBP" and picture.size == edge, label  # upright: portrait for the photo
            if label == "video":  # a frame after the black first half second
                assert ImageStat.Stat(picture.convert("L")).mean[0] > thumbnails.DARK
    assert not thumbnails.cache_path(root, b3sum(files["wav"])[files["wav"]], "small").exists()


def test_metadata_and_thumbnails_on_a_local_source(ctx: Context, tmp_path: Path) -> None:
    files = library_of_media(tmp_path / "lib")
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    summary = scan_and_enrich(ctx, "lib")
    assert summary["metadata"]["probed"] == 6 and summary["metadata"]["errors"] == 1
    assert summary["metadata"]["thumbnails"] == 6  # two sizes of the video, the photo, the disguised JPEG
    check_values(ctx, files)
    check_thumbnails(ctx, files)
    # A second copy elsewhere is one media item, probed once.
    write(tmp_path / "other" / "copy.jpg", files["photo"].read_bytes())
    source_svc.add_source(ctx, "other", str(tmp_path / "other"))
    assert scan_and_enrich(ctx, "other")["metadata"]["probed"] == 0
    found = media_svc.list_media(ctx, technical=media_svc.Technical(camera="eos", min_width=250))
    assert [m["id"] for m in found["data"]] == [b3sum(files["photo"])[files["photo"]]]
    videos = media_svc.list_media(ctx, technical=media_svc.Technical(codec="H264", min_duration=1.5))
    assert videos["count"] == 1
    from datetime import datetime

    taken = media_svc.Technical(taken_after=datetime(2024, 5, 15), taken_before=datetime(2024, 7, 1))
    assert media_svc.list_media(ctx, technical=taken)["count"] == 2  # the two JPEGs, not the May video


def test_a_large_file_is_probed_with_a_few_megabytes(ctx: Context, tmp_path: Path) -> None:
    big = make.big_raw_mov(tmp_path / "lib" / "big.mov")
    os.utime(big, (big.stat().st_mtime - 3600,) * 2)
    assert big.stat().st_size > 100_000_000
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    metadata = scan_and_enrich(ctx, "lib")["metadata"]
    assert 0 < metadata["max_bytes_large_file"] <= 4_000_000
    info = shown(ctx, big)
    assert (info["codec"], info["width"], info["height"]) == ("rawvideo", 640, 480)
    assert info["metadata_bytes"] == metadata["max_bytes_large_file"]


def test_metadata_over_smb(samba: SambaServer, tmp_path: Path) -> None:
    share = samba.share_dir / uuid.uuid4().hex
    files = library_of_media(share)
    big = make.big_raw_mov(share / "big.mov")
    os.utime(big, (big.stat().st_mtime - 3600,) * 2)
    ctx = Context(make_settings(tmp_path))
    try:
        source_svc.add_source(ctx, "nas", samba.url(share.name), password=PASSWORD)
        summary = scan_and_enrich(ctx, "nas")
        assert (summary["status"], summary["files_new"]) == ("completed", 7), summary  # with big.mov
        assert summary["metadata"]["probed"] == 7, summary["metadata"]
        assert 0 < summary["metadata"]["max_bytes_large_file"] <= 4_000_000
        check_values(ctx, files)
        check_thumbnails(ctx, files)
    finally:
        ctx.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, thumbnails="lazy"))
    with TestClient(app, client=("127.0.0.1", 40000)) as test_client:
        _, value = token_svc.create_token(app.state.ctx, "viewer", "read")
        test_client.headers["Authorization"] = f"Bearer {value}"
        yield test_client


def test_thumbnails_over_http_made_on_first_request(client: TestClient, tmp_path: Path) -> None:
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    files = library_of_media(tmp_path / "lib")
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    assert scan_and_enrich(ctx, "lib")["metadata"]["thumbnails"] == 0  # lazy: none in the scan
    photo_id = b3sum(files["photo"])[files["photo"]]
    url = f"/api/v1/media/{photo_id}/thumbnail"
    first = client.get(url, params={"size": "preview"})
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert first.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert make.decoded_size(first.content) == (300, 400)  # the whole photo, upright
    assert make.decoded_size(client.get(url).content) == (240, 320)  # small by default
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]}, params={"size": "preview"})
    assert again.status_code == 304
    audio = client.get(f"/api/v1/media/{b3sum(files['wav'])[files['wav']]}/thumbnail")
    assert audio.status_code == 200 and "x-mediamesh-placeholder" in audio.headers
    assert "max-age=60" in audio.headers["cache-control"]
    broken = client.get(f"/api/v1/media/{b3sum(files['broken'])[files['broken']]}/thumbnail")
    assert broken.status_code == 200 and "x-mediamesh-placeholder" in broken.headers
    assert client.get(url, params={"size": "huge"}).status_code == 422
    assert client.get("/api/v1/media/" + "0" * 64 + "/thumbnail").status_code == 404
    video_id = b3sum(files["video"])[files["video"]]
    picture = client.get(f"/api/v1/media/{video_id}/thumbnail")
    with Image.open(io.BytesIO(picture.content)) as image:
        assert ImageStat.Stat(image.convert("L")).mean[0] > thumbnails.DARK  # not the black first frame
    listed = client.get("/api/v1/media", params={"kind": "image", "camera": "canon"}).json()
    assert listed["count"] == 2 and {m["width"] for m in listed["data"]} == {300, 120}


@pytest.mark.parametrize(
    ("make", "model", "shown"),
    [
        ("Canon", "Canon EOS R5", "Canon EOS R5"),  # was "Canon Canon EOS R5"
        ("NIKON CORPORATION", "NIKON Z 6", "NIKON Z 6"),
        ("Apple", "iPhone 15 Pro", "Apple iPhone 15 Pro"),
        ("SONY\x00", " ILCE-7M4 ", "SONY ILCE-7M4"),
        (None, "GoPro HERO12", "GoPro HERO12"),
        ("", "", None),
    ],
)
def test_camera_names_do_not_repeat_the_make(make: str | None, model: str, shown: str | None) -> None:
    from mediamesh.metadata.probe import camera_name

    assert camera_name(make, model) == shown


def test_exif_times_keep_their_zone() -> None:
    from mediamesh.metadata.probe import _when

    assert _when("2024:06:01 12:34:56", "+02:00") == datetime(2024, 6, 1, 10, 34, 56, tzinfo=UTC)
    assert _when("2024:06:01 12:34:56", "-05:30").isoformat() == "2024-06-01T12:34:56-05:30"  # type: ignore[union-attr]
    assert _when("2024:06:01 12:34:56", "garbage") == datetime(2024, 6, 1, 12, 34, 56, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["audio", "video", "image", "other"])
def test_placeholders_are_drawn_not_typed(tmp_path: Path, kind: str) -> None:
    """Shapes, not a font's glyphs (the built-in font has no ♪: it drew a box with a cross)."""
    from PIL import Image

    path = thumbnails.placeholder(tmp_path, kind, "small")
    with Image.open(path) as picture:
        width, height = picture.size
        cx, cy, u = width // 2, height // 2, width // 16
        probe = {
            "audio": (cx - 2 * u, cy + 2 * u),
            "video": (cx, cy),
            "image": (cx, cy + 2 * u - 2),
            "other": (cx, cy),
        }
        pixel = picture.convert("RGB").getpixel(probe[kind])
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 40 for a, b in zip(pixel, thumbnails.PLACEHOLDER_FG, strict=True)), pixel
        assert picture.convert("RGB").getpixel((2, 2)) != pixel  # on a background
