#!/usr/bin/env bash
# Makes sure the PostgreSQL server the catalog tests use is up at 127.0.0.1:5432 (trust auth).
# If it is not installed or cannot be started, the PostgreSQL tests fail loudly rather than skip.
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "pg_isready not found: PostgreSQL client tools are missing" >&2
  exit 0
fi
if pg_up; then exit 0; fi
echo "PostgreSQL is down; starting it"
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 30); do pg_up && exit 0; sleep 1; done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 0
