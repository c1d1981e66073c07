#!/bin/bash
# tests/auth/listing.sh — lists of repositories across their pages: 1040
# repositories in one namespace, half pushed before accounts existed (no
# settings rows) and half created through the API, interleaved by name; a
# user granted a third of them, a fifth public. The API's repository list
# (paged, filtered with ?q=) and /v2/_catalog must show each caller exactly
# what it may read, in order, with tag counts (listing.py).
#
#   bash tests/auth/listing.sh [CONFIG.yaml]   (e.g. metadata on PostgreSQL)
#
# Servers listen on 127.0.0.1 and are stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/common.sh"
make_work listing
cp "$WHARF_BIN" "$work/wharf"
WHARF_BIN=$work/wharf
data=$work/data
export WHARF_KEY_DIR=$work/keys WHARF_ADMIN_PASSWORD=listing-admin-1
cfg=(); [ -n "${1:-}" ] && cfg=(--config "$1")
port=$(free_port)
start_wharf "$port" "$data" "$work/open.log" "${cfg[@]}"
/usr/bin/python3 "$here/listing.py" push "http://127.0.0.1:$port" || { tail -20 "$work/open.log" >&2; exit 1; }
stop_pid "$WHARF_PID"
WHARF_AUTH=1 start_wharf "$port" "$data" "$work/auth.log" "${cfg[@]}"
PIDS+=("$WHARF_PID")
echo reader-password-1 | "$WHARF_BIN" user create reader --password-stdin --data-dir "$data" "${cfg[@]}" >/dev/null
/usr/bin/python3 "$here/listing.py" check "http://127.0.0.1:$port" "$WHARF_ADMIN_PASSWORD" ||
  { tail -20 "$work/auth.log" >&2; exit 1; }
