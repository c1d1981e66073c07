#!/usr/bin/env python3
"""Walks a live registry and checks what a user relies on after a crash:
every tag resolves to a manifest whose bytes hash to its digest, every blob
and child manifest it references is served, and every served blob hashes to
its digest (no partial blob is visible). Exit 0 when all holds.

usage: verify.py http://127.0.0.1:PORT [--expect-repo NAME ...]
"""
import hashlib
import json
import sys
import urllib.request

MANIFEST_TYPES = ",".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


def get(url, accept=None):
    req = urllib.request.Request(url)
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read()


def sha(algo, data):
    return algo + ":" + hashlib.new(algo, data).hexdigest()


def main():
    base = sys.argv[1].rstrip("/")
    problems = []
    checked = {"tags": 0, "blobs": 0, "manifests": 0}
    _, _, body = get(base + "/v2/_catalog")
    repos = json.loads(body)["repositories"]
    for repo in repos:
        _, _, body = get(f"{base}/v2/{repo}/tags/list")
        tags = json.loads(body).get("tags") or []
        for tag in tags:
            checked["tags"] += 1
            check_manifest(base, repo, tag, problems, checked)
    for p in problems:
        print("PROBLEM:", p)
    print(f"checked {len(repos)} repositories, {checked['tags']} tags, "
          f"{checked['manifests']} manifests, {checked['blobs']} blobs: "
          f"{'OK' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


def check_manifest(base, repo, ref, problems, checked):
    try:
        _, headers, body = get(f"{base}/v2/{repo}/manifests/{ref}", MANIFEST_TYPES)
    except urllib.error.HTTPError as e:
        problems.append(f"{repo}:{ref} does not resolve ({e.code})")
        return
    checked["manifests"] += 1
    digest = headers.get("Docker-Content-Digest", "")
    if not digest or sha(digest.split(":")[0], body) != digest:
        problems.append(f"{repo}:{ref} manifest bytes do not hash to {digest}")
    m = json.loads(body)
    for child in m.get("manifests", []):
        check_manifest(base, repo, child["digest"], problems, checked)
    for d in ([m["config"]] if "config" in m else []) + m.get("layers", []):
        if d.get("urls"):
            continue
        checked["blobs"] += 1
        try:
            _, _, blob = get(f"{base}/v2/{repo}/blobs/{d['digest']}")
        except urllib.error.HTTPError as e:
            problems.append(f"{repo}:{ref} references missing blob {d['digest']} ({e.code})")
            continue
        if sha(d["digest"].split(":")[0], blob) != d["digest"]:
            problems.append(f"{repo}: blob {d['digest']} is served with other content ({len(blob)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
