#!/usr/bin/env python3
"""A one-layer image of N empty files (bench/squash-entries.sh).

    many_entries.py layer OUT.tar.gz N         write the gzip layer (cached by the caller)
    many_entries.py push URL REPO LAYER.tar.gz push it as REPO:v1 through the /v2 API

Paths are d%03d/f%07d (16 bytes each, 1000 directories): the per-entry cost
the squash must stay under is measured against these short names. Standard
library only.
"""
import gzip
import hashlib
import http.client
import json
import sys
import urllib.parse
import zlib


def header(name, typeflag, mode, size=0):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 1700000000
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    chk = sum(h)
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def layer(out, n):
    per_dir = 1000
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    raw = hashlib.sha256()
    with open(out, "wb") as f:
        buf = []
        for i in range(n):
            if i % per_dir == 0:
                buf.append(header(b"d%03d/" % (i // per_dir), b"5", 0o755))
            buf.append(header(b"d%03d/f%07d" % (i // per_dir, i), b"0", 0o644))
            if len(buf) >= 4096:
                chunk = b"".join(buf)
                raw.update(chunk)
                f.write(comp.compress(chunk))
                buf = []
        buf.append(b"\0" * 1024)
        chunk = b"".join(buf)
        raw.update(chunk)
        f.write(comp.compress(chunk))
        f.write(comp.flush())
    with open(out + ".diffid", "w") as f:
        f.write("sha256:" + raw.hexdigest())


def push(url, repo, path):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    def blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        conn.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), body=data,
                     headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
        assert r.status == 201, r.status
        return d, len(data)

    data = open(path, "rb").read()
    diff_id = open(path + ".diffid").read().strip()
    ld, ls = blob(data)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cd, cs = blob(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld,
                                  "size": ls}]}).encode()
    conn.request("PUT", "/v2/%s/manifests/v1" % repo, body=man,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 201, r.status


if __name__ == "__main__":
    if sys.argv[1] == "layer":
        layer(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "push":
        push(sys.argv[2], sys.argv[3], sys.argv[4])
