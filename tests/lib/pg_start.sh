#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 server for the tests: BASE=DIR PGPORT=N
# bash tests/lib/pg_start.sh prints its DSN (database "wharf"). Listens on
# 127.0.0.1 only; runs as user postgres (initdb and pg_ctl refuse root).
# Its PID is in $BASE/pid; stop it with tests/lib/pg_stop.sh (by that PID).
set -euo pipefail
PGBIN=/usr/lib/postgresql/15/bin
PGPORT=${PGPORT:?set PGPORT}
BASE=${BASE:?set BASE to a scratch directory}
RUNUSER=${PGRUNUSER:-postgres}  # apt's postgresql-15 creates it
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is not installed (apt-get install postgresql-15)" >&2; exit 1; }
id "$RUNUSER" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$RUNUSER"
rm -rf "$BASE"; mkdir -p "$BASE"; chown "$RUNUSER" "$BASE"
as() { if [ "$(id -u)" = 0 ]; then runuser -u "$RUNUSER" -- "$@"; else "$@"; fi; }
cd "$BASE"
as "$PGBIN/initdb" -D "$BASE/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$BASE/initdb.log" 2>&1
# fsync stays on where a test kills the server (durability), off elsewhere by FSYNC=off
as "$PGBIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $BASE -c fsync=${FSYNC:-off} -c full_page_writes=off -c max_connections=300" \
  start >/dev/null
as "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres wharf
head -1 "$BASE/data/postmaster.pid" >"$BASE/pid"
echo "postgresql://postgres@127.0.0.1:$PGPORT/wharf"
