#!/usr/bin/env bash
# Makes sure a PostgreSQL server is there for the catalog tests, and writes its URL to .test-pg-url
# (tests/conftest.py reads it; MEDIAMESH_TEST_PG_URL overrides both).
#
# 1. A server on 127.0.0.1:5432 that lets `postgres` in (trust auth, as on the dev machines): used.
# 2. Else Debian's own cluster, if one is configured and stopped: started.
# 3. Else a throw-away cluster of our own: Debian's `postgresql` installed if missing, initdb into
#    $MEDIAMESH_TEST_PG_DIR (default /var/tmp/mediamesh-test-pg), trust auth on 127.0.0.1 only, on 5432 or
#    on a free port when 5432 is taken. It is reused by the next run and never needed by `make run`.
#
# `--own` skips 1 and 2 (tests/test_deploy.py checks path 3 on a machine that has a server).
# If nothing works, the PostgreSQL tests fail loudly rather than skip.
set -uo pipefail
cd "$(dirname "$0")/.."

URL_FILE=${MEDIAMESH_TEST_PG_URL_FILE:-.test-pg-url}
OWN_DIR=${MEDIAMESH_TEST_PG_DIR:-/var/tmp/mediamesh-test-pg}
own_only=0
[ "${1:-}" = "--own" ] && own_only=1

url_for() { echo "postgresql+psycopg://postgres@127.0.0.1:$1/postgres"; }
answers() {  # port -> does a server there let postgres in without a password?
  command -v psql >/dev/null 2>&1 || return 1
  PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
}
use() { url_for "$1" >"$URL_FILE"; echo "PostgreSQL for the tests: $(cat "$URL_FILE")"; exit 0; }

if [ $own_only -eq 0 ]; then
  answers 5432 && use 5432
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ]; then
    echo "PostgreSQL on 127.0.0.1:5432 does not answer; starting Debian's cluster"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 20); do answers 5432 && use 5432; sleep 1; done
  fi
fi

# 3. A cluster of our own.
bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bin_dir)" ] || [ ! -x "$(bin_dir)/initdb" ]; then
  echo "Installing Debian's postgresql for a throw-away test cluster"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  policy=/usr/sbin/policy-rc.d  # no service started by the package: the cluster below is ours
  made_policy=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null; $SUDO chmod +x $policy; made_policy=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql >/dev/null
  [ $made_policy -eq 1 ] && $SUDO rm -f $policy
fi
BIN=$(bin_dir)
[ -x "$BIN/initdb" ] || { echo "no initdb after installing postgresql" >&2; exit 0; }

# PostgreSQL refuses to run as root: the cluster belongs to the postgres user then.
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_file="$OWN_DIR/port"
if [ -f "$port_file" ] && answers "$(cat "$port_file")"; then use "$(cat "$port_file")"; fi

free_port() {
  if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then echo 5432; return; fi
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mkdir -p "$OWN_DIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$OWN_DIR"
if [ ! -f "$OWN_DIR/data/PG_VERSION" ]; then
  as_owner "$BIN/initdb" -D "$OWN_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$OWN_DIR/initdb.log" 2>&1 \
    || { echo "initdb failed: $OWN_DIR/initdb.log" >&2; exit 0; }
fi
port=$(free_port)
echo "$port" >"$port_file"
as_owner "$BIN/pg_ctl" -D "$OWN_DIR/data" -l "$OWN_DIR/server.log" -w -t 30 start \
  -o "-h 127.0.0.1 -p $port -k $OWN_DIR -c fsync=off -c full_page_writes=off" >/dev/null \
  || { echo "the test cluster did not start: $OWN_DIR/server.log" >&2; tail -5 "$OWN_DIR/server.log" >&2; exit 0; }
for _ in $(seq 1 20); do answers "$port" && use "$port"; sleep 1; done
echo "the test cluster in $OWN_DIR does not answer on 127.0.0.1:$port" >&2
exit 0
