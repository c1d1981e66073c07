#!/usr/bin/env bash
# tests/server/gc.sh — `wharf gc` removes exactly the blobs nothing references
# and nothing else, while the server runs: blobs of a deleted manifest and an
# unlinked blob go; a layer shared with another image, a blob unlinked but
# still named by a manifest, the squash cache entry and everything recently
# committed stay; the remaining image still pulls and squashes byte for byte.
# With WHARF_TEST_BACKEND=pg-s3 (tests/lib/common.sh) the same on PostgreSQL +
# RGW: the stores are then inspected with psql and signed S3 requests.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
make_work gc
port=$(free_port)
data=$work/data
start_wharf "$port" "$data" "$work/wharf.log"
PIDS+=("$WHARF_PID")
gc_args=(--data-dir "$data")
cfg=$(backend_config "$data")
[ -n "$cfg" ] && gc_args+=(--config "$cfg")
# The stores, seen directly: blob files or objects, the layer_index table.
if [ "${WHARF_TEST_BACKEND:-}" = pg-s3 ]; then
  store=$(backend_name "$data")
  count_blobs() { s3_request GET "/$store?list-type=2&max-keys=1000&prefix=blobs%2F" | { grep -o '<Key>' || true; } | wc -l; }
  index_rows() { psql -Atq -F ' ' "$WHARF_TEST_PG_DSN" -c "SELECT layer_digest, index_digest FROM $store.layer_index"; }
  blob_bytes() { s3_request GET "/$store/blobs/sha256/${1#sha256:}"; }
else
  count_blobs() { find "$data/blobs" -type f | wc -l; }
  index_rows() { /usr/bin/python3 -c 'import sqlite3,sys; [print(*r) for r in sqlite3.connect(sys.argv[1]).execute("SELECT layer_digest, index_digest FROM layer_index")]' "$data/wharf.db"; }
  blob_bytes() { local h=${1#sha256:}; cat "$data/blobs/sha256/${h:0:2}/$h" 2>/dev/null; }
fi
index_count() { index_rows | wc -l; }
export -f count_blobs index_rows blob_bytes s3_request 2>/dev/null || true
export data store WHARF_TEST_S3_ENDPOINT WHARF_TEST_PG_DSN
base=http://127.0.0.1:$port

/usr/bin/python3 - "$base" "$work" <<'PY'
import gzip, hashlib, io, json, sys, tarfile, urllib.request
base, work = sys.argv[1], sys.argv[2]
def req(method, path, body=None, headers=None):
    r = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def layer(name, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue(), gzip.compress(buf.getvalue(), mtime=0)
def push(repo, tag, layers, label):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"l": label}},
                      "rootfs": {"type": "layers", "diff_ids": [sha(t) for t, _ in layers]}}).encode()
    for b in [cfg] + [g for _, g in layers]:
        st, _, _ = req("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha(b)), b)
        assert st == 201, st
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(g), "size": len(g)}
                               for _, g in layers]}).encode()
    st, _, _ = req("PUT", "/v2/%s/manifests/%s" % (repo, tag), m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert st == 201, st
    return sha(m), sha(cfg)
shared = layer("shared.txt", b"shared" * 1000)
only_a = layer("a.txt", b"only in a" * 1000)
only_b = layer("b.txt", b"only in b" * 1000)
ref_only = layer("r.txt", b"named by a manifest, unlinked" * 100)
ma, ca = push("gc/a", "v1", [shared, only_a], "a")
mb, cb = push("gc/b", "v1", [shared, only_b], "b")
mc, cc = push("gc/c", "v1", [ref_only], "c")
# a blob linked to no manifest at all, then unlinked
stray = b"stray bytes" * 500
assert req("POST", "/v2/gc/a/blobs/uploads/?digest=" + sha(stray), stray)[0] == 201
assert req("DELETE", "/v2/gc/a/blobs/" + sha(stray))[0] == 202
# image a deleted; in c the layer unlinked though c's manifest still names it
assert req("DELETE", "/v2/gc/a/manifests/" + ma)[0] == 202
for d in (sha(shared[1]), sha(only_a[1]), ca):
    st = req("DELETE", "/v2/gc/a/blobs/" + d)
    assert st[0] == 202, (d, st)
assert req("DELETE", "/v2/gc/c/blobs/" + sha(ref_only[1]))[0] == 202
# the squash cache entry of b
st, body, _ = req("GET", "/c1/squash/gc/b/v1")
assert st == 200
open(work + "/squash-before", "wb").write(body)
json.dump({"gone": [sha(only_a[1]), ca, sha(stray)], "kept": [sha(shared[1]), sha(only_b[1]), cb, sha(ref_only[1])],
           "mb": mb}, open(work + "/expect.json", "w"))
PY

# the squash's gzip piece is compressed in the background after the first GET:
# counted once it is there (a HEAD then has its exact length)
for _ in $(seq 100); do
  curl -sfI -H 'Accept-Encoding: gzip' "$base/c1/squash/gc/b/v1" | tr -d '\r' | grep -qi '^content-length' && break
  sleep 0.1
done
before=$(count_blobs)
out=$("$WHARF_BIN" gc "${gc_args[@]}")
echo "$out"
case "$out" in "removed 0 of $before blobs"*) echo "PASS default grace: nothing committed in the last hour is removed" ;; *) fail "gc with the default grace removed something: $out" ;; esac

