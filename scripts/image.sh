#!/usr/bin/env bash
# Builds the container image without a container daemon or registry, and smoke-tests it (make test-image).
#
#   scripts/image.sh base    a Debian bookworm base image made by debootstrap, imported into podman
#   scripts/image.sh build   the Dockerfile built on that base by podman (chroot isolation, vfs storage)
#   scripts/image.sh smoke   the built image's root file system started with chroot: serve, a source, a scan
#   scripts/image.sh all     the three in order (what `make test-image` runs)
#
# Where a container engine runs (Docker, or podman with cgroups), `docker build .` needs none of this:
# the Dockerfile's default base is debian:bookworm-slim from Docker Hub.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${MEDIAMESH_IMAGE_WORK:-/var/tmp/mediamesh-image}
BASE_TAG=localhost/mediamesh-base:bookworm
IMAGE_TAG=${MEDIAMESH_IMAGE_TAG:-localhost/mediamesh:dev}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# A private store: nothing is written to the machine's own podman storage, and vfs needs no overlay support.
PODMAN=(podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)

need_root() {
  [ "$(id -u)" -eq 0 ] || { echo "scripts/image.sh needs root (debootstrap, chroot and podman's vfs store)" >&2; exit 2; }
}

install_tools() {
  local missing=()
  for pair in podman:podman buildah:buildah debootstrap:debootstrap; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

base() {
  need_root; install_tools
  if "${PODMAN[@]}" image exists "$BASE_TAG"; then
    echo "base image $BASE_TAG is there"; return 0
  fi
  local root="$WORK/bootstrap"
  rm -rf "$root"; mkdir -p "$WORK"
  echo "debootstrap bookworm (minbase) from $MIRROR into $root"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  # What debian:bookworm-slim has and a minbase lacks: the same apt sources, no caches.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -c . | "${PODMAN[@]}" import - "$BASE_TAG" >/dev/null
  rm -rf "$root"
  echo "base image $BASE_TAG imported"
}

build() {
  need_root; install_tools
  # This machine's CA bundle, for pip behind a TLS-inspecting proxy: a build secret, not kept in the image.
  local ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt} secret=()
  [ -s "$ca" ] && secret=(--secret "id=ca_bundle,src=$ca")
  "${PODMAN[@]}" build --format docker --isolation chroot --network host --layers=false "${secret[@]}" \
    --build-arg BASE_IMAGE="$BASE_TAG" -t "$IMAGE_TAG" -f Dockerfile .
}

smoke() {
  need_root
  [ -x .venv/bin/python ] || make .venv/.installed-test >/dev/null
  exec .venv/bin/python scripts/image_smoke.py --podman "${PODMAN[*]}" --image "$IMAGE_TAG"
}

case "${1:-all}" in
  base) base ;;
  build) build ;;
  smoke) smoke ;;
  all) base; build; smoke ;;
  *) echo "usage: scripts/image.sh [base|build|smoke|all]" >&2; exit 2 ;;
esac
