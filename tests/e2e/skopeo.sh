#!/bin/bash
# End-to-end: skopeo against the registry at REGISTRY_ADDR (plain HTTP).
# Usage: tests/e2e/skopeo.sh 127.0.0.1:5000
#
# push-oci         copy oci:LAYOUT:amd64 -> docker://; manifest digest/bytes, every blob, Content-Type
# pull-oci         copy docker:// (by tag and by digest) -> oci:; every blob byte-equal to the source
# pull-docker-archive  copy docker:// -> docker-archive:; layers match the diff_ids, archive re-imports
# push-v2s2        copy --format v2s2; Docker schema2 media types, same blobs, pulled back byte-exact (dir:)
# copy-all-index   copy --all of a linux/amd64 + linux/arm64 OCI index, there and back; platform picks
# list-tags        list-tags after pushes and a registry-to-registry copy
# delete           delete by tag and by digest; other tags survive
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_begin skopeo "$@"

L="$E2E_WORK/layout"
e2e_build_images "$L"
R="$E2E_NS/skopeo/img"          # several path components on purpose
RM="$E2E_NS/skopeo/multi"
RD="$E2E_NS/skopeo/del"
REG="docker://$REGISTRY"
TLS=(--src-tls-verify=false --dest-tls-verify=false)

# blob_ok REPO DIGEST: GET the blob through the registry and check its bytes against the layout
blob_ok() {
  local f="$E2E_WORK/blob.$$"
  x curl -sS -f -L -o "$f" "http://$REGISTRY/v2/$1/blobs/$2"
  assert_file_eq "$(e2e_blob "$L" "$2")" "$f" "blob $2 in $1"
  rm -f "$f"
}

# tags REPO: the repository's tags, space-separated, sorted (the order the registry used is
# logged; the API suite, not this one, holds the registry to byte order)
tags() {
  local raw
  raw=$(e2e_skopeo list-tags --tls-verify=false "$REG/$1" | jq -r '.Tags | join(" ")')
  printf 'registry listed tags of %s as: %s\n' "$1" "$raw" >&2
  printf '%s' "$raw" | tr ' ' '\n' | LC_ALL=C sort | paste -sd' '
}

t_push_oci() {
  e2e_skopeo copy "${TLS[@]}" --digestfile "$E2E_WORK/push.digest" "oci:$L:amd64" "$REG/$R:v1"
  assert_eq "$IMG_AMD64" "$(cat "$E2E_WORK/push.digest")" "digest skopeo reports for the push"
  local hdr ct dg
  hdr=$(e2e_manifest_get "$R" v1 "$E2E_WORK/m-v1")
  read -r ct dg <<<"$hdr"
  assert_eq "$E2E_OCI_MANIFEST" "$ct" "Content-Type of $R:v1"
  assert_eq "$IMG_AMD64" "$dg" "Docker-Content-Digest of $R:v1"
  assert_file_eq "$(e2e_blob "$L" "$IMG_AMD64")" "$E2E_WORK/m-v1" "manifest bytes stored for $R:v1"
  local b
  for b in "$IMG_AMD64_CONFIG" $IMG_AMD64_LAYERS; do blob_ok "$R" "$b"; done
  e2e_skopeo inspect --tls-verify=false --raw "$REG/$R:v1" >"$E2E_WORK/m-v1-skopeo"
  assert_file_eq "$E2E_WORK/m-v1" "$E2E_WORK/m-v1-skopeo" "skopeo inspect --raw"
  local arch
  arch=$(e2e_skopeo inspect --tls-verify=false "$REG/$R:v1" | jq -r '.Architecture + " " + .Labels["org.wharf.e2e.id"]')
  assert_eq "amd64 $IMG_ID" "$arch" "skopeo inspect architecture and label"
}

# all_blobs_equal DIR N: every blob in the pulled layout DIR equals the source's; N blobs expected
all_blobs_equal() {
  local dir=$1 want=$2 n=0 f
  for f in "$dir"/blobs/sha256/*; do
    assert_file_eq "$L/blobs/sha256/${f##*/}" "$f" "pulled blob ${f##*/}"
    assert_digest "$f" "sha256:${f##*/}" "pulled blob named by its digest"
    n=$((n + 1))
  done
  assert_eq "$want" "$n" "number of blobs in $dir"
}

t_pull_oci() {
  e2e_skopeo copy "${TLS[@]}" "$REG/$R:v1" "oci:$E2E_WORK/pulled:v1"
  all_blobs_equal "$E2E_WORK/pulled" 5
  assert_eq "$IMG_AMD64" "$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$E2E_WORK/pulled/index.json")" "pulled layout's v1"
  # by digest
  e2e_skopeo copy "${TLS[@]}" "$REG/$R@$IMG_AMD64" "oci:$E2E_WORK/pulled-bd:bd"
  all_blobs_equal "$E2E_WORK/pulled-bd" 5
  # the pulled layout unpacks, with whiteouts applied, to the expected tree
  x umoci raw unpack --rootless --image "$E2E_WORK/pulled:v1" "$E2E_WORK/rootfs" >&2
  local r="$E2E_WORK/rootfs"
  assert_eq hello-v2 "$(cat "$r/etc/hello.txt")" "/etc/hello.txt after layer 2"
  [ ! -e "$r/dir/keep" ] || fail "whiteout /dir/.wh.keep not applied by umoci"
  [ ! -e "$r/dir/sub/file1" ] || fail "opaque whiteout not applied by umoci"
  assert_eq "$IMG_ID" "$(cat "$r/e2e/id")" "/e2e/id"
  rm -rf "$r"
}

