#!/usr/bin/env bash
# What replicas share besides requests: two replicas (cluster: sections) on
# one PostgreSQL schema and S3 bucket.
# - Periodic work runs once in the cluster: upload expiry every second on
#   both replicas is run about once a second in all (not twice), and an
#   abandoned upload made through A is expired (by either).
# - The in-process tag cache keeps its bound across replicas: a tag moved
#   through A is served by B within a second although cache.metadata_ttl_ms
#   is 30 s here (PostgreSQL LISTEN/NOTIFY drops B's entry; the TTL is only
#   the fallback for a lost notification).
# - A replica configured on the embedded backends refuses to start, naming them.
# Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT (scripts/test.sh's pg-s3 stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/cluster.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work shared-state

shared=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
pa=$(free_port); pb=$(free_port)
replica_cfg() {
  replica_config "$work" "$shared" "$1" 'uploads: {expiry_seconds: 2, purge_interval_seconds: 1}
cache: {metadata_ttl_ms: 30000}'
}
start_wharf "$pa" "$work/a" "$work/a.log" --config "$(replica_cfg "$pa")"; PIDS+=("$WHARF_PID")
start_wharf "$pb" "$work/b" "$work/b.log" --config "$(replica_cfg "$pb")"; PIDS+=("$WHARF_PID")
A=http://127.0.0.1:$pa B=http://127.0.0.1:$pb
runs() {  # runs BASE: how often BASE ran the upload expiry
  curl -sf "$1/metrics" | awk '$1=="wharf_periodic_runs_total{job=\"expire-uploads\"}"{v=$2} END{print v+0}'
}

# --- periodic work once in the cluster -----------------------------------------
loc=$(curl -sf -D - -o /dev/null -X POST "$A/v2/st/app/blobs/uploads/" | tr -d '\r' |
  awk -F': ' 'tolower($1)=="location"{print $2}' | sed -E 's|^https?://[^/]+||')
[ -n "$loc" ] || fail "no upload session"
r0=$(($(runs "$A") + $(runs "$B")))
sleep 8
r1=$(($(runs "$A") + $(runs "$B")))
n=$((r1 - r0))
echo "  upload expiry ran $n times in 8 s over both replicas (A: $(runs "$A"), B: $(runs "$B") in all)"
[ "$n" -ge 4 ] || fail "upload expiry ran only $n times in 8 s (interval 1 s): the claim starves it"
[ "$n" -le 10 ] || fail "upload expiry ran $n times in 8 s with an interval of 1 s: each replica runs it (expected about 8 in all)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$B$loc")
[ "$code" = 404 ] || fail "the abandoned upload was not expired: its status is $code"
echo "PASS periodic work ran once per interval in the cluster ($n runs in 8 s on two replicas), and expired the abandoned upload"

# --- a tag moved through A, served by B within the cache's bound ------------------
bash tests/lib/make-oci-image.sh "$work/img1" v1 >/dev/null
bash tests/lib/make-oci-image.sh "$work/img2" v1 >/dev/null
skopeo copy -q --dest-tls-verify=false oci:"$work/img1":v1 docker://127.0.0.1:$pa/st/app:t
skopeo copy -q --dest-tls-verify=false oci:"$work/img2":v1 docker://127.0.0.1:$pa/st/app:other
digest_on() {  # digest_on BASE: the digest tag t resolves to there
  curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$1/v2/st/app/manifests/t" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}
d1=$(digest_on "$B")
d2=$(curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$A/v2/st/app/manifests/other" | tr -d '\r' |
  awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[ -n "$d1" ] && [ -n "$d2" ] && [ "$d1" != "$d2" ] || fail "the two images have no distinct digests ($d1, $d2)"
curl -sf -o "$work/m2" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$A/v2/st/app/manifests/other"
for _ in 1 2 3; do digest_on "$B" >/dev/null; done  # B has t cached
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$work/m2" \
  "$A/v2/st/app/manifests/t" -o /dev/null
t0=$(date +%s%N)
for _ in $(seq 50); do
  [ "$(digest_on "$B")" = "$d2" ] && break
  sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(digest_on "$B")" = "$d2" ] || fail "replica B still serves the old digest of the tag 2.5 s after it moved on A (its cache was not told)"
[ "$ms" -le 1000 ] || fail "replica B served the moved tag after ${ms} ms (expected within a second: a notification drops its cache entry)"
echo "PASS a tag moved through A is served by B after ${ms} ms (notified; cache.metadata_ttl_ms is 30000)"
# the same for a deleted tag (cached on B first)
curl -sf -o /dev/null -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$B/v2/st/app/manifests/other"
curl -sf -X DELETE "$A/v2/st/app/manifests/other" -o /dev/null || fail "DELETE of a tag via A failed"
code=$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$B/v2/st/app/manifests/other")
[ "$code" = 404 ] || fail "replica B still serves a tag deleted through A: $code"
echo "PASS a tag deleted through A is gone on B at once"

# --- a replica on the embedded backends is refused ------------------------------
printf 'cluster: {advertise: "127.0.0.1:1", secret_file: "%s"}\n' "$work/secret" >"$work/embedded.yaml"
set +e
out=$("$WHARF_BIN" serve --no-auth --listen 127.0.0.1:$(free_port) --data-dir "$work/e" --config "$work/embedded.yaml" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "a replica on sqlite + filesystem started"
grep -q 'metadata.driver is sqlite and storage.driver is filesystem' <<<"$out" || fail "the refusal does not name the embedded backends: $out"
echo "PASS a replica configured on the embedded backends refuses to start: $(grep -o 'cluster.advertise is set[^:]*: [^:]*' <<<"$out" | head -1)"
