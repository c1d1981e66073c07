#!/bin/bash
# tests/auth/hardening.sh — regression checks for the security review of
# accounts (see hardening.py): pushes two repositories to an open registry,
# restarts the same data directory with accounts, runs the checks. Servers
# listen on 127.0.0.1 and are stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/common.sh"
make_work hardening
cp "$WHARF_BIN" "$work/wharf"
WHARF_BIN=$work/wharf
data=$work/data
export WHARF_KEY_DIR=$work/keys WHARF_ADMIN_PASSWORD=hardening-admin-1
port=$(free_port)
# Repositories that predate accounts.
start_wharf "$port" "$data" "$work/open.log"
/usr/bin/python3 - "$port" <<'PY'
import sys
sys.path.insert(0, "tests/auth")
from matrix import Http, make_image, sha256, MT_MANIFEST
h = Http("http://127.0.0.1:" + sys.argv[1])
for repo in ("legacy/app", "acme/app"):
    img = make_image(repo)
    for b in img["blobs"]:
        assert h.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(b)), {}, b).status == 201
    assert h.request("PUT", "/v2/%s/manifests/v1" % repo, {"Content-Type": MT_MANIFEST}, img["manifest"]).status == 201
PY
stop_pid "$WHARF_PID"
printf 'trusted_proxies: []\n' >"$work/auth.yaml"
WHARF_AUTH=1 start_wharf "$port" "$data" "$work/auth.log" --config "$work/auth.yaml"
PIDS+=("$WHARF_PID")
/usr/bin/python3 "$here/hardening.py" "http://127.0.0.1:$port" "$WHARF_ADMIN_PASSWORD" "$WHARF_BIN" "$data" ||
  { tail -20 "$work/auth.log" >&2; exit 1; }
