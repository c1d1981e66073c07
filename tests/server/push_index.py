#!/usr/bin/env python3
"""Layers are indexed while they are pushed.

    python3 tests/server/push_index.py WHARF_BIN WORKDIR

- A gzip layer uploaded in three PATCHes is indexed from its upload alone,
  before any manifest names it (wharf_squash_layers_indexed_while_pushed_total,
  polled for up to 30 s after the upload); the squash after the
  manifest uses that index (the layer is not indexed a second time) and has
  every file of the layer.
- An upload that ends with a wrong digest, one deleted half-way, a blob that
  is not a compressed layer, and the same layer pushed again leave no index
  of their own; the server keeps serving.
- With squash.index_on_push off nothing is indexed while pushed.
Servers listen on 127.0.0.1 on free ports and are stopped by PID.
"""
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
BIN, WORK = sys.argv[1], sys.argv[2]
import http_limits as hl  # noqa: E402

hl.BIN, hl.WORK = BIN, WORK
os.makedirs(WORK, exist_ok=True)


def req(port, method, path, body=b"", headers=None):
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body if method != "GET" else None,
                               method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric(port, name):
    _, _, body = req(port, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.split()[-1])
    return total


def make_layer(seed, files=300, size=20000):
    rnd = random.Random(seed)
    raw = io.BytesIO()
    names = []
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        t.addfile(d)
        for i in range(files):
            content = bytes(rnd.getrandbits(8) for _ in range(64)) * (size // 64)
            ti = tarfile.TarInfo("data/f%04d" % i)
            ti.size = len(content)
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(content))
            names.append(ti.name)
    tar = raw.getvalue()
    return tar, gzip.compress(tar, compresslevel=1, mtime=0), names


def upload(port, repo, data, pieces=3, digest=None, delete_after=None):
    """POST, PATCH in `pieces`, PUT ?digest= (or DELETE after that many PATCHes)."""
    st, h, _ = req(port, "POST", "/v2/%s/blobs/uploads/" % repo)
    assert st == 202, st
    loc = h["Location"].split("127.0.0.1:%d" % port)[-1]
    step = (len(data) + pieces - 1) // pieces
    for k in range(pieces):
        part = data[k * step:(k + 1) * step]
        st, h, _ = req(port, "PATCH", loc, part, {"Content-Type": "application/octet-stream",
                                                   "Content-Range": "%d-%d" % (k * step, k * step + len(part) - 1)})
        assert st == 202, st
        loc = h["Location"].split("127.0.0.1:%d" % port)[-1]
        if delete_after is not None and k + 1 == delete_after:
            st, _, _ = req(port, "DELETE", loc)
            assert st == 204, st
            return None
    d = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    sep = "&" if "?" in loc else "?"
    st, _, body = req(port, "PUT", loc + sep + "digest=" + d)
    return st, body


def wait_metric(port, name, want, secs=30):
    for _ in range(secs * 10):
        if metric(port, name) >= want:
            return True
        time.sleep(0.1)
    return False


WHILE = "wharf_squash_layers_indexed_while_pushed_total"
ALL = "wharf_squash_layers_indexed_total"

tar, layer, names = make_layer(1)
port, srv = hl.start("push-index", "log: {requests: false}\n")
st, _ = upload(port, "pi/app", layer)
if st != 201:
    hl.fail("upload: %d" % st)
if not wait_metric(port, WHILE, 1):
    hl.fail("a gzip layer uploaded in three PATCHes was not indexed while pushed (%s=%s)" % (WHILE, metric(port, WHILE)))
if metric(port, ALL) != 1:
    hl.fail("expected exactly one layer index, got %s" % metric(port, ALL))
print("PASS a gzip layer pushed in three PATCHes is indexed from its upload, before any manifest names it")

cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode()
st, _ = upload(port, "pi/app", cfg, pieces=1)
assert st == 201, st
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                             "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)},
                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                              "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}]}).encode()
st, _, _ = req(port, "PUT", "/v2/pi/app/manifests/v1", man, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
assert st == 201, st
st, _, body = req(port, "GET", "/c1/squash/pi/app/v1")
if st != 200:
    hl.fail("squash: %d %r" % (st, body[:200]))
if metric(port, ALL) != 1:
    hl.fail("the layer indexed while pushed was indexed again (%s=%s)" % (ALL, metric(port, ALL)))
outer = tarfile.open(fileobj=io.BytesIO(body))
member = [m for m in outer.getnames() if m.endswith("layer.tar")][0]
inner = tarfile.open(fileobj=outer.extractfile(member))
got = sorted(m.name for m in inner.getmembers() if m.isfile())
if got != sorted(names):
    hl.fail("squashed layer lists %d files, the layer has %d" % (len(got), len(names)))
f = inner.extractfile("data/f0007").read()
orig = tarfile.open(fileobj=io.BytesIO(tar)).extractfile("data/f0007").read()
if f != orig:
    hl.fail("a file's content differs in the squash")
print("PASS its squash uses that index (no second index) and holds every file with its content")

_, other, _ = make_layer(2, files=50)
st, body = upload(port, "pi/app", other, digest="sha256:" + "0" * 64)
if st != 400 or b"DIGEST_INVALID" not in body:
    hl.fail("wrong digest: %d %r" % (st, body[:200]))
upload(port, "pi/app", make_layer(3, files=50)[1], delete_after=2)
st, _ = upload(port, "pi/app", os.urandom(3 << 20))
assert st == 201, st
st, _ = upload(port, "pi/other", layer)  # the same layer again
assert st == 201, st
time.sleep(1)
if metric(port, WHILE) != 1 or metric(port, ALL) != 1:
    hl.fail("a wrong digest, a deleted upload, a random blob or a second push of the layer indexed something "
            "(%s=%s, %s=%s)" % (WHILE, metric(port, WHILE), ALL, metric(port, ALL)))
st, _, _ = req(port, "GET", "/v2/")
if st != 200:
    hl.fail("server not serving after the failed uploads: %d" % st)
print("PASS a wrong digest, an upload deleted half-way, a random blob and the same layer again index nothing")
hl.stop(srv)

port, srv = hl.start("push-index-off", "log: {requests: false}\nsquash: {index_on_push: false}\n")
st, _ = upload(port, "pi/app", layer)
assert st == 201, st
time.sleep(1)
if metric(port, ALL) != 0:
    hl.fail("squash.index_on_push: false, yet the pushed layer was indexed")
print("PASS with squash.index_on_push off nothing is indexed while pushed")
hl.stop(srv)
