"""Mounted shares (docs/deploy.md): option B, a parent folder whose sub-folders the host mounts, and
option A, shares mediamesh mounts itself with the kernel's client.

Option B uses real bind mounts (this suite runs as root, as CI does). Option A's commands go through a
runner that records them and plays the kernel: a "mount" of //127.0.0.1/<share> is a bind mount of a
local folder, and hangs and refusals are faked, so the orchestration (options, credentials, deadlines,
stale mounts, restore at start, removal) is tested where kernel SMB and NFS mounts cannot run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mediamesh.backends.kernel_mounts import KernelMounts, MountTimeout, RunResult, spec_for
from mediamesh.cli.main import app as cli_app
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, LocationUnreachable
from mediamesh.server import create_app
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.lifecycle import SourceManager
from mediamesh.services.scans import run_scan
from tests.conftest import make_settings, write
from tests.helpers import rows

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root (CI runs as root)")


def bind(source: Path, target: Path) -> None:
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)


def mounted(path: Path | str) -> bool:
    """os.path.ismount misses a bind mount from the same device; mountpoint(1) reads mountinfo."""
    return subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode == 0


def unbind(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A "NAS" folder with a video share, and the parent mount folder where the host mounts shares."""
    nas, parent = tmp_path / "nas" / "video", tmp_path / "sources"
    for i in range(4):
        write(nas / "clips" / f"c{i}.mov", 2000 + i)
    (parent / "video").mkdir(parents=True)
    yield {"nas": nas, "parent": parent, "target": parent / "video"}
    for _ in range(3):  # stacked mounts of a failed test
        unbind(parent / "video")


@pytest.fixture
def mctx(tmp_path: Path) -> Iterator[Context]:
    context = Context(make_settings(tmp_path, mounts_dir=tmp_path / "sources"))
    yield context
    context.close()


def probe_round(ctx: Context) -> None:
    manager = SourceManager(ctx, interval=3600)
    try:
        manager.probe_all()
    finally:
        manager.stop()


def health(ctx: Context, name: str) -> dict[str, object]:
    shown: dict[str, object] = source_svc.show_source(ctx, name)["health"]
    return shown


def mount_state(ctx: Context, name: str) -> dict[str, object]:
    return next(m for m in source_svc.mount_states(ctx) if m["source"] == name)


# -- option B: the host mounts, mediamesh notices when it did not --------------------------------------------
def test_an_unmounted_share_is_offline_not_mounted_and_never_scanned_as_empty(
    mctx: Context, layout: dict[str, Path]
) -> None:
    target = layout["target"]
    bind(layout["nas"], target)
    added = source_svc.add_source(mctx, "video", str(target))
    assert added["identity"]["mount_point"] == str(target)  # a mount point when added: it must stay one
    assert run_scan(mctx, "video")["files_seen"] == 4
    before = {p: (r.state, r.media_id) for p, r in rows(mctx).items()}
    assert mount_state(mctx, "video")["state"] == "mounted"

    unbind(target)
    write(target / "left-by-the-host.jpg", 50)  # what an unmounted mount point may hold
    probe_round(mctx)
    shown = health(mctx, "video")
    assert shown["status"] == "offline"
    assert str(shown["error"]).startswith("not mounted: nothing is mounted at " + str(target))
    assert mount_state(mctx, "video")["state"] == "not mounted"
    summary = run_scan(mctx, "video")
    assert summary["status"] == "failed" and "not mounted" in summary["error"]
    assert {p: (r.state, r.media_id) for p, r in rows(mctx).items()} == before  # nothing missing, nothing new

    bind(layout["nas"], target)
    probe_round(mctx)
    assert health(mctx, "video")["status"] == "online"
    assert run_scan(mctx, "video")["files_seen"] == 4


def test_a_folder_in_the_mounts_dir_must_be_mounted_to_be_added(
    mctx: Context, layout: dict[str, Path]
) -> None:
    target = layout["target"]
    with pytest.raises(LocationUnreachable, match=r"not mounted.*--no-expect-mount"):
        source_svc.add_source(mctx, "video", str(target))
    tested = source_svc.test_location(mctx, str(target))  # the form's Test connection says so too
    assert not tested["reachable"] and tested["error"].startswith("not mounted")
    # Declared before the host mounted it (a sources.yaml on first start): kept, offline, never scanned.
    added = source_svc.add_source(mctx, "video", str(target), force=True)
    assert added["health"]["status"] == "offline" and added["identity"] == {"mount_point": str(target)}
    assert run_scan(mctx, "video")["status"] == "failed"
    bind(layout["nas"], target)
    probe_round(mctx)
    shown = source_svc.show_source(mctx, "video")
    assert shown["health"]["status"] == "online"
    assert shown["identity"]["mount_point"] == str(target) and shown["identity"]["fs_type"]  # filled in
    assert run_scan(mctx, "video")["files_seen"] == 4