sleep 2  # mtimes have one-second resolution: let "committed before now" hold
out=$("$WHARF_BIN" gc "${gc_args[@]}" --grace-minutes 0 --dry-run)
echo "$out"
[ "$(count_blobs)" = "$before" ] || fail "--dry-run removed files"
n=$(printf '%s\n' "$out" | grep -c '^would remove sha256:' || true)
[ "$n" = 3 ] || fail "--dry-run lists $n blobs, expected 3"
echo "PASS --dry-run lists the 3 unreferenced blobs and removes nothing"

idx_before=$(index_count)
out=$("$WHARF_BIN" gc "${gc_args[@]}" --grace-minutes 0)
echo "$out"
# The 3 blobs, then the squash index of the removed layer only_a (built in the
# background at push) in a second pass: 4 files.
case "$out" in *"forgot 1 squash layer index"*) ;; *) fail "gc did not forget the index of the removed layer: $out" ;; esac
[ "$(count_blobs)" = $((before - 4)) ] || fail "gc left $(count_blobs) blobs, expected $((before - 4))"
[ "$(index_count)" = $((idx_before - 1)) ] || fail "layer indexes: $(index_count), expected $((idx_before - 1))"
index_rows >"$work/index.rows"
/usr/bin/python3 - "$base" "$work" <<'PY'
import hashlib, json, os, subprocess, sys, urllib.request
base, work = sys.argv[1:3]
exp = json.load(open(work + "/expect.json"))
def blob(d):  # the stored bytes, or None
    r = subprocess.run(["bash", "-c", 'blob_bytes "$0"', d], capture_output=True)
    return r.stdout if r.returncode == 0 else None
for d in exp["gone"]:
    assert blob(d) is None, "still there: " + d
rows = dict(l.split() for l in open(work + "/index.rows") if l.strip())
assert exp["gone"][0] not in rows, "the index of the removed layer only_a is still recorded"
for d in exp["kept"][:2]:  # the layers still stored keep their index blobs
    assert d in rows and blob(rows[d]) is not None, "index of " + d + " lost"
for d in exp["kept"]:
    b = blob(d)
    assert b is not None, "removed: " + d
    assert "sha256:" + hashlib.sha256(b).hexdigest() == d
def get(p, h=None):
    with urllib.request.urlopen(urllib.request.Request(base + p, headers=h or {})) as r:
        return r.read()
m = get("/v2/gc/b/manifests/v1", {"Accept": "application/vnd.oci.image.manifest.v1+json"})
for l in json.loads(m)["layers"] + [json.loads(m)["config"]]:
    b = get("/v2/gc/b/blobs/" + l["digest"])
    assert "sha256:" + hashlib.sha256(b).hexdigest() == l["digest"]
assert get("/c1/squash/gc/b/v1") == open(work + "/squash-before", "rb").read(), "the squash cache entry changed"
print("PASS gc removed exactly the 3 unreferenced blobs and the index of the removed layer; the shared layer, the manifest-named unlinked layer, "
      "image b (pull and squash, byte for byte) are intact")
PY
# A blob removed by gc can be pushed again.
head -c 5000 /dev/urandom >"$work/again"
d="sha256:$(sha256sum <"$work/again" | cut -d' ' -f1)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$work/again" "$base/v2/gc/a/blobs/uploads/?digest=$d")
[ "$code" = 201 ] || fail "push after gc: $code"
echo "PASS pushing after gc works"
