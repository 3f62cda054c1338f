"""Discovery across a network the test makes (tests/servers/lan.py): a NAS that announces itself over
mDNS (python-zeroconf) with a real smbd and a real nfs-ganesha behind rpcbind, and a Windows-like host
that answers WS-Discovery (Debian's wsdd) with an smbd of its own. ``mediamesh discover`` runs on a third
host and must find both, their shares and exports. Nothing is sent outside these namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mediamesh.discovery import wsd
from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from tests.conftest import make_settings
from tests.servers import samba
from tests.servers.lan import Host, Lan

for tool in ("smbd", "ganesha.nfsd", "rpcbind", "wsdd"):
    if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
        raise RuntimeError(f"{tool} is missing: run scripts/install-system-deps.sh")

RESPONDER = """
import sys, time, socket
from zeroconf import ServiceInfo, Zeroconf
address, name = sys.argv[1], sys.argv[2]
zc = Zeroconf(interfaces=[address])
infos = [
    # Besides its own address it announces loopback, which must never be asked anything: an announcement
    # may not point the server at its own services.
    ServiceInfo(f"{t}", f"{name}.{t}", port=port,
                addresses=[socket.inet_aton(a) for a in (address, "127.0.0.1")],
                properties=props, server=f"{name.lower()}.local.")
    for t, port, props in (
        ("_smb._tcp.local.", 445, {}),
        ("_nfs._tcp.local.", 2049, {"path": "/volume1/video"}),
        ("_device-info._tcp.local.", 0, {"model": "DS920+"}),
    )
]
for info in infos:
    zc.register_service(info)
