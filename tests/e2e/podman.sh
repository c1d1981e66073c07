#!/bin/bash
# End-to-end: podman (and its containers/image stack) against the registry at REGISTRY_ADDR.
# podman runs confined to a scratch dir: its own storage.conf (overlay), registries.conf
# (the registry marked insecure = plain HTTP), containers.conf (runc, cgroupfs, no network).
# Usage: tests/e2e/podman.sh 127.0.0.1:5000
#
# push             podman push (OCI) of an image loaded from an OCI layout; digest, diff_ids
# push-v2s2        podman push --format v2s2; Docker schema2 in the registry
# pull-run         podman pull by tag (after removing every local image), digest matches the
#                  push, podman run --rm --network none prints the image's known string
# pull-run-digest  podman pull of the v2s2 push by digest, and run
# pull-index       pull of a multi-platform index (pushed by skopeo --all): amd64 is chosen
#                  and runs; --arch arm64 pulls the other child
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_begin podman "$@"

L="$E2E_WORK/layout"
e2e_build_images "$L"
e2e_podman_setup "$E2E_WORK/podman"
R="$REGISTRY/$E2E_NS/podman/img"
RM="$REGISTRY/$E2E_NS/podman/multi"

p() { x podman "$@"; }

t_push() {
  p info --format '{{.Store.GraphDriverName}} {{.Store.GraphRoot}}' >&2
  p pull -q "oci:$L:amd64" >&2
  local id
  id=$(podman images -q --no-trunc | head -1)
  [ -n "$id" ] || fail "no local image after podman pull oci:"
  p tag "$id" "$R:v1"
  p push --digestfile "$E2E_WORK/push.digest" "$R:v1"
  local want ct dg
  want=$(cat "$E2E_WORK/push.digest")
  assert_match "$want" '^sha256:[0-9a-f]{64}$' "digest podman reports"
  read -r ct dg <<<"$(e2e_manifest_get "$E2E_NS/podman/img" v1 "$E2E_WORK/m-v1")"
  assert_eq "$want" "$dg" "Docker-Content-Digest of the pushed tag"
  assert_digest "$E2E_WORK/m-v1" "$want" "manifest bytes served"
  assert_eq "$ct" "$(jq -r .mediaType "$E2E_WORK/m-v1")" "Content-Type is the manifest's mediaType"
  e2e_check_layers "$E2E_NS/podman/img" "$E2E_WORK/m-v1"
}

t_push_v2s2() {
  p push --format v2s2 --digestfile "$E2E_WORK/v2s2.digest" "$R:v1" "$R:v2s2"
  local ct dg
  read -r ct dg <<<"$(e2e_manifest_get "$E2E_NS/podman/img" v2s2 "$E2E_WORK/m-v2s2")"
  assert_eq "$E2E_DOCKER_MANIFEST" "$ct" "Content-Type of the v2s2 push"
  assert_eq "$(cat "$E2E_WORK/v2s2.digest")" "$dg" "digest of the v2s2 push"
  e2e_check_layers "$E2E_NS/podman/img" "$E2E_WORK/m-v2s2"
}

# run_ok IMAGE: podman run prints this build's known string
run_ok() {
  local out
  out=$(p run --rm --network none "$1" 2>&1) || { echo "$out" >&2; fail "podman run $1 failed"; }
  echo "$out" >&2
  assert_contains "$out" "$E2E_MAGIC $IMG_ID x86_64" "output of podman run $1"
}

t_pull_run() {
  p rmi -a -f >&2
  assert_eq "" "$(podman images -q)" "local images after rmi -a"
  p pull "$R:v1" >&2
  assert_eq "$(cat "$E2E_WORK/push.digest")" "$(podman image inspect --format '{{.Digest}}' "$R:v1")" "digest of the pulled image"
  run_ok "$R:v1"
  assert_eq "" "$(podman ps -aq)" "containers left after run --rm"
}

t_pull_run_digest() {
  local d
  d=$(cat "$E2E_WORK/v2s2.digest")
  p rmi -a -f >&2
  p pull "$R@$d" >&2
  run_ok "$R@$d"
}

t_pull_index() {
  e2e_skopeo copy --dest-tls-verify=false --all "oci:$L:multi" "docker://$RM:v1"
  p rmi -a -f >&2
  p pull "$RM:v1" >&2
  assert_eq "amd64" "$(podman image inspect --format '{{.Architecture}}' "$RM:v1")" "platform podman chose"
  run_ok "$RM:v1"
  p pull --arch arm64 --variant v8 "$RM:v1" >&2
  assert_eq "arm64" "$(podman image inspect --format '{{.Architecture}}' "$RM:v1")" "platform of the --arch arm64 pull"
  local m
  m=$(p image mount "$RM:v1")
  assert_eq "arm64 $IMG_ID" "$(cat "$m/etc/arch.txt")" "/etc/arch.txt of the arm64 image"
  p image unmount "$RM:v1" >&2
}

e2e_test push t_push
e2e_test push-v2s2 t_push_v2s2
e2e_test pull-run t_pull_run
e2e_test pull-run-digest t_pull_run_digest
e2e_test pull-index t_pull_index
# podman leaves its storage mounted until told otherwise
podman image unmount -a >/dev/null 2>&1 || true
e2e_end
