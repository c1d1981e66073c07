#!/usr/bin/env bash
# wharf as an OCI image, run as a replica: scripts/build-image.sh builds the
# image from scratch (buildah: the binary and its libraries); it is pushed to
# wharf itself (replica A, on the shared PostgreSQL + S3), removed locally,
# pulled back from A by podman and run as replica C of the same cluster
# (host network, the configuration mounted read-only). C serves what was
# pushed through A, including the image it runs from, and takes pushes.
# podman and buildah are confined to the scratch dir (their own storage and
# configuration). Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/cluster.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
[ "$(id -u)" = 0 ] || fail "runs as root (rootful podman)"
make_work image
# podman's runroot must stay short (conmon refuses long ones)
pod=$work/p
run=$(mktemp -d /tmp/wharf-img-run.XXXXXX)
mkdir -p "$pod/root" "$pod/tmp" "$pod/etc"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$pod/root" "$run" >"$pod/etc/storage.conf"
printf '[containers]\nnetns = "host"\ndefault_ulimits = ["nofile=4096:4096", "nproc=1000:1000"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "%s"\n' \
  "$pod/tmp" >"$pod/etc/containers.conf"
export CONTAINERS_STORAGE_CONF=$pod/etc/storage.conf CONTAINERS_CONF=$pod/etc/containers.conf TMPDIR=$pod/tmp
ctr_id=""
cleanup_image() {
  if [ -n "$ctr_id" ]; then podman rm -f -t 2 "$ctr_id" >/dev/null 2>&1 || true; fi
  podman system reset -f >/dev/null 2>&1 || true  # unmounts the overlay layers under the scratch dir
  rm -rf "$run"
  _common_cleanup
}
trap cleanup_image EXIT

shared=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
pa=$(free_port)
pc=$(free_port)
replica_cfg() { replica_config "$work" "$shared" "$1"; }
start_wharf "$pa" "$work/a" "$work/a.log" --config "$(replica_cfg "$pa")"
PIDS+=("$WHARF_PID")
A=127.0.0.1:$pa
C=127.0.0.1:$pc

bash scripts/build-image.sh localhost/wharf:test "$WHARF_BIN"
buildah push -q --tls-verify=false localhost/wharf:test "docker://$A/infra/wharf:test" >/dev/null
digest=$(curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$A/v2/infra/wharf/manifests/test" |
  tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[ -n "$digest" ] || fail "the image pushed to wharf has no digest there"
podman rmi -f localhost/wharf:test >/dev/null
echo "PASS the wharf image (from scratch) was built and pushed to wharf itself: infra/wharf:test $digest"

cfg_c=$(replica_cfg "$pc")
ctr_id=$(podman run -d -q --tls-verify=false -v "$work:$work:ro" "$A/infra/wharf:test" \
  serve --no-auth --listen "$C" --data-dir /var/lib/wharf --config "$cfg_c")
if ! wait_http "http://$C/v2/" 150; then
  podman logs "$ctr_id" 2>&1 | tail -20 >&2
  fail "the replica running from the image does not answer"
fi
got=$(curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$C/v2/infra/wharf/manifests/test" |
  tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[ "$got" = "$digest" ] || fail "replica C (from the image) resolves infra/wharf:test to '$got', A pushed $digest"
bash tests/lib/make-oci-image.sh "$work/img" v1 >/dev/null
skopeo copy -q --dest-tls-verify=false oci:"$work/img":v1 "docker://$C/infra/app:v1"
skopeo copy -q --src-tls-verify=false "docker://$A/infra/app:v1" oci:"$work/back":v1 ||
  fail "an image pushed through the containerized replica does not pull through A"
echo "PASS podman ran a replica from the image pulled from wharf: it serves what A holds (the image it runs from) and takes pushes A serves"
