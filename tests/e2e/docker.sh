#!/bin/bash
# End-to-end: a real Docker engine (dockerd + containerd started here, confined to a
# scratch dir, unix sockets only, no networking) and containerd's ctr, against the
# registry at REGISTRY_ADDR. 127.0.0.0/8 is an insecure (plain-HTTP) registry to dockerd
# by default.
# Usage: tests/e2e/docker.sh 127.0.0.1:5000
#
# engine-start     containerd + dockerd start and answer
# push             docker load of a test image, docker push; digest, media type, diff_ids
# pull-run         docker rmi, docker pull (digest = the push's), docker run --rm --network none
# push-mount       docker push of the same layers to another repository: cross-repo mount
# pull-oci-run     docker pull + run of an OCI manifest pushed by skopeo
# pull-index-run   docker pull + run of a linux/amd64 + linux/arm64 OCI index; --platform arm64
# ctr-pull         ctr images pull --plain-http of the docker-pushed image (digest), ctr run
# ctr-pull-index   ctr images pull --plain-http --all-platforms of the index: every blob arrives
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_begin docker "$@"

L="$E2E_WORK/layout"
e2e_build_images "$L"
N="$E2E_NS/docker"
R="$REGISTRY/$N/img"
CTR_NS=wharf-e2e

d() { x docker "$@"; }
c() { x ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" "$@"; }

run_ok() {
  local out
  out=$(d run --rm --network none "$1" 2>&1) || { echo "$out" >&2; fail "docker run $1 failed"; }
  echo "$out" >&2
  assert_contains "$out" "$E2E_MAGIC $IMG_ID x86_64" "output of docker run $1"
}

t_push() {
  e2e_docker_loadable_tar "$L" "$R:v1" "$E2E_WORK/load.tar"
  d load -i "$E2E_WORK/load.tar" >&2
  d image inspect --format '{{.Id}} {{.Architecture}}' "$R:v1" >&2
  local out want ct dg
  out=$(d push "$R:v1" 2>&1) || { echo "$out" >&2; fail "docker push failed"; }
  echo "$out" >&2
  want=$(printf '%s\n' "$out" | sed -n 's/^v1: digest: \(sha256:[0-9a-f]*\) size: .*/\1/p')
  assert_match "$want" '^sha256:[0-9a-f]{64}$' "digest docker push reports"
  echo "$want" >"$E2E_WORK/push.digest"
  read -r ct dg <<<"$(e2e_manifest_get "$N/img" v1 "$E2E_WORK/m-v1")"
  assert_eq "$want" "$dg" "Docker-Content-Digest of the pushed tag"
  assert_digest "$E2E_WORK/m-v1" "$want" "manifest bytes served"
  assert_eq "$E2E_DOCKER_MANIFEST" "$ct" "Content-Type of the docker push"
  e2e_check_layers "$N/img" "$E2E_WORK/m-v1"
}

t_pull_run() {
  local want
  want=$(cat "$E2E_WORK/push.digest")
  d rmi "$R:v1" >&2
  assert_fails "image gone after rmi" docker image inspect "$R:v1"
  local out
  out=$(d pull "$R:v1" 2>&1) || { echo "$out" >&2; fail "docker pull failed"; }
  echo "$out" >&2
  assert_contains "$out" "Digest: $want" "docker pull output"
  assert_eq "$R@$want" "$(docker image inspect --format '{{index .RepoDigests 0}}' "$R:v1")" "RepoDigests of the pulled image"
  run_ok "$R:v1"
  d rmi "$R:v1" >&2
  d pull "$R@$want" >&2
  run_ok "$R@$want"
  assert_eq "" "$(docker ps -aq)" "containers left after run --rm"
}

t_push_mount() {
  d pull "$R:v1" >&2
  d tag "$R:v1" "$REGISTRY/$N/mounted:v1"
  local out
  out=$(d push "$REGISTRY/$N/mounted:v1" 2>&1) || { echo "$out" >&2; fail "docker push failed"; }
  echo "$out" >&2
  assert_contains "$out" "Mounted from $N/img" "docker push to a second repository (cross-repo mount)"
  assert_contains "$out" "digest: $(cat "$E2E_WORK/push.digest")" "same manifest digest in the second repository"
  local ct dg
  read -r ct dg <<<"$(e2e_manifest_get "$N/mounted" v1 "$E2E_WORK/m-mounted")"
  e2e_check_layers "$N/mounted" "$E2E_WORK/m-mounted"
}

t_pull_oci_run() {
  e2e_skopeo copy --dest-tls-verify=false "oci:$L:amd64" "docker://$REGISTRY/$N/oci:v1"
  local out
  out=$(d pull "$REGISTRY/$N/oci:v1" 2>&1) || { echo "$out" >&2; fail "docker pull failed"; }
  echo "$out" >&2
  assert_contains "$out" "Digest: $IMG_AMD64" "docker pull output"
  run_ok "$REGISTRY/$N/oci:v1"
}

t_pull_index_run() {
  local ref="$REGISTRY/$N/multi:v1" out
  e2e_skopeo copy --dest-tls-verify=false --all "oci:$L:multi" "docker://$ref"
  out=$(d pull "$ref" 2>&1) || { echo "$out" >&2; fail "docker pull failed"; }
  echo "$out" >&2
  assert_contains "$out" "Digest: $IMG_INDEX" "docker pull output (the index digest)"
  assert_eq "amd64" "$(docker image inspect --format '{{.Architecture}}' "$ref")" "platform docker chose"
  run_ok "$ref"
  d rmi "$ref" >&2
  d pull --platform linux/arm64/v8 "$ref" >&2
  assert_eq "arm64" "$(docker image inspect --format '{{.Architecture}}' "$ref")" "platform of the --platform linux/arm64 pull"
}

t_ctr_pull() {
  local want out
  want=$(cat "$E2E_WORK/push.digest")
  c images pull --plain-http "$R:v1" >&2
  out=$(c images ls)
  echo "$out" >&2
  assert_contains "$out" "$want" "ctr images ls"
  out=$(c run --rm "$R:v1" "e2e-$$" 2>&1) || { echo "$out" >&2; fail "ctr run failed"; }
  echo "$out" >&2
  assert_contains "$out" "$E2E_MAGIC $IMG_ID x86_64" "output of ctr run"
}

t_ctr_pull_index() {
  local ref="$REGISTRY/$N/multi:v1" out b cfg_arm
  c images pull --plain-http --all-platforms "$ref" >&2
  out=$(c images ls)
  echo "$out" >&2
  assert_contains "$out" "$IMG_INDEX" "ctr images ls"
  out=$(c content ls)
  cfg_arm=$(jq -r .config.digest "$(e2e_blob "$L" "$IMG_ARM64")")
  for b in "$IMG_INDEX" "$IMG_AMD64" "$IMG_ARM64" "$IMG_AMD64_CONFIG" "$cfg_arm" $IMG_AMD64_LAYERS $IMG_ARM64_LAYERS; do
    assert_contains "$out" "$b" "ctr content store"
  done
  c content get "$IMG_INDEX" >"$E2E_WORK/idx"
  assert_file_eq "$(e2e_blob "$L" "$IMG_INDEX")" "$E2E_WORK/idx" "index bytes in containerd's content store"
}

start_engine() { e2e_docker_start "$E2E_WORK/engine"; }

if e2e_step engine-start start_engine; then
  e2e_test push t_push
  e2e_test pull-run t_pull_run
  e2e_test push-mount t_push_mount
  e2e_test pull-oci-run t_pull_oci_run
  e2e_test pull-index-run t_pull_index_run
  e2e_test ctr-pull t_ctr_pull
  e2e_test ctr-pull-index t_ctr_pull_index
else
  for t in push pull-run push-mount pull-oci-run pull-index-run ctr-pull ctr-pull-index; do
    e2e_record FAIL "$t" 0.0
  done
fi
e2e_docker_stop
e2e_end
