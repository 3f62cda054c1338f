#!/bin/sh
# Runs mediamesh as PUID:PGID (default 1000:1000), the owner of the media on most NAS set-ups.
# Root is kept only when mediamesh mounts shares itself (MEDIAMESH_MOUNT_SHARES=on, option A in
# docs/deploy.md): mount(2) needs CAP_SYS_ADMIN.
set -eu
PUID=${PUID:-1000}
PGID=${PGID:-1000}

case "$PUID$PGID" in
  *[!0-9]*) echo "PUID and PGID must be numbers (got PUID=$PUID PGID=$PGID)" >&2; exit 2 ;;
esac

if [ "$(id -u)" != 0 ] || [ "${MEDIAMESH_MOUNT_SHARES:-off}" = on ]; then
  exec mediamesh "$@"
fi

[ "$(id -g mediamesh)" = "$PGID" ] || groupmod --non-unique --gid "$PGID" mediamesh
[ "$(id -u mediamesh)" = "$PUID" ] || usermod --non-unique --uid "$PUID" mediamesh
data=${MEDIAMESH_DATA_DIR:-/data}
mkdir -p "$data"
# The data dir only (catalog, keys, thumbnails): never anything below /mnt/sources.
if [ "$(stat -c %u:%g "$data")" != "$PUID:$PGID" ]; then
  chown -R "$PUID:$PGID" "$data"
fi
exec setpriv --reuid="$PUID" --regid="$PGID" --init-groups -- mediamesh "$@"