def test_a_plain_folder_in_the_mounts_dir_can_be_declared_so(mctx: Context, layout: dict[str, Path]) -> None:
    write(layout["target"] / "a.jpg", 300)
    added = source_svc.add_source(mctx, "video", str(layout["target"]), expect_mount=False)
    assert added["health"]["status"] == "online" and added["expect_mount"] is False
    assert mount_state(mctx, "video")["state"] == "folder"
    assert run_scan(mctx, "video")["files_seen"] == 1
    # ...and turned into one that must be mounted: offline until the host mounts it.
    changed = source_svc.update_source(mctx, "video", expect_mount=True, force=True)
    assert changed["health"]["status"] == "offline" and "not mounted" in changed["health"]["error"]


def test_another_file_system_mounted_in_its_place_is_degraded_not_scanned(
    mctx: Context, layout: dict[str, Path]
) -> None:
    target = layout["target"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], check=True)
    write(target / "a.jpg", 100)
    source_svc.add_source(mctx, "video", str(target))
    run_scan(mctx, "video")
    unbind(target)
    bind(layout["nas"], target)  # mounted, but not the file system that was registered
    probe_round(mctx)
    shown = health(mctx, "video")
    assert shown["status"] == "degraded" and "filesystem differs" in str(shown["error"])
    assert run_scan(mctx, "video")["status"] == "failed"
    assert rows(mctx)["a.jpg"].state == "present"


def test_a_folder_below_a_mount_knows_when_the_mount_above_is_gone(tmp_path: Path, mctx: Context) -> None:
    """A source below the mount point (/mnt/nas/photos when the host mounts /mnt/nas)."""
    share, mnt = tmp_path / "share", tmp_path / "mnt"
    write(share / "photos" / "p.jpg", 700)
    mnt.mkdir()
    bind(share, mnt)
    try:
        source_svc.add_source(mctx, "photos", str(mnt / "photos"))
        assert run_scan(mctx, "photos")["files_seen"] == 1
        unbind(mnt)
        (mnt / "photos").mkdir()  # an empty folder of the same name under the mount point
        probe_round(mctx)
        assert str(health(mctx, "photos")["error"]).startswith("not mounted")
        assert rows(mctx)["p.jpg"].state == "present"
    finally:
        unbind(mnt)


