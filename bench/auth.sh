#!/usr/bin/env bash
# bench/auth.sh — what accounts cost on the hot paths: the same wharf binary
# with accounts (--config auth on, Bearer registry token) beside itself with
# --no-auth (the reference), on loopback; plus the token endpoint and the
# squash endpoint with Basic robot credentials. Prints requests/s side by side.
# A benchmark, not a test: it exits non-zero only when something cannot run.
#
#   bash bench/auth.sh [--quick]
#
# Servers listen on 127.0.0.1 on free ports, log nothing and are stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WHARF_BIN=${WHARF_BIN:-$ROOT/build/wharf}
DUR=10
[ "${1:-}" = --quick ] && DUR=3
. "$ROOT/tests/lib/common.sh"
make_work bench-auth
printf 'log: {requests: false}\n' >"$work/quiet.yaml"

export WHARF_KEY_DIR="$work/keys" WHARF_ADMIN_PASSWORD=bench-admin-pw
pa=$(free_port); po=$(free_port)
WHARF_AUTH=1 start_wharf "$pa" "$work/auth" "$work/auth.log" --config "$work/quiet.yaml"; PIDS+=("$WHARF_PID")
start_wharf "$po" "$work/open" "$work/open.log" --config "$work/quiet.yaml"; PIDS+=("$WHARF_PID")

# One small image in both (config + one layer + manifest), pushed over HTTP.
push() {  # push PORT AUTH_HEADER...
  local port=$1; shift
  python3 - "$port" "$@" <<'PY'
import hashlib, json, sys, urllib.request
port, hdrs = sys.argv[1], dict(h.split(": ", 1) for h in sys.argv[2:])
base = "http://127.0.0.1:%s" % port
def put(path, data, ctype):
    r = urllib.request.Request(base + path, data=data, method="POST" if "uploads" in path else "PUT",
                               headers=dict(hdrs, **{"Content-Type": ctype}))
    return urllib.request.urlopen(r).status
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    put("/v2/bench/app/blobs/uploads/?digest=" + d, data, "application/octet-stream")
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(data)}
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
c = blob(cfg); c["mediaType"] = "application/vnd.oci.image.config.v1+json"
layer = blob(b"\0" * 10240)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c,
                "layers": [layer]}).encode()
put("/v2/bench/app/manifests/v1", m, "application/vnd.oci.image.manifest.v1+json")
PY
}
echo bench-pass-1 | "$WHARF_BIN" user create bench --password-stdin --data-dir "$work/auth" >/dev/null
tok() {
  curl -fsS -u "$1" "http://127.0.0.1:$pa/v2/auth?service=wharf&scope=repository:bench/app:pull,push" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
T=$(tok bench:bench-pass-1)
push "$pa" "Authorization: Bearer $T"
push "$po"
ROBOT=$("$WHARF_BIN" robot create bench+ci --data-dir "$work/auth")
"$WHARF_BIN" perm grant bench/app --robot bench+ci --role read --data-dir "$work/auth" >/dev/null
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"

rps() {  # rps URL [wrk args]: requests/s of a DUR-second run after a 1 s warm-up
  local url=$1; shift
  wrk -t2 -c50 -d1s "$@" "$url" >/dev/null 2>&1 || true
  wrk -t2 -c50 -d${DUR}s "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}
BASIC="Authorization: Basic $(printf 'bench+ci:%s' "$ROBOT" | base64 -w0)"
m_auth=$(rps "http://127.0.0.1:$pa/v2/bench/app/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $T")
m_open=$(rps "http://127.0.0.1:$po/v2/bench/app/manifests/v1" -H "$ACCEPT")
s_auth=$(rps "http://127.0.0.1:$pa/c1/squash/bench/app/v1" -H "$BASIC" -H "Range: bytes=0-0")
s_open=$(rps "http://127.0.0.1:$po/c1/squash/bench/app/v1" -H "Range: bytes=0-0")
t_robot=$(rps "http://127.0.0.1:$pa/v2/auth?service=wharf&scope=repository:bench/app:pull" -H "$BASIC")
t_user=$(rps "http://127.0.0.1:$pa/v2/auth?service=wharf&scope=repository:bench/app:pull" \
  -H "Authorization: Basic $(printf 'bench:bench-pass-1' | base64 -w0)")

printf '\n%-52s %14s %14s %8s\n' "requests/s (wrk -t2 -c50, ${DUR}s)" "accounts on" "--no-auth" "ratio"
row() { printf '%-52s %14s %14s %8s\n' "$1" "$2" "$3" "$(python3 -c "print('%.2f' % ($2/$3))" 2>/dev/null || echo -)"; }
row "manifest GET (Bearer registry token)" "$m_auth" "$m_open"
row "cached squash GET, 1 byte (Basic robot token)" "$s_auth" "$s_open"
printf '%-52s %14s\n' "token endpoint, robot token (Basic)" "$t_robot"
printf '%-52s %14s\n' "token endpoint, password (argon2id, cached 60 s)" "$t_user"
