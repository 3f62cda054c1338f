#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, only those that are missing.
# Services that a package would start on install (smbd, sshd, ...) are kept from starting:
# the tests start their own private servers on free ports.
set -euo pipefail

# command-that-must-exist:debian-package (chromium: the web UI tests drive it with Playwright). `install-system-deps.sh bench` adds what the benchmarks compare with.
needed=(
  "b3sum:b3sum"
  "find:findutils"
  "smbd:samba"
  "smbpasswd:samba-common-bin"
  "useradd:passwd"
  "pkg-config:pkg-config"
  "chromium:chromium"
  "sshd:openssh-server"
  "ssh:openssh-client"
  "ganesha.nfsd:nfs-ganesha"
  # The WebDAV view's real clients: litmus, rclone (webdav backend and a FUSE mount), ffprobe on the mount.
  "litmus:litmus"
  "rclone:rclone"
  "fusermount3:fuse3"
  "ffprobe:ffmpeg"
  # Discovery's tests: a NAS and a Windows-like host in network namespaces (iproute2's ip netns).
  "ip:iproute2"
  "rpcbind:rpcbind"
  "wsdd:wsdd"
)
# nfs-ganesha's backend for local folders (a library, no command of its own).
ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1 || missing_vfs=nfs-ganesha-vfs
# Headers the smb-fast extra (pysmbc) builds against.
pkg-config --exists smbclient 2>/dev/null || missing_dev=libsmbclient-dev
if [ "${1:-}" = "bench" ]; then
  needed+=("smbclient:smbclient" "wrk:wrk" "nfs-ls:libnfs-utils")
fi

missing=()
for pair in "${needed[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
[ -n "${missing_dev:-}" ] && missing+=("$missing_dev")
[ -n "${missing_vfs:-}" ] && missing+=("$missing_vfs")
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
# Keep package scripts from starting system services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && $SUDO rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null || $SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
