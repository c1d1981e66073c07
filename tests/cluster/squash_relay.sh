#!/usr/bin/env bash
# One squash build per image in the cluster: two replicas (cluster: advertise
# + a shared secret) on one PostgreSQL schema and S3 bucket. Replica A builds
# slowly (WHARF_PAUSE_AT: 60 ms per MiB written). A cold GET on A takes the
# build's lease; a GET of the same image on B does not build again: B relays
# A's stream and its first bytes arrive while A is still building. Both
# bodies equal the cached GET (identity) or inflate to it (gzip). A forged
# relay is refused. Then A is killed -9 in the middle of a build B relays: B's
# client gets a truncated body (curl fails, no hang), the lease is free at
# once, and the next GET on B builds the image itself, whole and right.
# Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT (scripts/test.sh's pg-s3 stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/cluster.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work squash-relay

shared=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
pa=$(free_port); pb=$(free_port)
replica_cfg() { replica_config "$work" "$shared" "$1"; }
WHARF_PAUSE_AT=squash-mid-build:60 start_wharf "$pa" "$work/a" "$work/a.log" --config "$(replica_cfg "$pa")"
a_pid=$WHARF_PID; PIDS+=("$a_pid")
start_wharf "$pb" "$work/b" "$work/b.log" --config "$(replica_cfg "$pb")"; PIDS+=("$WHARF_PID")
A=http://127.0.0.1:$pa B=http://127.0.0.1:$pb
metric() {  # metric BASE NAME: a counter's value (0 when absent)
  curl -sf "$1/metrics" | awk -v n="$2" '$1==n{v=$2} END{print v+0}'
}

BIG_MB=48 bash tests/lib/make-oci-image.sh "$work/img" v1 >/dev/null
BIG_MB=48 bash tests/lib/make-oci-image.sh "$work/img2" v1 >/dev/null
skopeo copy -q --dest-tls-verify=false oci:"$work/img":v1 docker://127.0.0.1:$pa/cl/app:v1
skopeo copy -q --dest-tls-verify=false oci:"$work/img2":v1 docker://127.0.0.1:$pa/cl/app2:v1

# --- a build on A, streamed to a client of B ----------------------------------
t0=$(date +%s.%N)
( set +e; curl -sf -o "$work/a.tar" -w '%{time_starttransfer} %{time_total}\n' -H 'Host: reg.test' "$A/c1/squash/cl/app/v1" >"$work/a.times"; echo $? >"$work/a.rc" ) &
ca=$!
sleep 0.5
( set +e; curl -sf -o "$work/b.tar" -w '%{time_starttransfer} %{time_total}\n' -H 'Host: reg.test' "$B/c1/squash/cl/app/v1" >"$work/b.times"; echo $? >"$work/b.rc" ) &
cb=$!
( set +e; curl -sf -o "$work/bgz.tar.gz" -H 'Host: reg.test' -H 'Accept-Encoding: gzip' "$B/c1/squash/cl/app/v1"; echo $? >"$work/bgz.rc" ) &
cz=$!
wait "$ca" "$cb" "$cz"
[ "$(cat "$work/a.rc")" = 0 ] || fail "the GET on the building replica A failed ($(cat "$work/a.rc")); $(tail -5 "$work/a.log")"
[ "$(cat "$work/b.rc")" = 0 ] || fail "the relayed GET on replica B failed ($(cat "$work/b.rc")); $(tail -5 "$work/b.log")"
[ "$(cat "$work/bgz.rc")" = 0 ] || fail "the relayed gzip GET on replica B failed ($(cat "$work/bgz.rc"))"
read -r a_ttfb a_total <"$work/a.times"
read -r b_ttfb b_total <"$work/b.times"
echo "  A (builder): first byte ${a_ttfb}s, done ${a_total}s; B (relay, asked 0.5 s later): first byte ${b_ttfb}s, done ${b_total}s"
[ "$(metric "$A" wharf_squash_builds_total)" = 1 ] || fail "replica A built $(metric "$A" wharf_squash_builds_total) times (expected 1)"
[ "$(metric "$B" wharf_squash_builds_total)" = 0 ] || fail "replica B built the image again ($(metric "$B" wharf_squash_builds_total) builds) instead of relaying"
[ "$(metric "$B" wharf_squash_relays_total)" -ge 1 ] || fail "replica B relayed nothing"
# B's first byte came while A was still building: well before A's client had its whole body.
python3 -c "import sys; a=float(sys.argv[1]); b=float(sys.argv[2]); sys.exit(0 if b + 0.5 < a - 0.5 else 1)" "$a_total" "$b_ttfb" ||
  fail "replica B's first byte (${b_ttfb}s after its request) came only when the build was nearly over (A done at ${a_total}s): not streamed"
