#!/bin/bash
# End-to-end: squashed downloads (/c1/squash) loaded by real clients, against the
# wharf at REGISTRY_ADDR (a registry without /c1/squash fails every test here).
# Usage: tests/e2e/squash.sh 127.0.0.1:5000
#
# docker-load      curl | docker load, docker run --rm --network none prints the known
#                  string; docker inspect shows the original's Config
# same-tree        containers from the squashed and the original image export identical
#                  trees (type, mode, owner, size, link target, sha256 of every file)
# podman-load      podman load + podman run
# skopeo-archive   skopeo inspect / copy docker-archive: (diff_ids verified), one layer
# ctr-import       ctr images import + ctr run
# platform         ?platform= picks the index child; an unknown platform is a 404 naming
#                  the platforms the image has
# http             HEAD on an uncached image gives the exact length; bodies byte-identical
#                  across requests; stable ETag; Range on the cached result; by-digest
#                  archives carry no RepoTags
# concurrent       20 clients on a cold image: exactly one build, 20 identical bodies
# disconnect       a client that hangs up does not stop the build: the next pull is a hit
# gzip             Accept-Encoding: gzip gives one gzip member that inflates to the same
#                  archive (curl --compressed); once cached, with an exact Content-Length
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_begin squash "$@"

L="$E2E_WORK/layout"
e2e_build_images "$L"
N="$E2E_NS/squash"
BASE="http://$REGISTRY"
CTR_NS=wharf-e2e-squash

d() { x docker "$@"; }
# A counter of the registry; behind a load balancer (E2E_REPLICAS: the
# replicas' host:port, space-separated) its sum over the replicas.
metric() {
  local r
  for r in ${E2E_REPLICAS:-$REGISTRY}; do curl -sf "http://$r/metrics"; done | awk -v n="$1" '$1==n{s+=$2; f=1} END{if (f) print s}'
}
squash_get() { curl -sf "$BASE/c1/squash/$1" -o "$2"; }

check_run_output() {
  assert_contains "$1" "$E2E_MAGIC $IMG_ID x86_64" "$2"
}

t_docker_load() {
  e2e_skopeo copy --dest-tls-verify=false "oci:$L:amd64" "docker://$REGISTRY/$N/img:v1"
  local out
  out=$(curl -fsSL "$BASE/c1/squash/$N/img/v1" | docker load 2>&1) || { echo "$out" >&2; fail "curl | docker load failed"; }
  echo "$out" >&2
  assert_contains "$out" "Loaded image: $REGISTRY/$N/img:v1" "docker load output"
  assert_eq "1" "$(docker image inspect --format '{{len .RootFS.Layers}}' "$REGISTRY/$N/img:v1")" "layers of the loaded image"
  out=$(d run --rm --network none "$REGISTRY/$N/img:v1" 2>&1) || { echo "$out" >&2; fail "docker run of the squashed image failed"; }
  check_run_output "$out" "docker run of the squashed image"
  # The original, by the digest the registry holds for the tag.
  ORIG="$REGISTRY/$N/img@$(curl -sfI -H "Accept: $E2E_OCI_MANIFEST" "$BASE/v2/$N/img/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')"
  echo "$ORIG" >"$E2E_WORK/orig.ref"
  d pull "$ORIG" >&2
  local a b
  a=$(docker image inspect --format '{{json .Config}}' "$REGISTRY/$N/img:v1" | jq -S 'del(.Image)')
  b=$(docker image inspect --format '{{json .Config}}' "$ORIG" | jq -S 'del(.Image)')
  assert_eq "$b" "$a" "docker inspect Config of squashed vs original"
}

tree_of() {  # IMAGE OUT: the container filesystem with its metadata, sorted
  local c
  c=$(docker create "$1" /bin/true)
  docker export "$c" | bsdtar -cf - --format=mtree --options='!all,type,mode,uid,gid,size,link,sha256' @- |
    grep -v '^#' | sort >"$2"
  docker rm "$c" >/dev/null
}