# -- option A: mediamesh mounts with the kernel's client -----------------------------------------------------
class FakeKernel:
    """Records each command and answers as the kernel would. ``shares`` maps a share name to the local
    folder a mount of //127.0.0.1/<share> or 127.0.0.1:/<share> shows (a real bind mount)."""

    def __init__(self, shares: dict[str, Path]) -> None:
        self.shares = shares
        self.calls: list[list[str]] = []
        self.credentials: list[tuple[str, int]] = []  # (content, mode) of each credentials file when used
        self.refuse: str | None = None
        self.hang: set[str] = set()  # commands (mount, stat, mountpoint) that do not answer
        self.hung_for: float = 0.0
        self.lock = threading.Lock()

    def run(self, argv: list[str], timeout: float) -> RunResult:
        with self.lock:
            self.calls.append(list(argv))
        if argv[0] in self.hang:
            time.sleep(min(timeout, 0.2))
            self.hung_for += timeout
            raise MountTimeout(f"{argv[0]} gave no answer in {timeout:.0f} s")
        if argv[0] == "mount":
            options = argv[argv.index("-o") + 1].split(",")
            for option in options:
                if option.startswith("credentials="):
                    path = Path(option.split("=", 1)[1])
                    self.credentials.append((path.read_text(), stat.S_IMODE(path.stat().st_mode)))
            if self.refuse:
                return RunResult(32, "", f"mount error(13): {self.refuse}")
            share = argv[-2].rsplit("/", 1)[-1]
            if share not in self.shares:
                return RunResult(32, "", "mount error(2): No such file or directory")
            bind(self.shares[share], Path(argv[-1]))
            return RunResult(0)
        if argv[0] == "umount":
            unbind(Path(argv[-1]))
            return RunResult(0)
        if argv[0] == "mountpoint":
            found = subprocess.run(argv, check=False, capture_output=True)
            return RunResult(found.returncode)
        if argv[0] == "stat":
            return RunResult(0, "nfs\n")
        raise AssertionError(f"unexpected command {argv}")

    def commands(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def kernel(layout: dict[str, Path]) -> FakeKernel:
    return FakeKernel({"video": layout["nas"]})


@pytest.fixture
def actx(tmp_path: Path, kernel: FakeKernel) -> Iterator[Context]:
    settings = make_settings(tmp_path, mounts_dir=tmp_path / "sources", mount_shares="on")
    context = Context(settings)
    context.kernel_mounts = KernelMounts(kernel, tmp_path / "data" / "mounts", enabled=True, timeout=1.0)
    yield context
    context.close()


def test_a_kernel_mount_is_read_only_safe_and_keeps_the_password_off_the_command_line(
    actx: Context, kernel: FakeKernel, layout: dict[str, Path]
) -> None:
    added = source_svc.add_source(
        actx, "video", "smb://media@127.0.0.1/video", password="s3cret pass", kernel_mount=True
    )
    target = str(layout["target"])
    assert added["kind"] == "local" and added["location"] == target
    assert added["kernel_mount"] == "smb://media@127.0.0.1/video"
    mount = next(c for c in kernel.calls if c[0] == "mount")
    assert mount[:3] == ["mount", "-t", "cifs"] and mount[-3:] == ["--", "//127.0.0.1/video", target]
    options = mount[4].split(",")
    for wanted in ("ro", "nosuid", "nodev", "noexec", "soft", "echo_interval=5"):
        assert wanted in options
    assert not any("s3cret" in part for call in kernel.calls for part in call)
    assert kernel.credentials == [("username=media\npassword=s3cret pass\n", 0o600)]
    assert not any((actx.settings.data_dir / "mounts").iterdir())  # the file is gone after the mount
    assert "s3cret" not in str(source_svc.show_source(actx, "video"))
    assert run_scan(actx, "video")["files_seen"] == 4
    assert mount_state(actx, "video")["kernel_mount"]["state"] == "mounted"  # type: ignore[index]

    elsewhere = layout["parent"] / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(InvalidInput, match="remove it and add"):  # its share would be mounted there
        source_svc.update_source(actx, "video", location=str(elsewhere))
    source_svc.remove_source(actx, "video")
    assert kernel.calls[-1] == ["umount", "-l", target]
    assert not mounted(target)


def test_nfs_mounts_get_soft_short_time_outs() -> None:
    spec = spec_for("nfs://127.0.0.1:2049/export/media?version=4.0", "/mnt/sources/m")
    assert spec.fs == "nfs" and spec.device == "127.0.0.1:/export/media"
    assert {
        "ro",
        "nosuid",
        "nodev",
        "noexec",
        "soft",
        "timeo=50",
        "retrans=2",
        "vers=4.0",
        "port=2049",
    } <= set(spec.options)
    bad_ones = (
        "sftp://h/x",
        "smb://h/",
        "smb://h/a,b",
        "nfs://h/x/../y",
        "nfs://h/x?version=2",
        "nfs://-orw/x",  # a "host" mount(8) would read as an option
        "smb://a%0Apassword=x@h/s",  # a user that writes a line of its own into the credentials file
    )
    for bad in bad_ones:
        with pytest.raises(ValueError):
            spec_for(bad, "/mnt/sources/m")


def test_a_refused_or_hung_mount_registers_nothing_unless_forced(actx: Context, kernel: FakeKernel) -> None:
    kernel.refuse = "Permission denied"
    with pytest.raises(LocationUnreachable, match="Permission denied"):
        source_svc.add_source(actx, "video", "smb://media@127.0.0.1/video", password="x", kernel_mount=True)
    assert source_svc.list_sources(actx) == []
    kernel.refuse, kernel.hang = None, {"mount"}
    t0 = time.monotonic()
    with pytest.raises(LocationUnreachable, match="no answer"):
        source_svc.add_source(actx, "video", "smb://media@127.0.0.1/video", password="x", kernel_mount=True)
    assert time.monotonic() - t0 < 5
    added = source_svc.add_source(
        actx, "video", "smb://media@127.0.0.1/video", password="x", kernel_mount=True, force=True
    )
    assert added["health"]["status"] == "offline" and "not mounted" in added["health"]["error"]


def test_kernel_mounts_are_off_unless_the_operator_allows_them(mctx: Context) -> None:
    with pytest.raises(InvalidInput, match="MEDIAMESH_MOUNT_SHARES=on"):
        source_svc.add_source(mctx, "video", "smb://media@127.0.0.1/video", password="x", kernel_mount=True)


def test_a_stale_mount_is_detached_and_mounted_again(
    actx: Context, kernel: FakeKernel, layout: dict[str, Path]
) -> None:
    source_svc.add_source(actx, "video", "smb://media@127.0.0.1/video", password="pw", kernel_mount=True)
    kernel.calls.clear()
    probe_round(actx)
    assert kernel.commands() == ["stat"]  # healthy: one statfs, nothing else
    kernel.calls.clear()
    kernel.hang = {"stat"}
    probe_round(actx)
    assert kernel.commands()[:3] == ["stat", "umount", "mount"]
    assert kernel.credentials[-1][0] == "username=media\npassword=pw\n"  # the stored password, unsealed
    assert mount_state(actx, "video")["kernel_mount"]["state"] == "mounted"  # type: ignore[index]


def test_unmounting_the_source_detaches_its_kernel_mount_once_and_mounting_it_mounts_again(
    actx: Context, kernel: FakeKernel, layout: dict[str, Path]
) -> None:
    source_svc.add_source(actx, "video", "smb://media@127.0.0.1/video", password="pw", kernel_mount=True)
    source_svc.set_mounted(actx, "video", False)
    kernel.calls.clear()
    probe_round(actx)
    probe_round(actx)
    assert kernel.commands() == ["umount"] and not mounted(layout["target"])
    assert mount_state(actx, "video")["kernel_mount"]["state"] == "unmounted"  # type: ignore[index]
    shown = source_svc.set_mounted(actx, "video", True)
    assert shown["health"]["status"] == "online" and mounted(layout["target"])
    assert kernel.commands()[-1] == "mount"


def test_mounts_are_restored_at_start_and_a_failure_never_blocks_it(
    tmp_path: Path, actx: Context, kernel: FakeKernel, layout: dict[str, Path]
) -> None:
    source_svc.add_source(actx, "video", "smb://media@127.0.0.1/video", password="pw", kernel_mount=True)
    run_scan(actx, "video")
    unbind(layout["target"])  # the machine restarted: nothing is mounted

    restarted = Context(actx.settings)
    slow = FakeKernel({"video": layout["nas"]})
    slow.hang = {"mount"}
    restarted.kernel_mounts = KernelMounts(slow, tmp_path / "data" / "mounts", enabled=True, timeout=1.0)
    manager = SourceManager(restarted, interval=0.5)
    try:
        t0 = time.monotonic()
        manager.start()
        assert time.monotonic() - t0 < 0.5  # start-up never waits for a mount
        deadline = time.monotonic() + 10
        while manager.rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "not mounted" in str(health(restarted, "video")["error"])
        assert rows(restarted)["clips/c0.mov"].state == "present"  # nothing lost meanwhile
        slow.hang = set()
        while health(restarted, "video")["status"] != "online" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health(restarted, "video")["status"] == "online"
        assert slow.commands().count("mount") >= 2
    finally:
        manager.stop()
        restarted.close()


def test_the_api_shows_mounts_and_keeps_kernel_mounts_for_admins(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, mounts_dir=tmp_path / "sources", mount_shares="on"))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        _, write_token = token_svc.create_token(ctx, "w", "write")
        _, read_token = token_svc.create_token(ctx, "r", "read")
        body = {"name": "video", "location": "smb://media@127.0.0.1/video", "kernel_mount": True}
        refused = client.post(
            "/api/v1/sources", json=body, headers={"Authorization": f"Bearer {write_token}"}
        )
        assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
        library = tmp_path / "lib"
        write(library / "a.jpg", 10)
        client.post(
            "/api/v1/sources",
            json={"name": "lib", "location": str(library)},
            headers={"Authorization": f"Bearer {write_token}"},
        ).raise_for_status()
        listed = client.get("/api/v1/mounts", headers={"Authorization": f"Bearer {read_token}"})
        assert listed.status_code == 200
        assert [(m["source"], m["state"]) for m in listed.json()["data"]] == [("lib", "folder")]
        assert client.get("/api/v1/mounts").status_code == 401


def test_the_cli_lists_mounts(
    tmp_path: Path, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMESH_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("MEDIAMESH_MOUNTS_DIR", str(layout["parent"]))
    monkeypatch.delenv("MEDIAMESH_DATABASE_URL", raising=False)
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["source", "add", "video", str(layout["target"])])
    assert refused.exit_code != 0 and "not mounted" in refused.output
    added = runner.invoke(cli_app, ["source", "add", "video", str(layout["target"]), "--force"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli_app, ["source", "mounts"])
    assert listed.exit_code == 0 and "not mounted" in listed.output and "video" in listed.output
