#!/usr/bin/env bash
# Backend faults, with the real servers, through nginx in front of two
# replicas (tests/lib/cluster.sh): the object store (radosgw) stopped for a
# few seconds in the middle of pushes, then PostgreSQL restarted in the
# middle of mixed traffic (blob pushes, image pushes, pulls). Requests in
# between fail with a 5xx in the spec's JSON error format (never a hang,
# never a crash); both replicas recover without a restart; afterwards every
# blob the registry acknowledged (201) reads back byte for byte, every one it
# refused is unknown (no link to bytes the store lacks), and every tag
# resolves to a manifest whose blobs exist and hash to their digests. Needs
# WHARF_TEST_PG_DSN, WHARF_TEST_PG_BASE, WHARF_TEST_S3_ENDPOINT and
# WHARF_TEST_CEPH_BASE (scripts/test.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/../lib/cluster.sh"
: "${WHARF_TEST_PG_DSN:?}" "${WHARF_TEST_PG_BASE:?}" "${WHARF_TEST_S3_ENDPOINT:?}" "${WHARF_TEST_CEPH_BASE:?}"
make_work faults
name=flt$$$RANDOM
curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u testak:testsk -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
  -X PUT "$WHARF_TEST_S3_ENDPOINT/$name" -o /dev/null
cat >"$work/cfg.yaml" <<EOC
metadata: {driver: postgres, postgres: {dsn: "$WHARF_TEST_PG_DSN", schema: $name, connect_timeout_seconds: 2}}
storage: {driver: s3, s3: {endpoint: "$WHARF_TEST_S3_ENDPOINT", bucket: $name, access_key: testak, secret_key: testsk}}
EOC
cluster_up "$work/c" "$work/cfg.yaml"
base=http://$CLUSTER_ADDR
bash "$here/../lib/make-oci-image.sh" "$work/img" v1 >/dev/null

# push N: a monolithic push of a fresh random blob; records "digest status file"
push() {
  local f=$work/blob.$1 d code
  head -c $((1000 + RANDOM)) /dev/urandom >"$f"
  d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  code=$(curl -s -m 30 -o "$work/resp.$1" -w '%{http_code}' -X POST --data-binary "@$f" \
    -H 'Content-Type: application/octet-stream' "$base/v2/faults/repo/blobs/uploads/?digest=$d")
  echo "$d $code $f" >>"$work/pushes"
  if [ "$code" != 201 ]; then
    [ "${code:0:1}" = 5 ] || fail "push $1 during a fault answered $code (want 201 or a 5xx)"
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["errors"][0]; assert e["code"] and e["message"]' \
      "$work/resp.$1" || fail "push $1 answered $code without the spec's error body: $(head -c 300 "$work/resp.$1")"
  fi
}
# check_pushes: every acknowledged blob reads back; every refused one is unknown
check_pushes() {
  local d code f ok=0 refused=0
  while read -r d code f; do
    if [ "$code" = 201 ]; then
      curl -sf "$base/v2/faults/repo/blobs/$d" -o "$work/back" || fail "acknowledged blob $d does not read back"
      cmp -s "$work/back" "$f" || fail "acknowledged blob $d reads back other bytes"
      ok=$((ok + 1))
    else
      c=$(curl -s -o /dev/null -w '%{http_code}' -I "$base/v2/faults/repo/blobs/$d")
      [ "$c" = 404 ] || fail "refused blob $d answers HEAD $c"
      refused=$((refused + 1))
    fi
  done <"$work/pushes"
  echo "$ok $refused"
}

# --- the object store stops for 4 s in the middle of pushes
rgw_pid=$(cat "$WHARF_TEST_CEPH_BASE"/run/client.rgw.a.pid)
( for i in $(seq 60); do push "$i"; sleep 0.1; done ) & pusher=$!
sleep 1.5
kill "$rgw_pid"
for _ in $(seq 50); do kill -0 "$rgw_pid" 2>/dev/null || break; sleep 0.1; done
sleep 4
radosgw -c "$WHARF_TEST_CEPH_BASE/ceph.conf" -n client.rgw.a
for _ in $(seq 100); do curl -s -o /dev/null "$WHARF_TEST_S3_ENDPOINT/" && break; sleep 0.1; done
wait "$pusher"
read -r ok refused < <(check_pushes)
[ "$refused" -gt 0 ] || fail "no push failed while the object store was down (the test proves nothing)"
[ "$ok" -gt "$refused" ] || fail "pushes did not recover after the object store came back ($ok ok, $refused refused)"
push after-s3
tail -1 "$work/pushes" | grep -q ' 201 ' || fail "a push after the object store came back failed"
echo "PASS object store down for 4 s during pushes: $refused refused with a 5xx JSON error, $ok acknowledged and whole, recovered"

# --- PostgreSQL restarted in the middle of pushes and reads
: >"$work/pushes"
( for i in $(seq 40); do push "pg$i"; curl -s -o /dev/null "$base/v2/faults/repo/tags/list"; sleep 0.1; done ) & pusher=$!
( set +e; for i in $(seq 12); do
    skopeo copy -q --retry-times 0 --dest-tls-verify=false oci:"$work/img":v1 "docker://$CLUSTER_ADDR/faults/app:t$i" \
      >/dev/null 2>&1; echo "t$i $?" >>"$work/images"
    curl -s -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$base/v2/faults/app/manifests/t$i"
  done ) & imager=$!
sleep 1
(cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$WHARF_TEST_PG_BASE/data" -m fast -w restart \
  -l "$WHARF_TEST_PG_BASE/server.log" >/dev/null)  # from / : the postgres user cannot enter the checkout
head -1 "$WHARF_TEST_PG_BASE/data/postmaster.pid" >"$WHARF_TEST_PG_BASE/pid"
wait "$pusher" "$imager"
kill -0 "$REPLICA_A_PID" && kill -0 "$REPLICA_B_PID" || fail "a replica died when PostgreSQL restarted"
read -r ok refused < <(check_pushes)
push after-pg
tail -1 "$work/pushes" | grep -q ' 201 ' || fail "a push after PostgreSQL came back failed"
for r in "$REPLICA_A" "$REPLICA_B"; do
  curl -sf "http://$r/health/endtoend" -o /dev/null || fail "/health/endtoend of replica $r fails after PostgreSQL came back"
done
echo "PASS PostgreSQL restarted during mixed traffic through nginx: $refused blob pushes refused cleanly, $ok acknowledged and whole; $(grep -c ' 0$' "$work/images" || true) of 12 image pushes succeeded; both replicas recovered without a restart"

# Afterwards: every tag resolves to a manifest whose blobs exist and hash right.
tags=$(curl -sf "$base/v2/faults/app/tags/list" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["tags"] or []))')
[ -n "$tags" ] || fail "no image push succeeded (the test proves nothing)"
n=0
for t in $tags; do
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$base/v2/faults/app/manifests/$t" -o "$work/m" ||
    fail "tag $t does not resolve to a manifest"
  for d in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join([m["config"]["digest"]]+[l["digest"] for l in m["layers"]]))' "$work/m"); do
    got=sha256:$(curl -sf "$base/v2/faults/app/blobs/$d" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$d" ] || fail "tag $t: blob $d reads back as $got"
  done
  n=$((n + 1))
done
echo "PASS afterwards every tag ($n) resolves to a manifest whose blobs exist and hash to their digests"
