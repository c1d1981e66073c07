#!/usr/bin/env bash
# Online garbage collection on two replicas: both run gc every second with no
# grace period (gc: {interval_seconds: 1, grace_minutes: 0}; the schedule is
# claimed once in the cluster) while images are pushed through both replicas
# at once, and while an image whose blobs were just unlinked (garbage) is
# pushed again. Afterwards every pushed image pulls, byte for byte; the
# garbage that nobody pushed again is gone; /metrics counts the runs and what
# they reviewed, kept and removed.
# Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT (scripts/test.sh's pg-s3 stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/cluster.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work gc-online

shared=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
store=$(backend_name "$work/shared")
pa=$(free_port); pb=$(free_port)
replica_cfg() { replica_config "$work" "$shared" "$1" 'gc: {interval_seconds: 1, grace_minutes: 0}'; }
start_wharf "$pa" "$work/a" "$work/a.log" --config "$(replica_cfg "$pa")"; PIDS+=("$WHARF_PID")
start_wharf "$pb" "$work/b" "$work/b.log" --config "$(replica_cfg "$pb")"; PIDS+=("$WHARF_PID")
A=127.0.0.1:$pa B=127.0.0.1:$pb
counter() {  # counter ADDR SERIES: a /metrics value (0 when absent)
  curl -sf "http://$1/metrics" | awk -v n="$2" '$1==n{v=$2} END{print v+0}'
}
both() { echo $(($(counter "$A" "$1") + $(counter "$B" "$1"))); }
layers_of() {  # layers_of OCI_DIR: the layer digests (hex) of its one image
  python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json"))["manifests"][0]["digest"][7:]
print(" ".join(l["digest"][7:] for l in json.load(open(d+"/blobs/sha256/"+i))["layers"]))' "$1"
}
push() { skopeo copy -q --retry-times 0 --dest-tls-verify=false "oci:$1:v1" "docker://$2/$3:v1"; }

# Garbage: two images whose layers are then unlinked (DELETE of each blob).
for g in 1 2; do
  bash tests/lib/make-oci-image.sh "$work/g$g" v1 >/dev/null
  push "$work/g$g" "$A" "gco/garbage$g"
  md=$(curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$A/v2/gco/garbage$g/manifests/v1" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  curl -sf -X DELETE "http://$A/v2/gco/garbage$g/manifests/$md" -o /dev/null || fail "DELETE of garbage$g's manifest failed"
  for l in $(layers_of "$work/g$g"); do
    curl -sf -X DELETE "http://$A/v2/gco/garbage$g/blobs/sha256:$l" -o /dev/null ||
      fail "DELETE of a blob of garbage$g failed"
  done
done
for i in $(seq 1 12); do bash tests/lib/make-oci-image.sh "$work/img$i" v1 >/dev/null; done

runs0=$(both wharf_gc_runs_total)
# Two clients push through the two replicas at once while gc runs every
# second; one of them also pushes garbage1 again (its blobs are candidates).
(
  set +e
  for i in 1 3 5 7 9 11; do push "$work/img$i" "$A" "gco/app$i" || echo "img$i" >>"$work/failed"; done
  push "$work/g1" "$A" gco/again || echo g1 >>"$work/failed"
) & pa_=$!
(
  set +e
  for i in 2 4 6 8 10 12; do push "$work/img$i" "$B" "gco/app$i" || echo "img$i" >>"$work/failed"; done
) & pb_=$!
wait "$pa_" "$pb_"
[ ! -s "$work/failed" ] || fail "pushes failed while gc ran: $(tr '\n' ' ' <"$work/failed")"
sleep 3  # a few more collections after the last push
runs=$(($(both wharf_gc_runs_total) - runs0))
removed=$(both 'wharf_gc_blobs_total{outcome="removed"}')
reviewed=$(both 'wharf_gc_blobs_total{outcome="reviewed"}')
kept=$(both 'wharf_gc_blobs_total{outcome="kept"}')
echo "  gc ran $runs times during and after the pushes (A: $(counter "$A" wharf_gc_runs_total), B: $(counter "$B" wharf_gc_runs_total)); blobs reviewed $reviewed, kept $kept, removed $removed"
[ "$runs" -ge 3 ] || fail "gc ran only $runs times"
[ "$removed" -ge 1 ] || fail "gc removed nothing: garbage2's unlinked layers should have gone"
[ $((kept + removed)) = "$reviewed" ] || fail "/metrics: kept $kept + removed $removed != reviewed $reviewed"

# Every pushed image pulls, byte for byte (skopeo verifies each digest; the layers are compared too).
check() {  # check OCI_DIR ADDR REPO
  local out=$work/pull.$RANDOM
  skopeo copy -q --src-tls-verify=false "docker://$2/$3:v1" "oci:$out:v1" || fail "$3 does not pull after gc"
  for l in $(layers_of "$1"); do
    cmp -s "$1/blobs/sha256/$l" "$out/blobs/sha256/$l" || fail "$3: layer $l differs after gc"
  done
  rm -rf "$out"
}
for i in $(seq 1 12); do check "$work/img$i" "$([ $((i % 2)) = 0 ] && echo "$A" || echo "$B")" "gco/app$i"; done
check "$work/g1" "$B" gco/again
# garbage2's own layer (its first two are the same in every image these
# tests make, so still in use) is gone from the object store, and garbage1's,
# pushed again during the collections, is there
own() { layers_of "$1" | awk '{print $NF}'; }
s3_request HEAD "/$store/blobs/sha256/$(own "$work/g1")" -I -o /dev/null || fail "garbage1's layer, pushed again, is not stored"
if s3_request HEAD "/$store/blobs/sha256/$(own "$work/g2")" -I -o /dev/null; then
  fail "garbage2's unlinked layer is still stored"
fi
echo "PASS gc every second on two replicas during concurrent pushes through both: all 13 images pull byte for byte (one re-pushed from garbage), the rest of the garbage is gone ($removed blobs removed in $runs runs)"
