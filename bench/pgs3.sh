# bench/pgs3.sh — PostgreSQL 15 + Ceph RADOS Gateway for the benchmarks'
# `--backend pg+s3` (sourced by bench/registry.sh and bench/squash.sh; not run
# alone). Both are started the way scripts/test.sh's pg_up and s3_up do it
# (tests/lib/pg_start.sh, tests/lib/ceph_start.sh: 1 mon, 1 MemStore OSD,
# radosgw; S3 keys testak/testsk), on 127.0.0.1 and free ports, and stopped by
# their PIDs (tests/lib/ceph_stop.sh, tests/lib/pg_stop.sh) from the caller's
# exit trap through pgs3_down.
#
# Needs from the caller: $ROOT (the repository), free_port.
#
#   pgs3_up DIR        start both under DIR (must be traversable by user
#                      postgres: chmod 755); sets PG_DSN, S3 (the endpoint),
#                      PG_BASE, CEPH_BASE; returns non-zero if either fails
#   pgs3_down          stop both (safe to call twice, or before pgs3_up)
#   s3 CURL-ARGS...    curl signed with the test keys (SigV4, unsigned payload)
#   s3_bucket NAME     create a bucket (as scripts/test.sh's s3_bucket)
#   s3_empty BUCKET [MIN_BYTES]
#                      delete every object of at least MIN_BYTES (default 0)
#                      and abort every unfinished multipart upload
#   rgw_gc             have RGW free deleted objects' space now (its garbage
#                      collector otherwise waits rgw_gc_obj_min_wait, 2 h)
#   osd_used_mib       MiB the MemStore OSD holds (after 1.5 s: its figure
#                      is refreshed every second)
#   dist_s3_config BUCKET PORT DISABLE_REDIRECT
#                      prints a distribution 2.8 config.yml with its s3 driver
#                      on this RGW (DIST_S3_CHUNKSIZE: its part size), on
#                      127.0.0.1:PORT, with a fixed http.secret (replicas share it)
#
# BENCH_MEMSTORE_BYTES sizes the OSD's MemStore (RAM; default 4 GiB, twice the
# tests' 2 GiB: distribution commits a chunked upload by a multipart copy,
# which RGW makes by copying the data, so a 1 GiB blob briefly needs 2 GiB).

PG_BASE="" CEPH_BASE="" PG_DSN="" S3=""

pgs3_up() {
  local dir=$1 rgw mon
  PG_BASE=$dir/pg
  if ! PGPORT=$(free_port) BASE=$PG_BASE bash "$ROOT/tests/lib/pg_start.sh" >"$dir/pg.dsn" 2>"$dir/pg.err"; then
    echo "PostgreSQL did not start:" >&2; cat "$dir/pg.err" "$PG_BASE/server.log" 2>/dev/null | tail -20 >&2
    return 1
  fi
  PG_DSN=$(cat "$dir/pg.dsn")
  rgw=$(free_port); mon=$(free_port)
  while [ "$mon" = "$rgw" ]; do mon=$(free_port); done
  CEPH_BASE=$dir/ceph
  if ! (cd "$dir" && BASE=$CEPH_BASE RGW_PORT=$rgw MON_PORT=$mon MEMSTORE_BYTES=${BENCH_MEMSTORE_BYTES:-4294967296} \
        bash "$ROOT/tests/lib/ceph_start.sh") >"$dir/ceph.out" 2>&1; then
    echo "Ceph RADOS Gateway did not start:" >&2; tail -20 "$dir/ceph.out" >&2
    return 1
  fi
  S3=http://127.0.0.1:$rgw
  # The OSD refreshes the usage osd_used_mib reads at each heartbeat (every
  # 0.5-6 s by default); every second here, so that figure is current.
  ceph -c "$CEPH_BASE/ceph.conf" daemon osd.0 config set osd_heartbeat_interval 1 >/dev/null 2>&1 || true
}

