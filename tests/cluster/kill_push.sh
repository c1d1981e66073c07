#!/usr/bin/env bash
# A replica killed -9 in the middle of a push, through nginx in front of two
# replicas (tests/lib/cluster.sh); the object store's part uploads are slowed
# (WHARF_PAUSE_AT=s3-part-uploaded:MS) so a push is caught in flight.
# - A 1 GiB chunked push by a script: the replica receiving a PATCH is killed;
#   the client asks the upload's status through nginx, resumes from its
#   Range, and completes on the other replica with the right digest.
# - skopeo (--retry-times) and docker push, each killed the same way in the
#   middle of a layer: retrying, each ends with the image pushed (pulled back,
#   byte for byte).
# The killed replica is started again after each case. Needs
# WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT; the docker case runs a
# confined dockerd (tests/e2e/lib.sh), as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/cluster.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work kill-push
. tests/e2e/lib.sh  # the confined dockerd (e2e_docker_start); its scratch dir and cleanup
e2e_make_work kill-push
cleanup_all() {
  local rc=$? f
  if [ $rc != 0 ]; then
    for f in "$work"/c/replica-*.log; do echo "--- last lines of $f:"; grep -v '" 20[0-9] ' "$f" | tail -15; done >&2
  fi
  e2e_docker_stop >/dev/null 2>&1 || true
  _common_cleanup
  (exit $rc)
  _e2e_cleanup
}
trap cleanup_all EXIT
shared=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
export WHARF_PAUSE_AT=s3-part-uploaded:150  # every replica started here, restarts included
cluster_up "$work/c" "$shared"
base=http://$CLUSTER_ADDR

# receiving: which replica reads a request body right now (the bytes its
# connections received, from the kernel's TCP counters, grow by MBs in half
# a second); prints A or B, or nothing.
received() {  # received HOST:PORT: bytes received so far on the connections to it
  ss -tinH state established "( sport = :${1#*:} )" | grep -o 'bytes_received:[0-9]*' | cut -d: -f2 |
    awk '{s+=$1} END{print s+0}'
}
receiving() {
  local a0 b0 a1 b1
  for _ in $(seq 40); do
    a0=$(received "$REPLICA_A"); b0=$(received "$REPLICA_B"); sleep 0.5
    a1=$(received "$REPLICA_A"); b1=$(received "$REPLICA_B")
    if [ $((a1 - a0)) -gt $((4 << 20)) ] && [ $((a1 - a0)) -gt $(((b1 - b0) * 4)) ]; then echo A; return; fi
    if [ $((b1 - b0)) -gt $((4 << 20)) ] && [ $((b1 - b0)) -gt $(((a1 - a0) * 4)) ]; then echo B; return; fi
  done
}
kill_replica() {  # kill_replica A|B: kill -9, wait for it to be gone
  local pid; [ "$1" = A ] && pid=$REPLICA_A_PID || pid=$REPLICA_B_PID
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
}
header() { tr -d '\r' | awk -F': ' -v h="$1" 'tolower($1)==h{print $2}'; }

# --- a script's 1 GiB chunked push ----------------------------------------------
head -c $((1 << 30)) /dev/urandom >"$work/big"
digest=sha256:$(sha256sum "$work/big" | cut -d' ' -f1)
loc=$(curl -sf -D - -o /dev/null -X POST "$base/v2/kill/big/blobs/uploads/" | header location | sed -E 's|^https?://[^/]+||')
[ -n "$loc" ] || fail "no upload session through nginx"
chunk=$((64 << 20))
patch_range() {  # patch_range FROM LEN: one PATCH of the file's bytes FROM..FROM+LEN-1; prints the status
  dd if="$work/big" bs=4M iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none |
    curl -s -o "$work/patch.out" -w '%{http_code}' -X PATCH -H 'Content-Type: application/octet-stream' \
      -H "Content-Range: $1-$(($1 + $2 - 1))" --data-binary @- "$base$loc"
}
off=0
while [ $off -lt $((256 << 20)) ]; do
  code=$(patch_range $off $chunk)
  [ "$code" = 202 ] || fail "PATCH at $off: $code $(cat "$work/patch.out")"
  off=$((off + chunk))
