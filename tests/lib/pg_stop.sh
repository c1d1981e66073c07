#!/usr/bin/env bash
# Stops the server tests/lib/pg_start.sh started in BASE, by its PID (SIGINT:
# PostgreSQL's fast shutdown), and waits for it to exit.
set -uo pipefail
BASE=${BASE:?set BASE}
[ -f "$BASE/pid" ] || exit 0
pid=$(cat "$BASE/pid")
kill -INT "$pid" 2>/dev/null || exit 0
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
