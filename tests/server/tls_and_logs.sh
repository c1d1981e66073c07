#!/usr/bin/env bash
# Server-level behaviour a user notices: optional TLS from the config (and a
# clear 400 for plain HTTP on the TLS port), TLS ClientHello on the plain port
# answered with HTTP/1.0 400 so clients fall back, JSON request logs, flags
# overriding the config file, and SIGTERM draining a request in flight.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
make_work server

# --- TLS from the config file
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$(free_port)
cat >"$work/tls.yaml" <<EOC
listen: 127.0.0.1:1
tls: {cert: $work/cert.pem, key: $work/key.pem}
EOC
"$WHARF_BIN" serve --no-auth --config "$work/tls.yaml" --listen "127.0.0.1:$port" --data-dir "$work/tls-data" >"$work/tls.log" 2>&1 &
PIDS=($!)
for _ in $(seq 50); do curl -s -o /dev/null --cacert "$work/cert.pem" "https://127.0.0.1:$port/v2/" && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" "https://127.0.0.1:$port/v2/")
[ "$code" = 200 ] || fail "TLS GET /v2/ gave $code"
echo "PASS TLS from config (and --listen overrides the file's listen)"
plain=$(curl -s "http://127.0.0.1:$port/v2/" || true)
[[ $plain == *"HTTPS"* ]] || fail "plain HTTP on the TLS port did not get a clear 400: '$plain'"
echo "PASS plain HTTP on the TLS port gets a 400 that says why"
bash "$here/../lib/make-oci-image.sh" "$work/img" v1 >/dev/null
mkdir -p "$work/certs.d" && cp "$work/cert.pem" "$work/certs.d/ca.crt"
skopeo copy -q --dest-cert-dir "$work/certs.d" "oci:$work/img:v1" "docker://127.0.0.1:$port/tls/img:v1" \
  || fail "skopeo push over TLS failed"
echo "PASS skopeo pushes over TLS with verification"
stop_pid "${PIDS[0]}"

# --- delete.enabled: false refuses deletions and keeps the content
port=$(free_port)
printf 'delete: {enabled: false}\n' >"$work/nodelete.yaml"
start_wharf "$port" "$work/nd-data" "$work/nd.log" --config "$work/nodelete.yaml"
PIDS=("$WHARF_PID")
skopeo copy -q --dest-tls-verify=false "oci:$work/img:v1" "docker://127.0.0.1:$port/nd/img:v1"
md=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/nd/img/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
cfgd=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/nd/img/manifests/v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')
for u in "manifests/$md" "manifests/v1" "blobs/$cfgd"; do
  code=$(curl -s -o "$work/nd.json" -w '%{http_code}' -X DELETE "http://127.0.0.1:$port/v2/nd/img/$u")
  [ "$code" = 405 ] || fail "DELETE $u with deletion disabled gave $code"
  grep -q '"UNSUPPORTED"' "$work/nd.json" || fail "DELETE $u: not an UNSUPPORTED error: $(cat "$work/nd.json")"
done
curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/nd/img/manifests/v1" || fail "tag gone"
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/nd/img/blobs/$cfgd" || fail "blob gone"
echo "PASS delete.enabled: false answers 405 UNSUPPORTED and keeps manifests, tags and blobs"
stop_pid "$WHARF_PID"

# --- a client that never finishes its headers is cut off (header timeout)
port=$(free_port)
printf 'timeouts: {header_seconds: 1, body_seconds: 1}\n' >"$work/timeouts.yaml"
start_wharf "$port" "$work/to-data" "$work/to.log" --config "$work/timeouts.yaml"
PIDS=("$WHARF_PID")
python3 - "$port" <<'PY' || fail "slow clients are not cut off by the header/body timeouts"
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")       # headers never finished
s.settimeout(5)
t = time.time(); data = s.recv(100)
assert data == b"" and time.time() - t < 4, (data, time.time() - t)
b = socket.create_connection(("127.0.0.1", port))       # a body that stops arriving
b.sendall(b"POST /v2/slow/blobs/uploads/?digest=sha256:" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
b.settimeout(5)
t = time.time(); data = b.recv(100)
assert time.time() - t < 4, time.time() - t
PY
echo "PASS header and body timeouts cut off clients that stall"
stop_pid "$WHARF_PID"

# --- TLS ClientHello on the plain port, JSON logs
port=$(free_port)
start_wharf "$port" "$work/plain-data" "$work/plain.log" --log-format json
PIDS=("$WHARF_PID")
answer=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex("16030100a1010000"))  # the start of a ClientHello
print(s.recv(100).decode(errors="replace").split("\r\n")[0])
PY
)
[ "$answer" = "HTTP/1.0 400 Bad Request" ] || fail "ClientHello on the plain port got '$answer'"
echo "PASS TLS ClientHello on the plain port answered with HTTP/1.0 400"
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/_catalog"
python3 - "$work/plain.log" <<'PY' || fail "request log lines are not JSON with status, bytes and duration"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
reqs = [json.loads(l) for l in lines if '"status"' in l]
assert any(r["target"] == "/v2/_catalog" and r["status"] == 200 and "duration_ms" in r and "bytes_out" in r for r in reqs), reqs
for l in open(sys.argv[1]):
    if l.strip() and not l.startswith("wharf is ready"):
        json.loads(l)  # every log line is JSON
PY
echo "PASS --log-format json: one JSON object per line, requests with status, bytes, duration"

# --- clients hanging up in the middle of a (sendfile) blob download
head -c 30000000 /dev/urandom >"$work/hangup"
hd="sha256:$(sha256sum "$work/hangup" | cut -d' ' -f1)"
curl -sf -X POST -H 'Content-Type: application/octet-stream' --data-binary @"$work/hangup" \
  "http://127.0.0.1:$port/v2/hang/blobs/uploads/?digest=$hd" -o /dev/null || fail "push for the hang-up test"
for _ in 1 2 3; do curl -s -N "http://127.0.0.1:$port/v2/hang/blobs/$hd" | head -c 1000 >/dev/null || true; done
sleep 0.3
kill -0 "$WHARF_PID" 2>/dev/null || fail "wharf died when clients hung up mid-download (SIGPIPE?)"
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" || fail "wharf stopped answering after clients hung up"
echo "PASS clients hanging up mid-download leave the server running"

# --- SIGTERM drains a request in flight
head -c 20000000 /dev/urandom >"$work/big"
digest="sha256:$(sha256sum "$work/big" | cut -d' ' -f1)"
curl -s -o "$work/push.out" -w '%{http_code}' --limit-rate 5M -X POST -H 'Content-Type: application/octet-stream' \
  --data-binary @"$work/big" "http://127.0.0.1:$port/v2/drain/blobs/uploads/?digest=$digest" >"$work/push.code" &
curl_pid=$!
sleep 1
kill -TERM "$WHARF_PID"
wait "$curl_pid" || true
[ "$(cat "$work/push.code")" = 201 ] || fail "push in flight during SIGTERM got $(cat "$work/push.code")"
for _ in $(seq 50); do kill -0 "$WHARF_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$WHARF_PID" 2>/dev/null && fail "wharf still running after SIGTERM and an idle moment"
start_wharf "$port" "$work/plain-data" "$work/plain.log"
PIDS=("$WHARF_PID")
got=$(curl -sf "http://127.0.0.1:$port/v2/drain/blobs/$digest" | sha256sum | cut -d' ' -f1)
[ "sha256:$got" = "$digest" ] || fail "blob pushed during drain is not intact"
echo "PASS SIGTERM lets a request in flight finish, then exits"