pgs3_down() {
  if [ -n "$CEPH_BASE" ]; then BASE=$CEPH_BASE bash "$ROOT/tests/lib/ceph_stop.sh"; fi
  if [ -n "$PG_BASE" ]; then BASE=$PG_BASE bash "$ROOT/tests/lib/pg_stop.sh"; fi
  CEPH_BASE="" PG_BASE=""
}

# curl 7.88 signs every header it sends: no `-H 'Expect:'` here (an empty
# header breaks the signature); curl's own `Expect: 100-continue` is fine.
s3() {
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user testak:testsk -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
s3_bucket() { s3 -f -X PUT "$S3/$1" -o /dev/null; }

# _s3_list BUCKET objects|uploads: every object (key TAB size) or every
# unfinished multipart upload (key TAB upload id), all pages; keys come out
# URL-encoded for a request line. (curl 7.88 signs the query string as it is
# given: the parameters must be in the canonical, sorted order, each with "=".)
_s3_list() {
  local bucket=$1 what=$2 q out
  if [ "$what" = uploads ]; then q="max-uploads=1000&uploads="; else q="list-type=2&max-keys=1000"; fi
  while [ -n "$q" ]; do
    out=$(s3 -f "$S3/$bucket?$q") || { echo "S3 listing of $bucket failed" >&2; return 1; }
    out=$(python3 -c '
import sys, urllib.parse, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
t = lambda e, n: e.findtext(ns + n) or ""
q = lambda s: urllib.parse.quote(s, safe="")
up = sys.argv[1] == "uploads"
for e in root.iter(ns + ("Upload" if up else "Contents")):
    print(urllib.parse.quote(t(e, "Key"), safe="/"), t(e, "UploadId" if up else "Size"), sep="\t")
if t(root, "IsTruncated") == "true":  # the next page query, sorted
    print("NEXT", "key-marker=%s&max-uploads=1000&upload-id-marker=%s&uploads=" % (q(t(root, "NextKeyMarker")),
          q(t(root, "NextUploadIdMarker"))) if up else "continuation-token=%s&list-type=2&max-keys=1000" %
          q(t(root, "NextContinuationToken")), sep="\t")
' "$what" <<<"$out") || return 1
    q=$(sed -n 's/^NEXT\t//p' <<<"$out")
    [ -z "$out" ] || grep -v "^NEXT" <<<"$out" || true
  done
}

# s3_empty BUCKET [MIN_BYTES]: prints how many objects and uploads it removed
s3_empty() {
  local bucket=$1 min=${2:-0} objs ups key v n=0
  objs=$(_s3_list "$bucket" objects) || return 1
  ups=$(_s3_list "$bucket" uploads) || return 1
  while IFS=$'\t' read -r key v; do
    [ -n "$key" ] && [ "$v" -ge "$min" ] || continue
    s3 -f -X DELETE "$S3/$bucket/$key" -o /dev/null || return 1
    n=$((n + 1))
  done <<<"$objs"
  while IFS=$'\t' read -r key v; do
    [ -n "$key" ] || continue
    s3 -f -X DELETE "$S3/$bucket/$key?uploadId=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$v")" -o /dev/null || return 1
    n=$((n + 1))
  done <<<"$ups"
  echo "$n"
}

rgw_gc() { radosgw-admin -c "$CEPH_BASE/ceph.conf" gc process --include-all >/dev/null 2>&1; }

osd_used_mib() {
  sleep 1.5
  ceph -c "$CEPH_BASE/ceph.conf" daemon osd.0 perf dump 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["osd"]["stat_bytes_used"] >> 20)' 2>/dev/null || echo "?"
}

dist_s3_config() {
  cat <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    accesskey: testak
    secretkey: testsk
    region: us-east-1
    regionendpoint: $S3
    bucket: $1
    secure: false
    v4auth: true$( [ -n "${DIST_S3_CHUNKSIZE:-}" ] && printf '\n    chunksize: %s' "$DIST_S3_CHUNKSIZE")
  redirect:
    disable: $3
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  secret: wharf-bench-not-a-secret
EOF
}
