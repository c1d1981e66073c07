#!/usr/bin/env bash
# A blob over 5 GiB on S3 (CopyObject stops at 5 GiB: the commit copies it
# server-side with UploadPartCopy): pushed to wharf on PostgreSQL + a Ceph
# RGW on BlueStore (WHARF_TEST_S3_BIG_ENDPOINT, else one of its own; the
# shared test RGW's MemStore holds 2 GiB) in
# 256 MiB PATCH chunks, then read back whole through wharf (proxy) and
# compared by digest; nothing is left under uploads/ and no multipart upload
# stays open. Needs WHARF_TEST_PG_DSN (scripts/test.sh exports it).
#
#   bash tests/server/s3_big_blob.sh [GiB, default 5.1]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
: "${WHARF_TEST_PG_DSN:?set WHARF_TEST_PG_DSN}"
size_gib=${1:-5.1}
make_work bigblob
if [ -n "${WHARF_TEST_S3_BIG_ENDPOINT:-}" ]; then  # scripts/test.sh's RGW on BlueStore
  export WHARF_TEST_S3_ENDPOINT=$WHARF_TEST_S3_BIG_ENDPOINT
else
  ceph=$work/ceph
  _big_cleanup() { BASE=$ceph bash "$here/../lib/ceph_stop.sh"; _common_cleanup; }
  trap _big_cleanup EXIT
  rgw=$(free_port)
  (cd /tmp && CEPH_STORE=bluestore BLUESTORE_BYTES=$((16 << 30)) BASE=$ceph RGW_PORT=$rgw MON_PORT=$(free_port) \
    bash "$here/../lib/ceph_start.sh") >"$work/ceph.out" 2>&1 || { tail -20 "$work/ceph.out"; fail "RGW on BlueStore did not start"; }
  export WHARF_TEST_S3_ENDPOINT=http://127.0.0.1:$rgw
fi
name=big$$
s3_request PUT "/$name" -o /dev/null || fail "cannot create bucket $name"
cat >"$work/cfg.yaml" <<EOC
metadata: {driver: postgres, postgres: {dsn: "$WHARF_TEST_PG_DSN", schema: $name}}
storage: {driver: s3, s3: {endpoint: "$WHARF_TEST_S3_ENDPOINT", bucket: $name, access_key: testak, secret_key: testsk}}
EOC
port=$(free_port)
start_wharf "$port" "$work/data" "$work/wharf.log" --config "$work/cfg.yaml"; PIDS+=("$WHARF_PID")
/usr/bin/python3 - "$port" "$size_gib" <<'PY' || { tail -20 "$work/wharf.log"; fail "the big blob did not round-trip"; }
import hashlib, http.client, sys, time, urllib.parse
port, total = int(sys.argv[1]), int(float(sys.argv[2]) * (1 << 30))
block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB; each chunk's blocks differ by a counter
def chunks(chunk):
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        out = bytearray()
        while len(out) < n:
            out += (sent + len(out)).to_bytes(8, "big") + block[8:]
        yield bytes(out[:n])
        sent += n
def req(method, path, body=None, headers=None):
    u = urllib.parse.urlsplit(path)  # Location headers are absolute
    path = u.path + ("?" + u.query if u.query else "")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r, c
h = hashlib.sha256()
t0 = time.time()
r, c = req("POST", "/v2/big/blob/blobs/uploads/")
assert r.status == 202, r.status
loc = r.getheader("Location"); r.read(); c.close()
off = 0
for part in chunks(256 << 20):
    h.update(part)
    r, c = req("PATCH", loc, part, {"Content-Type": "application/octet-stream",
                                    "Content-Range": "%d-%d" % (off, off + len(part) - 1)})
    assert r.status == 202, (r.status, r.read()[:300])
    off += len(part)
    loc = r.getheader("Location"); r.read(); c.close()
digest = "sha256:" + h.hexdigest()
r, c = req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + digest, b"")
assert r.status == 201, (r.status, r.read()[:300])
r.read(); c.close()
print("pushed %.2f GiB in %.0f s" % (total / (1 << 30), time.time() - t0))
r, c = req("HEAD", "/v2/big/blob/blobs/" + digest)
assert r.status == 200 and int(r.getheader("Content-Length")) == total, (r.status, r.getheader("Content-Length"))
c.close()
t0 = time.time()
r, c = req("GET", "/v2/big/blob/blobs/" + digest)
assert r.status == 200, r.status
g, n = hashlib.sha256(), 0
while True:
    b = r.read(8 << 20)
    if not b:
        break
    g.update(b); n += len(b)
assert n == total and "sha256:" + g.hexdigest() == digest, (n, total)
print("PASS a %.2f GiB blob on S3 (committed with UploadPartCopy) read back whole, digest equal (%.0f s)"
      % (total / (1 << 30), time.time() - t0))
PY
count() { { grep -o "$1" || true; } | wc -l; }  # no match is a count of 0, not a failed pipeline
left=$(s3_request GET "/$name?list-type=2&prefix=uploads%2F" | count '<Key>')
open=$(s3_request GET "/$name?uploads=" | count '<Upload>')
[ "$left" = 0 ] && [ "$open" = 0 ] || fail "left behind: $left objects under uploads/, $open multipart uploads"
echo "PASS nothing left under uploads/, no multipart upload open"