print("ready", flush=True)
time.sleep(3600)
"""


def _smbd(host: Host, workdir: Path, shares: dict[str, Path]) -> None:
    for name in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    sections = "".join(
        f"[{name}]\n  path = {path}\n  read only = yes\n  guest ok = yes\n  force user = root\n  comment = {name} files\n"
        for name, path in shares.items()
    )
    conf = workdir / "smb.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        [global]
          workgroup = WORKGROUP
          server role = standalone server
          interfaces = {host.address}/24
          bind interfaces only = yes
          disable netbios = yes
          map to guest = Bad User
          restrict anonymous = 0
          private dir = {workdir}/private
          lock directory = {workdir}/lock
          state directory = {workdir}/state
          cache directory = {workdir}/cache
          pid directory = {workdir}/pid
          ncalrpc dir = {workdir}/ncalrpc
          log file = {workdir}/log.smbd
          passdb backend = tdbsam:{workdir}/private/passdb.tdb
        """)
        + sections
    )
    # A user as on a NAS (shares are listed to guests; reading one needs a login).
    if subprocess.run(["id", samba.USER], check=False, capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", samba.USER], check=True)
    subprocess.run(
        ["smbpasswd", "-c", str(conf), "-a", "-s", samba.USER],
        input=f"{samba.PASSWORD}\n{samba.PASSWORD}\n".encode(),
        check=True,
        capture_output=True,
    )
    host.popen(
        ["/usr/sbin/smbd", "--foreground", "--no-process-group", f"--configfile={conf}", "-d", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _ganesha(host: Host, workdir: Path, export: Path) -> None:
    (workdir / "recovery").mkdir(parents=True, exist_ok=True)
    conf = workdir / "ganesha.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        NFS_CORE_PARAM {{
            Enable_NLM = false;
            Enable_RQUOTA = false;
            Protocols = 3, 4;
            Enable_UDP = false;
            Bind_addr = {host.address};
        }}
        NFS_KRB5 {{ Active_krb5 = false; }}
        NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {workdir}/recovery; }}
        EXPORT {{
            Export_Id = 1;
            Path = {export};
            Pseudo = {export};
            Access_Type = RO;
            Squash = No_Root_Squash;
            SecType = sys;
            Protocols = 3, 4;
            Transports = TCP;
            FSAL {{ Name = VFS; }}
        }}
        LOG {{ Default_Log_Level = WARN; }}
        """)
    )
    # rpcbind first: ganesha registers its MOUNT service there, where clients look it up (port 111).
    # Cold (no -w): nothing of an earlier run is restored. Its Unix socket is in /run, shared with this
    # machine: the fixture removes it afterwards if it was not there before.
    host.popen(["rpcbind", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    host.popen(
        [
            "ganesha.nfsd",
            "-F",
            "-L",
            str(workdir / "ganesha.log"),
            "-f",
            str(conf),
            "-p",
            str(workdir / "pid"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_port(host: Host, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    probe = f"import socket; socket.create_connection(('{host.address}', {port}), timeout=1).close()"
    while host.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"nothing listens on {host.address}:{port}"
        time.sleep(0.3)


@dataclass
class Network:
    lan: Lan
    client: Host
    nas: Host
    windows: Host
    export: Path
    workdir: Path

    def discover(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ,
            "MEDIAMESH_DATA_DIR": str(self.workdir / "data"),
            "MEDIAMESH_DISCOVERY": "on",
            "MEDIAMESH_TEST_NETS": self.lan.network,
            **(env or {}),
        }
        return self.client.run(
            [sys.executable, "-m", "mediamesh", "discover", "--json", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    workdir = tmp_path_factory.mktemp("lan")
    rpcbind_socket = Path("/run/rpcbind.sock")
    socket_was_there = rpcbind_socket.exists()
    lan = Lan(workdir)
    try:
        client, nas, windows = lan.host("client"), lan.host("nas"), lan.host("win")
        video = workdir / "nas" / "volume1" / "video"
        photo = workdir / "nas" / "volume1" / "photo"
        users = workdir / "win" / "Users"
        for folder in (video, photo, users):
            folder.mkdir(parents=True)
            (folder / "a.jpg").write_bytes(b"x" * 100)
        _smbd(nas, workdir / "nas" / "samba", {"video": video, "photo": photo})
        _smbd(windows, workdir / "win" / "samba", {"Users": users})
        _ganesha(nas, workdir / "nas" / "ganesha", video)
        responder = nas.popen(
            [sys.executable, "-c", RESPONDER, nas.address, "DiskStation"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert (
            responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        )  # all announced
        windows.popen(
            ["wsdd", "-i", "eth0", "-4", "-n", "WINPC", "-w", "WORKGROUP"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for host, port in ((nas, 445), (windows, 445), (nas, 2049), (windows, 5357)):
            _wait_port(host, port)
        yield Network(lan, client, nas, windows, video, workdir)
    finally:
        lan.close()
        if not socket_was_there:
            rpcbind_socket.unlink(missing_ok=True)


def by_address(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["address"]: h for h in result["hosts"]}


def test_discover_finds_the_nas_and_the_pc_with_their_shares(network: Network) -> None:
    run = network.discover("--seconds", "3")
    assert run.returncode == 0, run.stderr
    hosts = by_address(json.loads(run.stdout))
    assert set(hosts) == {network.nas.address, network.windows.address}  # never the client itself
    nas = hosts[network.nas.address]
    assert nas["names"] == ["DiskStation"] and nas["model"] == "DS920+" and nas["via"] == ["mdns"]
    offers = {(o["kind"], o["name"]): o for o in nas["offers"]}
    assert set(offers) == {("smb", "photo"), ("smb", "video"), ("nfs", str(network.export))}
    assert offers[("smb", "video")]["location"] == f"smb://{network.nas.address}/video"
    assert offers[("smb", "video")]["fields"] == {"host": network.nas.address, "share": "video"}
    assert offers[("nfs", str(network.export))]["location"] == f"nfs://{network.nas.address}{network.export}"
    assert all(o["registered"] is None for o in nas["offers"])
    pc = hosts[network.windows.address]
    assert pc["names"] == ["WINPC"] and pc["via"] == ["wsd"]
    assert [(o["kind"], o["name"]) for o in pc["offers"]] == [("smb", "Users")]


def test_a_typed_host_is_asked_directly_and_registered_shares_are_marked(network: Network) -> None:
    data = network.workdir / "data"
    add = network.client.run(
        [
            sys.executable,
            "-m",
            "mediamesh",
            "source",
            "add",
            "nasvideo",
            f"smb://{network.nas.address}/video",
            "--force",
        ],
        env={**os.environ, "MEDIAMESH_DATA_DIR": str(data), "MEDIAMESH_TEST_NETS": network.lan.network},
        capture_output=True,
        text=True,
        timeout=120,
        input="",
    )
    assert add.returncode == 0, add.stderr
    run = network.discover("--host", network.nas.address)
    assert run.returncode == 0, run.stderr
    [host] = json.loads(run.stdout)["hosts"]
    assert host["via"] == ["typed"]
    registered = {o["name"]: o["registered"] for o in host["offers"]}
    assert registered == {"photo": None, "video": "nasvideo", str(network.export): None}


def test_discovery_is_off_when_the_setting_says_so(network: Network) -> None:
    run = network.discover(env={"MEDIAMESH_DISCOVERY": "off"})
    assert run.returncode == 2 and "MEDIAMESH_DISCOVERY=off" in run.stderr


def test_a_host_that_is_not_there_is_reported_not_waited_for(network: Network) -> None:
    started = time.monotonic()
    run = network.discover("--host", f"{network.lan.subnet}.250")
    assert run.returncode == 0, run.stderr
    [host] = json.loads(run.stdout)["hosts"]
    assert host["offers"] == []
    assert any("SMB shares of" in e for e in host["errors"]) and any(
        "NFS exports of" in e for e in host["errors"]
    )
    assert time.monotonic() - started < 40


def test_addresses_naming_another_host_than_the_sender_are_not_followed() -> None:
    reply = textwrap.dedent("""\
        <soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
          xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
          xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery"><soap:Body><wsd:ProbeMatches>
          <wsd:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:1</wsa:Address></wsa:EndpointReference>
          <wsd:Types>wsdp:Device pub:Computer</wsd:Types>
          <wsd:XAddrs>http://127.0.0.3:5357/1 http://127.0.0.2:5357/1</wsd:XAddrs></wsd:ProbeMatch>
        </wsd:ProbeMatches></soap:Body></soap:Envelope>""").encode()
    assert wsd.parse_match(reply, "127.0.0.2") == ("urn:uuid:1", "http://127.0.0.2:5357/1")
    assert wsd.parse_match(reply, "127.0.0.4") == ("urn:uuid:1", None)  # answered, but nothing to follow
    assert wsd.parse_match(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", "127.0.0.2") is None


def test_a_new_user_picks_a_share_in_the_browser_and_adds_it(network: Network) -> None:
    """Two clicks from "Add a source" to a registered share, in Chromium, on a host of this LAN."""
    script = Path(__file__).with_name("discovery_browser.py")
    shot = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui" / "14-found-on-your-network.png"
    run = network.client.run(
        [
            sys.executable,
            str(script),
            str(network.workdir),
            network.nas.address,
            str(shot),
            samba.USER,
            samba.PASSWORD,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert run.returncode == 0, run.stderr[-6000:]
    assert shot.exists()


# -- the API and the page, on this machine (a typed host only: nothing is multicast here) ----------------
@pytest.fixture
def app_on(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, discovery="on"))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        yield client


def test_the_api_is_for_admins_and_asks_a_typed_host(app_on: TestClient) -> None:
    ctx = app_on.app.state.ctx  # type: ignore[attr-defined]
    _, admin = token_svc.create_token(ctx, "admin", "admin")
    _, writer = token_svc.create_token(ctx, "writer", "write")
    assert app_on.get("/api/v1/discovery", headers={"Authorization": f"Bearer {writer}"}).status_code == 403
    asked = app_on.get("/api/v1/discovery?host=127.0.0.1", headers={"Authorization": f"Bearer {admin}"})
    assert asked.status_code == 200, asked.text
    [host] = asked.json()["hosts"]
    assert host["address"] == "127.0.0.1" and host["via"] == ["typed"] and host["offers"] == []
    assert host["errors"]  # nothing answers on 445 or 111 here: said, not hidden
    bad = app_on.get("/api/v1/discovery?host=smb://nas/video", headers={"Authorization": f"Bearer {admin}"})
    assert bad.status_code == 422 and "host name or address" in bad.json()["error"]["message"]
    page = app_on.post("/sign-in", data={"token": admin, "next": "/sources/new"})
    assert 'id="discovery"' in page.text
    app_on.post("/sign-out", data={"csrf_token": ""})


def test_off_means_off(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, discovery="off"))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        _, admin = token_svc.create_token(app.state.ctx, "admin", "admin")
        refused = client.get("/api/v1/discovery?host=127.0.0.1", headers={"Authorization": f"Bearer {admin}"})
        assert refused.status_code == 403 and "MEDIAMESH_DISCOVERY=off" in refused.json()["error"]["message"]
        page = client.post("/sign-in", data={"token": admin, "next": "/sources/new"})
        assert page.status_code == 200 and "Add a source" in page.text and 'id="discovery"' not in page.text


def test_a_way_of_listening_that_fails_is_said_and_the_other_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit test (nothing may be multicast from this machine): mDNS fails to listen, WS-Discovery hears
    nothing; the answer says so instead of failing."""
    from mediamesh.context import create_context
    from mediamesh.discovery import mdns
    from mediamesh.errors import InvalidInput
    from mediamesh.services import discovery as svc

    def unreachable(seconds: float) -> list[object]:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(mdns, "browse", unreachable)
    monkeypatch.setattr(wsd, "probe", lambda seconds: [])
    ctx = create_context(make_settings(tmp_path, discovery="on"))
    try:
        found = svc.Discovery(ctx).find(seconds=0.5)
        assert found["hosts"] == [] and "network_mode: host" in (found["hint"] or "")
        assert found["problems"] == [
            "mDNS could not listen on this network: [Errno 101] Network is unreachable"
        ]
        with pytest.raises(InvalidInput, match="for one host"):
            svc.Discovery(ctx).find(user="ana", password="x")
    finally:
        ctx.close()