done
# A 256 MiB PATCH (slowed by the paused part uploads); the replica taking it dies.
( set +e; patch_range $off $((256 << 20)) >"$work/killed.code" ) & p=$!
victim=$(receiving)
[ -n "$victim" ] || fail "could not tell which replica receives the PATCH"
kill_replica "$victim"
wait "$p" || true
echo "  replica $victim killed -9 during a PATCH at $off; the client's PATCH ended without an answer (curl: $(cat "$work/killed.code"))"
# The client asks where the upload stands (any replica answers) and resumes there.
status=$(curl -s -D - -o /dev/null "$base$loc")
code=$(head -1 <<<"$status" | awk '{print $2}')
[ "$code" = 204 ] || fail "the upload's status through nginx after the kill: $code"
range=$(header range <<<"$status")
next=$((${range#*-} + 1))
[ "$next" -ge "$off" ] && [ "$next" -lt $((1 << 30)) ] || fail "the status after the kill says Range: $range"
echo "  the upload's status (from the surviving replica): Range $range; resuming at $next"
while [ "$next" -lt $((1 << 30)) ]; do
  len=$(((1 << 30) - next)); [ $len -gt $chunk ] && len=$chunk
  code=$(patch_range "$next" "$len")
  [ "$code" = 202 ] || fail "a resumed PATCH at $next: $code $(cat "$work/patch.out")"
  next=$((next + len))
done
case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
code=$(curl -s -o "$work/put.out" -w '%{http_code}' -X PUT "$base$loc${sep}digest=$digest")
[ "$code" = 201 ] || fail "the final PUT after resuming: $code $(cat "$work/put.out")"
got=sha256:$(curl -sf "$base/v2/kill/big/blobs/$digest" | sha256sum | cut -d' ' -f1)
[ "$got" = "$digest" ] || fail "the resumed 1 GiB blob reads back as $got"
echo "PASS replica $victim killed -9 mid-PATCH of a 1 GiB chunked push: the client resumed from the status's Range through nginx and the blob ($digest) is whole"
replica_up "$work/c" "$victim"

# --- skopeo, retrying -----------------------------------------------------------
BIG_MB=256 bash tests/lib/make-oci-image.sh "$work/img" v1 >/dev/null
( set +e; skopeo copy -q --retry-times 5 --dest-tls-verify=false oci:"$work/img":v1 "docker://$CLUSTER_ADDR/kill/skopeo:v1" \
    >"$work/skopeo.log" 2>&1; echo $? >"$work/skopeo.rc" ) & p=$!
victim=$(receiving)
[ -n "$victim" ] || fail "could not tell which replica receives skopeo's layer"
kill_replica "$victim"
wait "$p"
# skopeo retries what its rules call a network error (a connection closed
# while it reads the answer); one closed while it writes the body ends the
# command, and its user runs it again: either way the image must end pushed.
how="skopeo's own retry (--retry-times) pushed it"
if [ "$(cat "$work/skopeo.rc")" != 0 ]; then
  how="skopeo stopped ($(grep -o 'msg="[^"]*' "$work/skopeo.log" | tail -1 | cut -c6-90)...) and running it again pushed it"
  skopeo copy -q --retry-times 5 --dest-tls-verify=false oci:"$work/img":v1 "docker://$CLUSTER_ADDR/kill/skopeo:v1" ||
    fail "skopeo run again after replica $victim was killed did not push"
fi
skopeo copy -q --src-tls-verify=false "docker://$CLUSTER_ADDR/kill/skopeo:v1" oci:"$work/back":v1
for l in $(ls "$work/img/blobs/sha256"); do
  cmp -s "$work/img/blobs/sha256/$l" "$work/back/blobs/sha256/$l" || fail "skopeo's image: blob $l differs after the kill"
done
echo "PASS replica $victim killed -9 in the middle of skopeo's push: $how; the image pulls back byte for byte"
replica_up "$work/c" "$victim"

# --- docker push, retrying ------------------------------------------------------
e2e_docker_start "$E2E_WORK/engine" 2>"$work/engine.log" || fail "dockerd did not start: $(tail -5 "$work/engine.log")"
skopeo copy -q oci:"$work/img":v1 "docker-archive:$work/img.tar:$CLUSTER_ADDR/kill/docker:v1"
docker load -q -i "$work/img.tar" >/dev/null
image_id=$(docker image inspect --format '{{.Id}}' "$CLUSTER_ADDR/kill/docker:v1")
( set +e; docker push "$CLUSTER_ADDR/kill/docker:v1" >"$work/docker.log" 2>&1; echo $? >"$work/docker.rc" ) & p=$!
victim=$(receiving)
[ -n "$victim" ] || fail "could not tell which replica receives docker's layer"
kill_replica "$victim"
wait "$p"
[ "$(cat "$work/docker.rc")" = 0 ] || fail "docker push did not succeed after replica $victim was killed: $(tail -5 "$work/docker.log")"
grep -qi 'retrying' "$work/docker.log" && retried="docker retried the layer" || retried="docker's retry was not needed"
docker rmi "$CLUSTER_ADDR/kill/docker:v1" >/dev/null
docker pull -q "$CLUSTER_ADDR/kill/docker:v1" >/dev/null || fail "docker pull of the image pushed across the kill failed"
[ "$(docker image inspect --format '{{.Id}}' "$CLUSTER_ADDR/kill/docker:v1")" = "$image_id" ] ||
  fail "the image docker pulled back is not the one it pushed"
echo "PASS replica $victim killed -9 in the middle of docker push ($retried): the image pulls back with the same ID"