curl -sf -o "$work/cached-a.tar" -H 'Host: reg.test' "$A/c1/squash/cl/app/v1"
curl -sf -o "$work/cached-b.tar" -H 'Host: reg.test' "$B/c1/squash/cl/app/v1"
for f in a.tar b.tar cached-b.tar; do
  cmp -s "$work/$f" "$work/cached-a.tar" || fail "$f differs from the cached GET"
done
gzip -dc "$work/bgz.tar.gz" | cmp -s - "$work/cached-a.tar" || fail "the relayed gzip body does not inflate to the cached GET's bytes"
mkdir "$work/x" && tar -xf "$work/cached-a.tar" -C "$work/x"
echo "PASS one build for two replicas: B relayed A's stream (first byte ${b_ttfb}s, while A built until ${a_total}s); every body equals the cached GET"

# A request claiming to come from a replica must carry the secret's signature.
code=$(curl -s -o "$work/forged" -w '%{http_code}' -H 'X-Wharf-Peer: 1800000000.00ff' -H 'X-Wharf-Repo-Host: evil' "$A/c1/squash/cl/app/v1")
[ "$code" = 401 ] && grep -q UNAUTHORIZED "$work/forged" || fail "a forged relay request got $code $(cat "$work/forged")"
echo "PASS a relay request with a forged signature is refused (401 UNAUTHORIZED)"

# --- the builder dies mid-build ----------------------------------------------
( set +e; curl -sf -o /dev/null "$A/c1/squash/cl/app2/v1"; true ) &
sleep 0.5
( set +e; curl -sf -o "$work/dead.tar" "$B/c1/squash/cl/app2/v1"; echo $? >"$work/dead.rc" ) &
cd_=$!
for _ in $(seq 100); do
  [ "$(stat -c %s "$work/dead.tar" 2>/dev/null || echo 0)" -gt $((4 << 20)) ] && break
  sleep 0.1
done
[ "$(stat -c %s "$work/dead.tar" 2>/dev/null || echo 0)" -gt $((4 << 20)) ] || fail "replica B's client received no bytes of A's build"
kill -9 "$a_pid"
t_kill=$(date +%s)
wait "$cd_"
[ "$(cat "$work/dead.rc")" != 0 ] || fail "the client of the dead build got a complete-looking body"
[ $(($(date +%s) - t_kill)) -le 10 ] || fail "the client of the dead build hung for $(($(date +%s) - t_kill)) s"
echo "PASS the builder killed -9 mid-build: B's client got a truncated body (curl exit $(cat "$work/dead.rc")), no hang"
curl -sf -o "$work/rebuilt.tar" "$B/c1/squash/cl/app2/v1" || fail "the next GET on B after the builder died failed; $(tail -5 "$work/b.log")"
[ "$(metric "$B" wharf_squash_builds_total)" = 1 ] || fail "replica B did not build the image itself after A died"
curl -sf -o "$work/rebuilt2.tar" "$B/c1/squash/cl/app2/v1"
cmp -s "$work/rebuilt.tar" "$work/rebuilt2.tar" || fail "the rebuilt squash differs from its cached GET"
mkdir "$work/y" && tar -xf "$work/rebuilt.tar" -C "$work/y"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$work/y/manifest.json")
tar -xf "$work/y/$layer" -C "$work/y" data/big.bin
orig=$(mktemp -d "$work/o.XXXX")
for l in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"][7:])); print(" ".join(x["digest"][7:] for x in m["layers"]))' "$work/img2"); do
  tar -xzf "$work/img2/blobs/sha256/$l" -C "$orig" 2>/dev/null || true
done
cmp -s "$work/y/data/big.bin" "$orig/data/big.bin" || fail "the rebuilt squash's data/big.bin differs from the image's"
echo "PASS after the builder died, the next GET on the other replica built the image whole (its lease was free at once)"