t_pull_docker_archive() {
  local a="$E2E_WORK/img.tar" x_="$E2E_WORK/archive"
  e2e_skopeo copy "${TLS[@]}" "$REG/$R:v1" "docker-archive:$a:$REGISTRY/$R:v1"
  mkdir -p "$x_" && tar -C "$x_" -xf "$a"
  jq . "$x_/manifest.json" >&2
  assert_eq "$REGISTRY/$R:v1" "$(jq -r '.[0].RepoTags[0]' "$x_/manifest.json")" "RepoTags in the archive"
  # the config inside is the pushed config, byte for byte
  local cfg
  cfg=$(jq -r '.[0].Config' "$x_/manifest.json")
  assert_digest "$x_/$cfg" "$IMG_AMD64_CONFIG" "config in docker-archive"
  # each (uncompressed) layer hashes to its diff_id, in order
  local i=0 layer want
  local -a diffids=($IMG_AMD64_DIFFIDS)
  while read -r layer; do
    want=${diffids[$i]}
    assert_digest "$x_/$layer" "$want" "layer $i of the docker-archive vs diff_id"
    i=$((i + 1))
  done < <(jq -r '.[0].Layers[]' "$x_/manifest.json")
  assert_eq 3 "$i" "number of layers in the archive"
  # skopeo reads it back (it verifies diff_ids) into an OCI layout
  e2e_skopeo inspect "docker-archive:$a" | jq -e --arg c "$IMG_AMD64_CONFIG" '.Architecture == "amd64"' >&2
  e2e_skopeo copy "docker-archive:$a" "oci:$E2E_WORK/from-archive:t"
}

t_push_v2s2() {
  e2e_skopeo copy "${TLS[@]}" --format v2s2 --digestfile "$E2E_WORK/v2s2.digest" "oci:$L:amd64" "$REG/$R:v2s2"
  local want ct dg m="$E2E_WORK/m-v2s2"
  want=$(cat "$E2E_WORK/v2s2.digest")
  assert_ne "$IMG_AMD64" "$want" "v2s2 manifest digest (a new manifest)"
  read -r ct dg <<<"$(e2e_manifest_get "$R" v2s2 "$m")"
  assert_eq "$E2E_DOCKER_MANIFEST" "$ct" "Content-Type of $R:v2s2"
  assert_eq "$want" "$dg" "Docker-Content-Digest of $R:v2s2"
  assert_digest "$m" "$want" "bytes served for $R:v2s2"
  assert_eq "$E2E_DOCKER_MANIFEST" "$(jq -r .mediaType "$m")" "mediaType field"
  assert_eq "application/vnd.docker.container.image.v1+json $IMG_AMD64_CONFIG" "$(jq -r '.config.mediaType + " " + .config.digest' "$m")" "config descriptor"
  assert_eq "$IMG_AMD64_LAYERS" "$(jq -r '[.layers[].digest] | join(" ")' "$m")" "layer digests (blobs are reused as they are)"
  assert_eq "application/vnd.docker.image.rootfs.diff.tar.gzip" "$(jq -r '[.layers[].mediaType] | unique | join(",")' "$m")" "layer media types"
  # pulled back unchanged: the dir: transport keeps the manifest bytes
  e2e_skopeo copy "${TLS[@]}" "$REG/$R:v2s2" "dir:$E2E_WORK/v2s2dir"
  assert_file_eq "$m" "$E2E_WORK/v2s2dir/manifest.json" "manifest pulled to dir:"
  local b
  for b in "$IMG_AMD64_CONFIG" $IMG_AMD64_LAYERS; do
    assert_file_eq "$(e2e_blob "$L" "$b")" "$E2E_WORK/v2s2dir/${b#sha256:}" "blob $b pulled to dir:"
  done
  # and by digest
  e2e_skopeo inspect --tls-verify=false --raw "$REG/$R@$want" >"$E2E_WORK/m-v2s2-bd"
  assert_file_eq "$m" "$E2E_WORK/m-v2s2-bd" "v2s2 manifest by digest"
}

