#!/usr/bin/env python3
"""Push N variants of an image that is already in a wharf repository, so a
benchmark can measure N *uncached* squashes of the same layers.

Usage: variants.py BASE_URL REPO TAG N  ->  prints the N new tags, one per line

Each variant is the image's manifest with a config that differs only by one
label (wharf.bench.variant=K), so it has its own manifest digest and thus its
own squash cache entry, while the layers (and their indexes built at push) are
shared: every squash of a variant does the same work as the first squash of
the original. Registry API only (POST ?digest= for the config, PUT manifest).
"""
import hashlib
import json
import sys
import urllib.request


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def main():
    base, repo, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    oci = "application/vnd.oci.image.manifest.v1+json"
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    _, hdr, raw = request("GET", f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": f"{oci}, {docker}"})
    manifest = json.loads(raw)
    ctype = hdr.get("Content-Type", oci)
    _, _, raw_cfg = request("GET", f"{base}/v2/{repo}/blobs/{manifest['config']['digest']}")
    for k in range(1, n + 1):
        cfg = json.loads(raw_cfg)
        cfg.setdefault("config", {}).setdefault("Labels", {})["wharf.bench.variant"] = str(k)
        body = json.dumps(cfg, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        status, _, _ = request("POST", f"{base}/v2/{repo}/blobs/uploads/?digest={digest}", body,
                               {"Content-Type": "application/octet-stream"})
        assert status == 201, f"config push answered {status}"
        m = dict(manifest)
        m["config"] = dict(manifest["config"], digest=digest, size=len(body))
        new_tag = f"{tag}-variant{k}"
        status, _, _ = request("PUT", f"{base}/v2/{repo}/manifests/{new_tag}",
                               json.dumps(m, separators=(",", ":")).encode(), {"Content-Type": ctype})
        assert status == 201, f"manifest push answered {status}"
        print(new_tag)


if __name__ == "__main__":
    main()