t_same_tree() {
  tree_of "$REGISTRY/$N/img:v1" "$E2E_WORK/tree-squashed"
  tree_of "$(cat "$E2E_WORK/orig.ref")" "$E2E_WORK/tree-original"
  [ "$(wc -l <"$E2E_WORK/tree-original")" -gt 5 ] || fail "the original tree listing is suspiciously short"
  diff "$E2E_WORK/tree-original" "$E2E_WORK/tree-squashed" >&2 || fail "squashed and original container trees differ"
}

t_podman_load() {
  e2e_podman_setup "$E2E_WORK/podman"
  squash_get "$N/img/v1" "$E2E_WORK/sq.tar"
  x podman load -i "$E2E_WORK/sq.tar" >&2
  local out
  out=$(x podman run --rm --network none "$REGISTRY/$N/img:v1" 2>&1) || { echo "$out" >&2; fail "podman run failed"; }
  check_run_output "$out" "podman run of the squashed image"
}

t_skopeo_archive() {
  squash_get "$N/img/v1" "$E2E_WORK/sq2.tar"
  local layers
  layers=$(e2e_skopeo inspect "docker-archive:$E2E_WORK/sq2.tar" | jq '.Layers | length')
  assert_eq 1 "$layers" "layers skopeo sees in the archive"
  e2e_skopeo copy "docker-archive:$E2E_WORK/sq2.tar" "oci:$E2E_WORK/sq-oci:t" >&2
}