t_copy_all_index() {
  e2e_skopeo copy "${TLS[@]}" --all --digestfile "$E2E_WORK/multi.digest" "oci:$L:multi" "$REG/$RM:v1"
  assert_eq "$IMG_INDEX" "$(cat "$E2E_WORK/multi.digest")" "digest of the pushed index"
  local ct dg
  read -r ct dg <<<"$(e2e_manifest_get "$RM" v1 "$E2E_WORK/idx")"
  assert_eq "$E2E_OCI_INDEX" "$ct" "Content-Type of $RM:v1"
  assert_eq "$IMG_INDEX" "$dg" "Docker-Content-Digest of $RM:v1"
  assert_file_eq "$(e2e_blob "$L" "$IMG_INDEX")" "$E2E_WORK/idx" "index bytes"
  local child
  for child in "$IMG_AMD64" "$IMG_ARM64"; do
    read -r ct dg <<<"$(e2e_manifest_get "$RM" "$child" "$E2E_WORK/child")"
    assert_eq "$E2E_OCI_MANIFEST $child" "$ct $dg" "child manifest $child"
    assert_file_eq "$(e2e_blob "$L" "$child")" "$E2E_WORK/child" "child manifest bytes"
  done
  # every blob of both platforms is in the repository
  local b cfg_arm
  cfg_arm=$(jq -r .config.digest "$(e2e_blob "$L" "$IMG_ARM64")")
  for b in "$IMG_AMD64_CONFIG" "$cfg_arm" $IMG_AMD64_LAYERS $IMG_ARM64_LAYERS; do blob_ok "$RM" "$b"; done
  # back again, whole
  e2e_skopeo copy "${TLS[@]}" --all "$REG/$RM:v1" "oci:$E2E_WORK/multi-back:multi"
  all_blobs_equal "$E2E_WORK/multi-back" 9
  assert_eq "$IMG_INDEX" "$(jq -r '.manifests[0].digest' "$E2E_WORK/multi-back/index.json")" "pulled index digest"
  # platform choice from the index
  assert_eq "amd64" "$(e2e_skopeo --override-arch amd64 inspect --tls-verify=false "$REG/$RM:v1" | jq -r .Architecture)" "amd64 pick"
  assert_eq "arm64 $IMG_ARM64_LAYERS" "$(e2e_skopeo --override-arch arm64 --override-variant v8 inspect --tls-verify=false "$REG/$RM:v1" | jq -r '.Architecture + " " + (.Layers | join(" "))')" "arm64 pick"
  # without --all only the host's platform comes back
  e2e_skopeo copy "${TLS[@]}" --override-arch amd64 "$REG/$RM:v1" "oci:$E2E_WORK/multi-one:one"
  assert_eq "$IMG_AMD64" "$(jq -r '.manifests[0].digest' "$E2E_WORK/multi-one/index.json")" "single-platform copy picks amd64"
}

t_list_tags() {
  # a registry-to-registry copy adds a tag (blobs already there: skopeo skips or mounts them)
  e2e_skopeo copy "${TLS[@]}" "$REG/$R:v1" "$REG/$R:extra-1"
  e2e_skopeo copy "${TLS[@]}" "$REG/$R:v1" "$REG/$RM:from-img"
  assert_eq "extra-1 v1 v2s2" "$(tags "$R")" "tags of $R"
  assert_eq "from-img v1" "$(tags "$RM")" "tags of $RM"
  local ct dg
  read -r ct dg <<<"$(e2e_manifest_get "$RM" from-img "$E2E_WORK/m-from")"
  assert_eq "$IMG_AMD64" "$dg" "digest of the copied tag"
}

t_delete() {
  e2e_skopeo copy "${TLS[@]}" "oci:$L:amd64" "$REG/$RD:gone"
  e2e_skopeo copy "${TLS[@]}" "oci:$L:arm64" "$REG/$RD:stays"
  assert_eq "gone stays" "$(tags "$RD")" "tags before delete"
  e2e_skopeo delete --tls-verify=false "$REG/$RD:gone"
  assert_fails "inspect of the deleted tag" e2e_skopeo inspect --tls-verify=false --raw "$REG/$RD:gone"
  assert_eq 404 "$(e2e_http_status GET "/v2/$RD/manifests/$IMG_AMD64" -H "Accept: $E2E_OCI_MANIFEST")" "GET of the deleted manifest by digest"
  assert_eq "stays" "$(tags "$RD")" "tags after delete"
  local ct dg
  read -r ct dg <<<"$(e2e_manifest_get "$RD" stays "$E2E_WORK/m-stays")"
  assert_eq "$IMG_ARM64" "$dg" "the other tag still resolves"
  # delete by digest
  e2e_skopeo copy "${TLS[@]}" "oci:$L:amd64" "$REG/$RD:again"
  e2e_skopeo delete --tls-verify=false "$REG/$RD@$IMG_AMD64"
  assert_fails "inspect after delete by digest" e2e_skopeo inspect --tls-verify=false --raw "$REG/$RD:again"
  assert_eq 200 "$(e2e_http_status HEAD "/v2/$RD/manifests/stays" -H "Accept: $E2E_OCI_MANIFEST")" "HEAD of the surviving tag"
}

e2e_test push-oci t_push_oci
e2e_test pull-oci t_pull_oci
e2e_test pull-docker-archive t_pull_docker_archive
e2e_test push-v2s2 t_push_v2s2
e2e_test copy-all-index t_copy_all_index
e2e_test list-tags t_list_tags
e2e_test delete t_delete
e2e_end
