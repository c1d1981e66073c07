#!/bin/bash
# tests/auth/matrix.sh — the permission matrix against a fresh wharf with
# accounts: starts wharf on a free port, creates the users, the organization
# and the robots with the admin CLI, runs matrix.py (which pushes the images,
# sets up teams, grants and visibility, then checks every row of matrix.tsv),
# and stops wharf by PID.
#
#   bash tests/auth/matrix.sh [matrix.py args, e.g. -k squash -v]
#
# Exit status: that of matrix.py (0 all rows passed, 1 some failed, 2 setup).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/common.sh"

make_work matrix
# A private copy of the binary: a rebuild replacing build/wharf mid-run must
# not break the CLI calls.
for _ in $(seq 60); do
  [ -x "$WHARF_BIN" ] && cp "$WHARF_BIN" "$work/wharf" 2>/dev/null && "$work/wharf" --help >/dev/null 2>&1 && break
  sleep 1
done
WHARF_BIN=$work/wharf
data=$work/data
export WHARF_KEY_DIR=$work/keys
export WHARF_ADMIN_PASSWORD=admin-pw-0001
unset WHARF_ADMIN_USER WHARF_SECRET_KEY
port=$(free_port)
WHARF_AUTH=1 start_wharf "$port" "$data" "$work/wharf.log" || { cat "$work/wharf.log" >&2; exit 2; }
PIDS+=("$WHARF_PID")

wharf() { "$WHARF_BIN" "$@" --data-dir "$data" >/dev/null; }

# Users (passwords as in matrix.py), all without any grant yet.
for u in alice tread twrite repoadmin creator orgadmin mallory rotor; do
  echo "$u-pw-0001" | wharf user create "$u" --email "$u@example.com" --password-stdin
done
# acme: orgadmin is on its "owners" team (role admin).
wharf org create acme --owner orgadmin
# Robots: of acme (granted by matrix.py) and of alice.
for r in acme+reader acme+writer acme+rotor alice+bot; do wharf robot create "$r"; done

set +e
/usr/bin/python3 "$here/matrix.py" --url "http://127.0.0.1:$port" --wharf "$WHARF_BIN" \
  --data-dir "$data" --admin-password "$WHARF_ADMIN_PASSWORD" "$@"
rc=$?
set -e
if [ "$rc" = 2 ]; then tail -n 30 "$work/wharf.log" >&2; fi
stop_pid "$WHARF_PID"
exit "$rc"