t_ctr_import() {
  squash_get "$N/img/v1" "$E2E_WORK/sq3.tar"
  x ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" images import "$E2E_WORK/sq3.tar" >&2
  local out
  out=$(x ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" run --rm "$REGISTRY/$N/img:v1" "sq-$$" 2>&1) ||
    { echo "$out" >&2; fail "ctr run failed"; }
  check_run_output "$out" "ctr run of the squashed image"
}

t_platform() {
  e2e_skopeo copy --dest-tls-verify=false --all "oci:$L:multi" "docker://$REGISTRY/$N/multi:v1"
  squash_get "$N/multi/v1?platform=linux/arm64" "$E2E_WORK/arm.tar"
  local cfg
  cfg=$(tar -xOf "$E2E_WORK/arm.tar" manifest.json | jq -r '.[0].Config')
  assert_eq arm64 "$(tar -xOf "$E2E_WORK/arm.tar" "$cfg" | jq -r .architecture)" "architecture of ?platform=linux/arm64"
  squash_get "$N/multi/v1" "$E2E_WORK/amd.tar"
  cfg=$(tar -xOf "$E2E_WORK/amd.tar" manifest.json | jq -r '.[0].Config')
  assert_eq amd64 "$(tar -xOf "$E2E_WORK/amd.tar" "$cfg" | jq -r .architecture)" "architecture by default"
  local code body
  code=$(curl -s -o "$E2E_WORK/err.json" -w '%{http_code}' "$BASE/c1/squash/$N/multi/v1?platform=linux/s390x")
  assert_eq 404 "$code" "status for a platform the index lacks"
  body=$(cat "$E2E_WORK/err.json")
  assert_contains "$body" "linux/amd64" "error names the platforms the image has"
  assert_contains "$body" "linux/arm64/v8" "error names the platforms the image has"
  jq -e '.errors[0].code' "$E2E_WORK/err.json" >/dev/null || fail "error body is not the registry's JSON error format"
}

t_http() {
  # A manifest no test squashed yet: the arm64 child as Docker schema2.
  e2e_skopeo copy --dest-tls-verify=false --format v2s2 "oci:$L:arm64" "docker://$REGISTRY/$N/http:v1"
  local head_len get_len
  head_len=$(curl -sfI "$BASE/c1/squash/$N/http/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')
  curl -sf -D "$E2E_WORK/h1" "$BASE/c1/squash/$N/http/v1" -o "$E2E_WORK/b1"
  get_len=$(stat -c%s "$E2E_WORK/b1")
  assert_eq "$head_len" "$get_len" "HEAD Content-Length on an uncached image vs the body"
  curl -sf -D "$E2E_WORK/h2" "$BASE/c1/squash/$N/http/v1" -o "$E2E_WORK/b2"
  assert_file_eq "$E2E_WORK/b1" "$E2E_WORK/b2" "two downloads of the same tag"
  etag() { tr -d '\r' <"$1" | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
  assert_eq "$(etag "$E2E_WORK/h1")" "$(etag "$E2E_WORK/h2")" "ETag across requests"
  curl -sf -H 'Range: bytes=1000-5999' "$BASE/c1/squash/$N/http/v1" -o "$E2E_WORK/part"
  cmp <(tail -c +1001 "$E2E_WORK/b1" | head -c 5000) "$E2E_WORK/part" || fail "Range body differs from the slice"
  local dg
  dg=$(curl -sfI -H "Accept: $E2E_DOCKER_MANIFEST" "$BASE/v2/$N/http/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  squash_get "$N/http@$dg" "$E2E_WORK/bydigest.tar"
  assert_eq "[]" "$(tar -xOf "$E2E_WORK/bydigest.tar" manifest.json | jq -c '.[0].RepoTags')" "RepoTags of a by-digest archive"
  tar -xOf "$E2E_WORK/b1" manifest.json | jq -e --arg t "$REGISTRY/$N/http:v1" '.[0].RepoTags == [$t]' >/dev/null ||
    fail "RepoTags of a by-tag archive"
  # The repositories file (older engines): repository -> tag -> the layer's directory.
  local ldir
  ldir=$(tar -xOf "$E2E_WORK/b1" manifest.json | jq -r '.[0].Layers[0]' | cut -d/ -f1)
  tar -xOf "$E2E_WORK/b1" repositories | jq -e --arg r "$REGISTRY/$N/http" --arg d "$ldir" '.[$r].v1 == $d' >/dev/null ||
    fail "repositories file: $(tar -xOf "$E2E_WORK/b1" repositories)"
  tr -d '\r' <"$E2E_WORK/h1" | grep -qi '^vary: accept-encoding' || fail "no Vary: Accept-Encoding"
  # History: every original entry kept as empty_layer, one new entry naming the source manifest.
  local cfgname orig
  cfgname=$(tar -xOf "$E2E_WORK/b1" manifest.json | jq -r '.[0].Config')
  tar -xOf "$E2E_WORK/b1" "$cfgname" >"$E2E_WORK/sq-config.json"
  orig=$(curl -sf -H "Accept: $E2E_DOCKER_MANIFEST" "$BASE/v2/$N/http/manifests/v1" | jq -r .config.digest)
  curl -sfL "$BASE/v2/$N/http/blobs/$orig" >"$E2E_WORK/orig-config.json"
  jq -e --slurpfile o "$E2E_WORK/orig-config.json" --arg m "$dg" '
      (.history | length) == ($o[0].history | length) + 1
      and ([.history[:-1][] | .empty_layer] | all)
      and ((.history[:-1] | map(del(.empty_layer))) == ($o[0].history | map(del(.empty_layer))))
      and (.history[-1].empty_layer | not)
      and (.history[-1].created_by | contains($m))
      and (.rootfs.diff_ids | length) == 1
      and .config == $o[0].config and .architecture == $o[0].architecture and .os == $o[0].os' \
    "$E2E_WORK/sq-config.json" >/dev/null || fail "squashed config vs the original: $(jq -c .history "$E2E_WORK/sq-config.json")"
  # A second tag of the same image shares the cache entry: a hit, no build.
  e2e_skopeo copy --dest-tls-verify=false --format v2s2 "oci:$L:arm64" "docker://$REGISTRY/$N/http:second"
  local builds hits
  builds=$(metric wharf_squash_builds_total); hits=$(metric wharf_squash_cache_hits_total)
  squash_get "$N/http/second" "$E2E_WORK/second.tar"
  assert_eq "$builds" "$(metric wharf_squash_builds_total)" "builds for a second tag of a squashed image"
  assert_eq $((hits + 1)) "$(metric wharf_squash_cache_hits_total)" "cache hits for a second tag of a squashed image"
  # RepoTags is left out when the Host is not valid in an image reference.
  curl -sf -H 'Host: not_a_host:5000' "$BASE/c1/squash/$N/http/v1" -o "$E2E_WORK/badhost.tar"
  assert_eq "[]" "$(tar -xOf "$E2E_WORK/badhost.tar" manifest.json | jq -c '.[0].RepoTags')" "RepoTags with a Host invalid in a reference"
  assert_eq "{}" "$(tar -xOf "$E2E_WORK/badhost.tar" repositories)" "repositories with a Host invalid in a reference"
}

t_concurrent() {
  e2e_skopeo copy --dest-tls-verify=false --format v2s2 "oci:$L:amd64" "docker://$REGISTRY/$N/cold:v1"
  local before after i
  before=$(metric wharf_squash_builds_total); before=${before:-0}
  for i in $(seq 20); do curl -sf "$BASE/c1/squash/$N/cold/v1" -o "$E2E_WORK/c$i" & done
  wait
  after=$(metric wharf_squash_builds_total)
  assert_eq $((before + 1)) "$after" "builds for 20 concurrent cold requests"
  assert_eq 1 "$(sha256sum "$E2E_WORK"/c* | awk '{print $1}' | sort -u | wc -l)" "distinct bodies among 20 clients"
}

# A manifest nobody squashed yet: $1's manifest with an annotation, pushed as tag $2.
cold_variant() {
  local repo=$1 tag=$2 m
  m=$(curl -sf -H "Accept: $E2E_OCI_MANIFEST" "$BASE/v2/$repo/manifests/v1" | jq -c --arg t "$tag" '.annotations = {"wharf.test": $t}')
  curl -sf -X PUT -H "Content-Type: $E2E_OCI_MANIFEST" --data-binary "$m" "$BASE/v2/$repo/manifests/$tag" -o /dev/null
}

t_disconnect() {
  e2e_skopeo copy --dest-tls-verify=false "oci:$L:amd64" "docker://$REGISTRY/$N/gone:v1"
  cold_variant "$N/gone" hangup
  local builds hits
  builds=$(metric wharf_squash_builds_total); builds=${builds:-0}
  curl -s -N "$BASE/c1/squash/$N/gone/hangup" | head -c 1000 >/dev/null || true
  # The build goes on without the client; wait until its result is cached.
  for _ in $(seq 100); do
    curl -sfI "$BASE/c1/squash/$N/gone/hangup" | grep -qi '^accept-ranges: bytes' && break
    sleep 0.1
  done
  hits=$(metric wharf_squash_cache_hits_total); hits=${hits:-0}
  curl -sf "$BASE/c1/squash/$N/gone/hangup" -o "$E2E_WORK/gone.tar"
  assert_eq $((builds + 1)) "$(metric wharf_squash_builds_total)" "builds after a client hung up and another pulled"
  assert_eq $((hits + 1)) "$(metric wharf_squash_cache_hits_total)" "the second pull is a cache hit"
}

single_member_inflates_to() {  # GZ PLAIN: one gzip member, nothing after it, inflating to PLAIN
  python3 - "$1" "$2" <<'PY'
import sys, zlib
d = open(sys.argv[1], "rb").read()
o = zlib.decompressobj(31)
out = o.decompress(d) + o.flush()
assert o.eof and not o.unused_data, "not exactly one gzip member"
assert out == open(sys.argv[2], "rb").read(), "inflates to something else"
PY
}

t_gzip() {
  e2e_skopeo copy --dest-tls-verify=false "oci:$L:amd64" "docker://$REGISTRY/$N/gz:v1"
  cold_variant "$N/gz" gzipped
  local u="$BASE/c1/squash/$N/gz/gzipped"
  # HEAD before anything is built: the gzip body would be compressed on the
  # fly, so no length may be claimed (a "Content-Length: 0" once made the
  # benchmark think the gzip piece was ready).
  curl -sfI -H 'Accept-Encoding: gzip' "$u" | tr -d '\r' >"$E2E_WORK/gh0"
  if grep -qi '^content-length' "$E2E_WORK/gh0"; then fail "HEAD of an uncached gzip squash claims a length: $(grep -i '^content-length' "$E2E_WORK/gh0")"; fi
  # (a load balancer answers a HEAD with its own framing headers)
  [ -n "${E2E_REPLICAS:-}" ] || grep -qi '^transfer-encoding: chunked' "$E2E_WORK/gh0" ||
    fail "HEAD of an uncached gzip squash does not say chunked"
  curl -sf -H 'Accept-Encoding: gzip' -D "$E2E_WORK/gh1" "$u" -o "$E2E_WORK/g1.gz"
  curl -sf "$u" -o "$E2E_WORK/plain.tar"
  single_member_inflates_to "$E2E_WORK/g1.gz" "$E2E_WORK/plain.tar" || fail "first (uncached) gzip response"
  curl -sf --compressed "$u" -o "$E2E_WORK/via-curl.tar"
  assert_file_eq "$E2E_WORK/plain.tar" "$E2E_WORK/via-curl.tar" "curl --compressed vs identity"
  local len=""
  for _ in $(seq 50); do  # the gzip piece is made right after the build
    curl -sf -H 'Accept-Encoding: gzip' -D "$E2E_WORK/gh2" "$u" -o "$E2E_WORK/g2.gz"
    len=$(tr -d '\r' <"$E2E_WORK/gh2" | awk -F': ' 'tolower($1)=="content-length"{print $2}')
    [ -n "$len" ] && break
    sleep 0.1
  done
  [ -n "$len" ] || fail "cached gzip response has no Content-Length"
  assert_eq "$len" "$(stat -c%s "$E2E_WORK/g2.gz")" "Content-Length of the cached gzip response"
  grep -qi '^content-encoding: gzip' "$E2E_WORK/gh2" || fail "no Content-Encoding: gzip"
  single_member_inflates_to "$E2E_WORK/g2.gz" "$E2E_WORK/plain.tar" || fail "cached gzip response"
  # The on-the-fly and the cached gzip bodies differ byte for byte: only the
  # cached one may carry a strong ETag.
  local e1 e2
  e1=$(tr -d '\r' <"$E2E_WORK/gh1" | awk -F': ' 'tolower($1)=="etag"{print $2}')
  e2=$(tr -d '\r' <"$E2E_WORK/gh2" | awk -F': ' 'tolower($1)=="etag"{print $2}')
  case "$e1" in W/\"*) ;; *) fail "ETag of gzip compressed on the fly is not weak: '$e1'" ;; esac
  case "$e2" in \"*) ;; *) fail "ETag of the cached gzip response is not strong: '$e2'" ;; esac
  if cmp -s "$E2E_WORK/g1.gz" "$E2E_WORK/g2.gz"; then :; else
    [ "$e1" != "$e2" ] || fail "different gzip bodies under one ETag"
  fi
  assert_eq "$(curl -sfI -H 'Accept-Encoding: gzip' "$u" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')" \
    "$len" "HEAD Content-Length of the cached gzip response"
}

start_engine() { e2e_docker_start "$E2E_WORK/engine"; }

e2e_test platform t_platform
e2e_test http t_http
e2e_test concurrent t_concurrent
e2e_test disconnect t_disconnect
e2e_test gzip t_gzip
if e2e_step engine-start start_engine; then
  e2e_test docker-load t_docker_load
  e2e_test same-tree t_same_tree
  e2e_test ctr-import t_ctr_import
else
  for t in docker-load same-tree ctr-import; do e2e_record FAIL "$t" 0.0; done
fi
e2e_test skopeo-archive t_skopeo_archive
e2e_test podman-load t_podman_load
e2e_docker_stop
e2e_end
