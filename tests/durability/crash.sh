#!/usr/bin/env bash
# Durability: kills wharf with SIGKILL at named points of a push (power-cut
# equivalent), restarts it, and checks with verify.py that every tag resolves
# to a manifest whose blobs exist and hash correctly and that no partial blob
# is visible. Also: upload sessions survive a restart; abandoned sessions
# expire with their bytes. Needs skopeo and a built wharf.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
make_work crash

# Two images that share their lower layers: the crash push always has new bytes to write.
bash "$here/../lib/make-oci-image.sh" "$work/img" v1 >/dev/null
bash "$here/../lib/make-oci-image.sh" "$work/img2" v1 >/dev/null
skopeo_push() { skopeo copy -q --retry-times 0 --dest-tls-verify=false "oci:$work/img:v1" "docker://127.0.0.1:$1/$2" 2>>"$work/skopeo.log"; }

for point in blob-written before-blob-rename after-blob-rename before-tag-commit after-tag-commit; do
  port=$(free_port)
  data="$work/data-$point"
  log="$work/wharf-$point.log"
  start_wharf "$port" "$data" "$log"; PIDS=("$WHARF_PID")
  skopeo_push "$port" ns/base:v1 || fail "$point: baseline push failed"
  stop_pid "$WHARF_PID"
  # The crash run: the process dies at the named point during this push.
  WHARF_CRASH_AT=$point "$WHARF_BIN" serve --no-auth --listen "127.0.0.1:$port" --data-dir "$data" >>"$log" 2>&1 &
  crash_pid=$!; PIDS=("$crash_pid")
  wait_http "http://127.0.0.1:$port/v2/"
  if skopeo copy -q --retry-times 0 --dest-tls-verify=false --format v2s2 "oci:$work/img2:v1" \
       "docker://127.0.0.1:$port/ns/crashed:v1" 2>>"$work/skopeo.log"; then
    fail "$point: push succeeded although the server was told to die"
  fi
  for _ in $(seq 50); do kill -0 "$crash_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$crash_pid" 2>/dev/null && fail "$point: the crash point was never reached"
  { wait "$crash_pid"; } 2>/dev/null || true
  start_wharf "$port" "$data" "$log"; PIDS=("$WHARF_PID")
  python3 "$here/verify.py" "http://127.0.0.1:$port" >"$work/verify.out" || { cat "$work/verify.out"; fail "$point: inconsistent after restart"; }
  # Each blob of the interrupted push is either absent or whole.
  for f in "$work"/img2/blobs/sha256/*; do
    d="sha256:$(basename "$f")"
    code=$(curl -s -o "$work/got" -w '%{http_code}' "http://127.0.0.1:$port/v2/ns/crashed/blobs/$d")
    case $code in
      404) ;;
      200) [ "sha256:$(sha256sum "$work/got" | cut -d' ' -f1)" = "$d" ] || fail "$point: partial blob $d visible" ;;
      *) fail "$point: blob $d answered $code" ;;
    esac
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/v2/ns/base/manifests/v1" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    || fail "$point: the tag pushed before the crash is gone"
  # A client retrying after the crash succeeds.
  skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$work/img2:v1" "docker://127.0.0.1:$port/ns/crashed:v1" \
    || fail "$point: retry push after restart failed"
  python3 "$here/verify.py" "http://127.0.0.1:$port" >"$work/verify.out" || { cat "$work/verify.out"; fail "$point: inconsistent after retry"; }
  echo "PASS crash at $point: $(tail -1 "$work/verify.out")"
  stop_pid "$WHARF_PID"
done

# Upload sessions (and their digest state) survive a restart, even a kill -9.
port=$(free_port); data="$work/data-resume"; log="$work/wharf-resume.log"
start_wharf "$port" "$data" "$log"; PIDS=("$WHARF_PID")
head -c 3000000 /dev/urandom >"$work/blob"
head -c 1000000 "$work/blob" >"$work/part1"; tail -c +1000001 "$work/blob" >"$work/part2"
digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"
loc=$(curl -sf -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/ns/resume/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
[ -n "$loc" ] || fail "no Location from upload start"
curl -sf -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 0-999999' --data-binary @"$work/part1" "$loc" -o /dev/null \
  || fail "first chunk refused"
kill -9 "$WHARF_PID"; wait "$WHARF_PID" 2>/dev/null || true
start_wharf "$port" "$data" "$log"; PIDS=("$WHARF_PID")
range=$(curl -sf -D - -o /dev/null "$loc" | tr -d '\r' | awk -F': ' 'tolower($1)=="range"{print $2}')
[ "$range" = "0-999999" ] || fail "upload status after restart says Range '$range', expected 0-999999"
curl -sf -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 1000000-2999999' --data-binary @"$work/part2" "$loc" -o /dev/null \
  || fail "second chunk after restart refused"
sep='?'; case "$loc" in *\?*) sep='&';; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$loc${sep}digest=$digest")
[ "$code" = 201 ] || fail "completing the resumed upload gave $code"
got=$(curl -sf "http://127.0.0.1:$port/v2/ns/resume/blobs/$digest" | sha256sum | cut -d' ' -f1)
[ "sha256:$got" = "$digest" ] || fail "resumed blob has other content"
echo "PASS upload session survives kill -9 and restart (digest state restored from the session)"

# A PATCH cut off half-way keeps what arrived: the status says so, and the
# upload continued from there (after a kill -9 too) has the right digest.
python3 - "$port" "$work/blob" >"$work/cut.out" <<'PY' || fail "cut-off PATCH: $(cat "$work/cut.out")"
import socket, sys, urllib.request
port, blob = int(sys.argv[1]), open(sys.argv[2], "rb").read()
r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/v2/ns/cut/blobs/uploads/" % port, method="POST"))
loc = r.headers["Location"]
path = loc.split(str(port), 1)[1]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
           % (path, len(blob))).encode() + blob[:1000000])
s.shutdown(socket.SHUT_WR)
s.recv(100)
s.close()
print(loc)
PY
loc=$(tail -1 "$work/cut.out")
range=""
for _ in $(seq 50); do
  range=$(curl -sf -D - -o /dev/null "$loc" | tr -d '\r' | awk -F': ' 'tolower($1)=="range"{print $2}')
  [ "$range" = "0-999999" ] && break; sleep 0.1
done
[ "$range" = "0-999999" ] || fail "after a PATCH cut off at 1000000 bytes the status says Range '$range'"
kill -9 "$WHARF_PID"; wait "$WHARF_PID" 2>/dev/null || true
start_wharf "$port" "$data" "$log"; PIDS=("$WHARF_PID")
curl -sf -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 1000000-2999999' --data-binary @"$work/part2" "$loc" -o /dev/null \
  || fail "continuing the cut-off upload refused"
sep='?'; case "$loc" in *\?*) sep='&';; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$loc${sep}digest=$digest")
[ "$code" = 201 ] || fail "completing the cut-off upload gave $code"
echo "PASS a PATCH cut off half-way keeps the bytes that arrived; the upload continues from there after kill -9"
stop_pid "$WHARF_PID"

# Abandoned sessions expire and their bytes are removed.
port=$(free_port); data="$work/data-expiry"; log="$work/wharf-expiry.log"
printf 'uploads:\n  expiry_seconds: 1\n  purge_interval_seconds: 1\n' >"$work/expiry.yaml"
start_wharf "$port" "$data" "$log" --config "$work/expiry.yaml"; PIDS=("$WHARF_PID")
loc=$(curl -sf -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/ns/old/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
curl -sf -X PATCH --data-binary @"$work/part1" -H 'Content-Type: application/octet-stream' "$loc" -o /dev/null
[ "$(ls "$data/uploads" | grep -vc '^\.' || true)" -ge 1 ] || fail "staged bytes not where expected"
sleep 3.5
code=$(curl -s -o /dev/null -w '%{http_code}' "$loc")
[ "$code" = 404 ] || fail "expired upload session still answers $code"
left=$(ls "$data/uploads" | grep -vc '^\.' || true)
[ "$left" = 0 ] || fail "expired upload left $left staged files"
echo "PASS abandoned upload sessions expire with their bytes"
stop_pid "$WHARF_PID"

# A squash build killed mid-way leaves nothing visible; after a restart the
# next request builds afresh and gets exactly what an undisturbed build gives,
# and the half-written staging file is purged with the expired sessions.
port=$(free_port); data="$work/data-squash"; log="$work/wharf-squash.log"
start_wharf "$port" "$data" "$log" --config "$work/expiry.yaml"; PIDS=("$WHARF_PID")
skopeo_push "$port" ns/sq:v1 || fail "push for the squash crash test failed"
curl -sf "http://127.0.0.1:$port/c1/squash/ns/sq/v1" -o "$work/reference.tar" || fail "reference squash failed"
curl -sf -X DELETE "http://127.0.0.1:$port/v2/ns/sq/manifests/$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/ns/sq/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')" \
  || fail "deleting the manifest failed"
skopeo_push "$port" ns/sq:v1 || fail "re-push failed"   # same manifest again, its cache entry dropped with the delete
stop_pid "$WHARF_PID"
WHARF_CRASH_AT=squash-mid-build "$WHARF_BIN" serve --no-auth --listen "127.0.0.1:$port" --data-dir "$data" --config "$work/expiry.yaml" >>"$log" 2>&1 &
crash_pid=$!; PIDS=("$crash_pid")
wait_http "http://127.0.0.1:$port/v2/"
if curl -sf "http://127.0.0.1:$port/c1/squash/ns/sq/v1" -o "$work/partial.tar"; then
  fail "squash succeeded although the server was told to die mid-build"
fi
for _ in $(seq 50); do kill -0 "$crash_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$crash_pid" 2>/dev/null && fail "the squash crash point was never reached"
{ wait "$crash_pid"; } 2>/dev/null || true
ls "$data/uploads" | grep -q '^squash-' || fail "expected the killed build's staging file (the test would prove nothing)"
start_wharf "$port" "$data" "$log" --config "$work/expiry.yaml"; PIDS=("$WHARF_PID")
curl -sf "http://127.0.0.1:$port/c1/squash/ns/sq/v1" -o "$work/after.tar" || fail "squash after restart failed"
cmp "$work/reference.tar" "$work/after.tar" || fail "squash after the crash differs from an undisturbed one"
sleep 3.5
ls "$data/uploads" | grep -q '^squash-' && fail "the killed build's staging file was never purged"
echo "PASS squash build killed mid-way: nothing cached, rebuilt identically after restart, staging purged"
stop_pid "$WHARF_PID"
