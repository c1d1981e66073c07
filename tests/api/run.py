#!/usr/bin/env python3
"""API conformance suite for wharf, run against a live registry over HTTP.

    python3 tests/api/run.py --url http://127.0.0.1:PORT --target wharf|distribution [-k FILTER] [-v]

Written from the OCI Distribution Spec v1.1 text and wharf's own API rules
(tests/api/README.md). Standard library only. Every test works in freshly named
repositories, so the suite can be run again and again on the same server.

With --target distribution (Debian's docker-registry 2.8) the places where
that server differs from what wharf must do are expected differences: the
test still asserts wharf's behaviour, is reported as XFAIL, and the spec
sentence that justifies wharf's behaviour sits beside the marker (see
README.md for the table). With --target wharf nothing may fail.

Exit status: 0 when every selected test passed (or, for distribution, failed
exactly where a difference is expected); 1 otherwise.
"""

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import ssl
import sys
import time
import traceback
import urllib.parse
import uuid

# --------------------------------------------------------------------------
# Media types and error codes

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MT_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

# spec.md, "Error Codes": "The `code` field MUST be one of the following"
SPEC_ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID",
    "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
}
# spec.md, "Legacy Docker support error codes": "The client MAY encounter
# error codes targeting Docker schema1 manifests, such as `TAG_INVALID`, or
# `MANIFEST_UNVERIFIED`."
LEGACY_ERROR_CODES = {"TAG_INVALID", "MANIFEST_UNVERIFIED"}

FOUR_MIB = 4 * 1024 * 1024

# --------------------------------------------------------------------------
# Expected differences of distribution 2.8. Each names what distribution
# does and quotes the sentence (spec.md of OCI distribution-spec v1.1 unless
# said otherwise) that makes wharf's behaviour the required one.


class Difference:
    def __init__(self, key, observed, quote):
        self.key = key
        self.observed = observed
        self.quote = quote


DIFFERENCES = {}


def difference(key, observed, quote):
    DIFFERENCES[key] = Difference(key, observed, quote)
    return DIFFERENCES[key]


RFC7231_ACCEPT = (
    "RFC 7231 section 5.3.2 (which spec.md points to for `Accept`): \"A "
    "request without any Accept header field implies that the user agent "
    "will accept any media type in response.\" and \"*/*\" matches all "
    "media types")

D_MONOLITHIC_POST = difference(
    "monolithic-post",
    "POST /blobs/uploads/?digest= is answered 202 and the body is ignored",
    "spec.md, Single POST: \"Registries MAY support pushing blobs using a "
    "single POST request. [...] Successful completion of the request MUST "
    "return a `201 Created` and MUST include the following header: "
    "Location: <blob-location>\" (wharf supports it)")
D_CHUNK_ORDER = difference(
    "chunk-order",
    "a PATCH whose Content-Range does not start at the current offset is "
    "accepted (202) and appended at the current offset",
    "spec.md, Pushing a blob in chunks: \"Chunks MUST be uploaded in order, "
    "with the first byte of a chunk being the last chunk's `<end-of-range>` "
    "plus one. If a chunk is uploaded out of order, the registry MUST "
    "respond with a `416 Requested Range Not Satisfiable` code.\"")
D_SIZE_INVALID = difference(
    "size-invalid",
    "a PATCH whose Content-Range length differs from its Content-Length is "
    "accepted (202)",
    "spec.md, Error Codes: \"code-10 `SIZE_INVALID` provided length did not "
    "match content length\"; \"The `<range>` refers to the byte range of "
    "the chunk, and MUST be inclusive on both ends.\"")
D_UPLOAD_UNKNOWN = difference(
    "upload-unknown-code",
    "a session id that was never started here (or belongs to another "
    "repository) is 404 BLOB_UPLOAD_INVALID",
    "detail.md, Errors: \"`BLOB_UPLOAD_UNKNOWN` blob upload unknown to "
    "registry: If a blob upload has been cancelled or was never started, "
    "this error code MAY be returned.\"; spec.md Error Codes: \"code-3 "
    "`BLOB_UPLOAD_UNKNOWN` blob upload unknown to registry\"")
D_MOUNT_NO_FROM = difference(
    "mount-without-from",
    "POST ?mount=<digest> without `from` always opens an upload session "
    "(202), even when the blob is already in the repository",
    "spec.md, Mounting a blob: \"The registry MAY treat the `from` parameter "
    "as optional, and it MAY cross-mount the blob if it can be found.\" "
    "(wharf's rule: \"Mount without `from` where the blob is already known.\")")
D_ACCEPT_ABSENT = difference(
    "accept-absent",
    "without Accept an OCI manifest/index is 404 MANIFEST_UNKNOWN and a "
    "Docker schema2 manifest/list by tag is 400 MANIFEST_INVALID (it tries "
    "to convert to schema1)",
    "spec.md: \"The client SHOULD include an `Accept` header\" (SHOULD, not "
    "MUST), \"A GET request to an existing manifest URL MUST provide the "
    "expected manifest, with a response code that MUST be `200 OK`.\"; "
    + RFC7231_ACCEPT)
D_ACCEPT_STAR = difference(
    "accept-star",
    "`Accept: */*` is not understood: the same answers as without Accept",
    "spec.md: \"A GET request to an existing manifest URL MUST provide the "
    "expected manifest, with a response code that MUST be `200 OK`.\"; "
    + RFC7231_ACCEPT)
D_NEGOTIATE_DOCKER = difference(
    "negotiate-docker",
    "a Docker schema2 manifest whose type is not accepted is 400 "
    "MANIFEST_INVALID by tag and returned anyway by digest; a manifest list "
    "whose type is not accepted is answered with its linux/amd64 child "
    "manifest (by tag) or returned anyway (by digest)",
    "spec.md: \"The `Content-Type` header SHOULD match what the client "
    "pushed as the manifest's `Content-Type`\"; \"If the `<reference>` part "
    "of a manifest request is a digest, clients SHOULD verify the returned "
    "manifest matches this digest.\" (wharf's rule: \"otherwise 404 "
    "MANIFEST_UNKNOWN\")")
D_REFERRERS = difference(
    "referrers-api",
    "GET /v2/<name>/referrers/<digest> is a plain-text 404: no referrers API",
    "spec.md, Listing Referrers: \"Assuming a repository is found, this "
    "request MUST return a `200 OK` response code. If the registry supports "
    "the referrers API, the registry MUST NOT return a `404 Not Found` to a "
    "referrers API requests.\"")
D_OCI_SUBJECT = difference(
    "oci-subject",
    "a manifest PUT with `subject` is answered without OCI-Subject",
    "spec.md, Pushing Manifests with Subject: \"When processing a request "
    "for an image manifest with the `subject` field, a registry "
    "implementation that supports the referrers API MUST respond with the "
    "response header `OCI-Subject: <subject digest>`\"")
D_MANIFEST_LIMIT = difference(
    "manifest-size-limit",
    "a manifest above 4 MiB is refused with 400 MANIFEST_INVALID (\"http: "
    "request body too large\"), not 413",
    "spec.md, Pushing Manifests: \"A registry SHOULD enforce some limit on "
    "the maximum manifest size that it can accept. A registry that enforces "
    "this limit SHOULD respond to a request to push a manifest over this "
    "limit with a response code `413 Payload Too Large`.\" (wharf's rule: "
    "\"4 MiB limit (413 above it)\")")
D_SCHEMA1_MESSAGE = difference(
    "schema1-message",
    "Docker schema1 is refused with MANIFEST_INVALID but the message is just "
    "\"manifest invalid\"",
    "wharf's rule: \"Docker schema1 is refused with MANIFEST_INVALID and a message "
    "saying why\"; spec.md Error Codes: \"The `message` field is OPTIONAL, "
    "and if present, it SHOULD be a human readable string\"")
D_TAGS_ORDER = difference(
    "tags-order",
    "tags/list is in storage order, not sorted",
    "spec.md, Listing Tags: \"If the list is not empty, the tags MUST be in "
    "lexical order\" (wharf's rule: byte order)")
D_TAGS_PAGING = difference(
    "tags-paging",
    "tags/list ignores `n` and `last` and never sends Link",
    "spec.md, Listing Tags: \"The response to such a request MAY return "
    "fewer than `<int>` results, but only when the total number of tags "
    "attached to the repository is less than `<int>` or a `Link` header is "
    "provided. Otherwise, the response MUST include `<int>` results.\"; "
    "\"When `n` is zero, this endpoint MUST return an empty list, and MUST "
    "NOT include a `Link` header.\"; \"A request of this sort will return "
    "up to `<int>` tags, beginning non-inclusively with `<tagname>`.\"")
D_CATALOG_ORDER = difference(
    "catalog-order",
    "_catalog walks the storage tree, so `ns/a/b` is listed before `ns/a-b` "
    "(not byte order of the full name)",
    "wharf's rule: \"`tags/list` and `_catalog` in byte order with `n`, `last` "
    "and a `Link` header\" (_catalog is no longer in spec.md; the tags rule "
    "\"MUST be in lexical order\" is the model)")
D_TAG_DELETE = difference(
    "tag-delete",
    "DELETE /manifests/<tag> is 400 DIGEST_INVALID (tag deletion "
    "unsupported)",
    "spec.md, Deleting tags: \"To delete a tag, perform a `DELETE` request "
    "to a path in the following format: `/v2/<name>/manifests/<tag>` [...] "
    "Upon success, the registry MUST respond with a `202 Accepted` code.\" "
    "(wharf's rule: \"Deletion: manifests by digest, tags by tag name, blobs\")")
D_NAME_GRAMMAR = difference(
    "name-grammar",
    "no NAME_INVALID: an upper-case name is treated as an unknown repository "
    "(404 NAME_UNKNOWN / MANIFEST_UNKNOWN, and POST even opens an upload "
    "session), `-lead`, `trail-`, `a..b` are the router's plain-text 404, "
    "`a/./b` a 301 redirect, a name over 255 characters a 500 UNKNOWN",
    "spec.md, Pulling manifests: \"Throughout this document, `<name>` MUST "
    "match the following regular expression\"; Error Codes: \"code-8 "
    "`NAME_INVALID` invalid repository name\"")
D_TAG_GRAMMAR = difference(
    "tag-grammar",
    "a tag outside the grammar is the router's plain-text 404",
    "spec.md: \"Throughout this document, `<reference>` as a tag MUST be at "
    "most 128 characters in length and MUST match the following regular "
    "expression: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`\"; \"Legacy Docker "
    "support error codes\": \"The client MAY encounter error codes [...] "
    "such as `TAG_INVALID`\"")
D_DIGEST_REFERENCE = difference(
    "digest-reference",
    "GET /manifests/sha256:<bad hex> is a 500 UNKNOWN",
    "spec.md: \"`<reference>` MUST be either (a) the digest of the manifest "
    "or (b) a tag. The `<reference>` MUST NOT be in any other format.\"; "
    "Error Codes: \"code-4 `DIGEST_INVALID`\"")
D_METHOD_TEXT = difference(
    "unsupported-method",
    "a method a route does not support is a plain-text 405",
    "spec.md Error Codes: \"code-13 `UNSUPPORTED` the operation is "
    "unsupported\"; detail.md: \"The operation was unsupported due to a "
    "missing implementation or invalid set of parameters.\" (wharf's rule: "
    "\"every error in the spec's JSON error format\")")
D_RANGE_416_BODY = difference(
    "blob-range-416-body",
    "an unsatisfiable blob Range is 416 with a plain-text body shorter than "
    "its Content-Length (which is the blob's size)",
    "spec.md, Error Codes: \"A `4XX` response code from the registry MAY "
    "return a body in any format. If the response body is in JSON format, it "
    "MUST have the following format\"; wharf makes JSON the rule for "
    "wharf: \"every error in the spec's JSON error format\"")



# --------------------------------------------------------------------------
# Failures and small assertion helpers


class Failure(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def sha(data, algo="sha256"):
    return algo + ":" + hashlib.new(algo, data).hexdigest()


def rand_hex(n=10):
    return os.urandom(n).hex()[:n]


# --------------------------------------------------------------------------
# HTTP client


class Response:
    def __init__(self, method, target, status, reason, headers, body):
        self.method = method
        self.target = target
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def h(self, name):
        return self.headers.get(name)

    def h_all(self, name):
        return self.headers.get_all(name) or []

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Failure("%s: body is not JSON (%s): %r"
                          % (self, e, self.body[:200]))

    def __str__(self):
        return "%s %s -> %d" % (self.method, self.target, self.status)


class Registry:
    """A tiny HTTP client for one registry. One connection per request, so
    that a server closing after an error never affects the next request."""

    def __init__(self, base_url, verbose=False):
        u = urllib.parse.urlsplit(base_url.rstrip("/"))
        if u.scheme not in ("http", "https"):
            raise SystemExit("--url must be http:// or https://")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.netloc = u.netloc
        self.verbose = verbose
        self.trace = []

    def path_of(self, target):
        """Request target for a path, a relative Location or an absolute
        URL (whose path and query are sent to this registry)."""
        if target.startswith("http://") or target.startswith("https://"):
            u = urllib.parse.urlsplit(target)
            return (u.path or "/") + ("?" + u.query if u.query else "")
        if target.startswith("/"):
            return target
        return urllib.parse.urljoin("/v2/", target)

    def connection(self):
        if self.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.host, self.port,
                                               timeout=60, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, target, headers=(), body=None, chunks=None,
                tolerate_truncation=False):
        """headers: a dict or a list of (name, value) pairs; a list may
        repeat a name, which is sent as separate header lines. body: bytes
        sent with Content-Length. chunks: a list of bytes sent with
        Transfer-Encoding: chunked and no Content-Length. A response body
        shorter than its Content-Length fails the test unless
        tolerate_truncation."""
        if isinstance(headers, dict):
            headers = list(headers.items())
        path = self.path_of(target)
        names = {k.lower() for k, _ in headers}
        conn = self.connection()
        started = time.monotonic()
        try:
            conn.putrequest(method, path, skip_host="host" in names,
                            skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            if chunks is not None:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for c in chunks:
                    if c:
                        conn.send(b"%x\r\n" % len(c) + c + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                if "content-length" not in names and (
                        body is not None or method in ("POST", "PUT", "PATCH")):
                    conn.putheader("Content-Length",
                                   str(len(body) if body else 0))
                try:
                    conn.endheaders()
                    if body:
                        conn.send(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered early; read its answer
            r = conn.getresponse()
            truncated = False
            try:
                data = r.read()
            except http.client.IncompleteRead as e:
                data, truncated = e.partial, True
            resp = Response(method, path, r.status, r.reason, r.headers, data)
        finally:
            conn.close()
        self.trace.append("%s %s -> %d (%.0f ms)" % (
            method, path[:160], resp.status,
            (time.monotonic() - started) * 1000))
        if truncated and not tolerate_truncation:
            raise Failure("%s: body is shorter than its Content-Length %s: %r"
                          % (resp, resp.h("Content-Length"), data[:200]))
        return resp

    # Convenience verbs
    def get(self, target, headers=(), **kw):
        return self.request("GET", target, headers, **kw)

    def head(self, target, headers=()):
        return self.request("HEAD", target, headers)

    def delete(self, target, headers=()):
        return self.request("DELETE", target, headers)


def add_query(target, **params):
    """Append query parameters to a Location, keeping the ones it has."""
    q = urllib.parse.urlencode(params)
    return target + ("&" if "?" in target else "?") + q


# --------------------------------------------------------------------------
# Response checks


def expect_status(resp, *statuses):
    if resp.status not in statuses:
        raise Failure("%s: expected %s, body %r" % (
            resp, "/".join(map(str, statuses)), resp.body[:300]))


def check_error_body(resp, strict_codes=True):
    """The spec's error format: {"errors":[{"code","message","detail"}]},
    served as JSON. Returns the list of codes."""
    if resp.method == "HEAD":
        return []
    ct = resp.h("Content-Type") or ""
    expect(ct.split(";")[0].strip().lower() == "application/json",
           "%s: error Content-Type is %r, not application/json; body %r"
           % (resp, ct, resp.body[:200]))
    doc = resp.json()
    expect(isinstance(doc, dict) and isinstance(doc.get("errors"), list)
           and doc["errors"], "%s: no \"errors\" list in %r" % (resp, doc))
    codes = []
    for e in doc["errors"]:
        expect(isinstance(e, dict), "%s: error entry %r is not an object"
               % (resp, e))
        code = e.get("code")
        expect(isinstance(code, str) and re.fullmatch(r"[A-Z_]+", code),
               "%s: code %r is not uppercase letters and underscores"
               % (resp, code))
        if strict_codes:
            expect(code in SPEC_ERROR_CODES or code in LEGACY_ERROR_CODES,
                   "%s: code %r is not in the spec's table" % (resp, code))
        expect("message" not in e or isinstance(e["message"], str),
               "%s: message %r is not a string" % (resp, e.get("message")))
        codes.append(code)
    return codes


def expect_error(resp, status, *codes):
    """Status (an int or a tuple of ints) and, on GET-like responses with a
    body, one of the given codes in a spec-format body."""
    statuses = status if isinstance(status, tuple) else (status,)
    expect_status(resp, *statuses)
    if resp.method == "HEAD":
        expect(resp.body == b"", "%s: HEAD response has a body" % resp)
        return
    got = check_error_body(resp)
    if codes:
        expect(any(c in got for c in codes),
               "%s: expected code %s, got %s" % (resp, "/".join(codes), got))


def expect_header(resp, name, value=None, pattern=None):
    v = resp.h(name)
    expect(v is not None, "%s: no %s header" % (resp, name))
    if value is not None:
        expect(v == value, "%s: %s is %r, expected %r" % (resp, name, v, value))
    if pattern is not None:
        expect(re.fullmatch(pattern, v),
               "%s: %s is %r, expected to match %r" % (resp, name, v, pattern))
    return v


def media_type_of(resp):
    return (resp.h("Content-Type") or "").split(";")[0].strip()


def check_upload_headers(resp, size):
    """Every 202/204 on an upload carries Location, Range: 0-<last byte> and
    Docker-Upload-UUID. For an empty session the last byte is
    written 0 (0-0), as distribution and the clients built on it do."""
    loc = expect_header(resp, "Location")
    uid = expect_header(resp, "Docker-Upload-UUID")
    expect(uid.strip() != "", "%s: empty Docker-Upload-UUID" % resp)
    expect(uid in urllib.parse.unquote(loc),
           "%s: Location %r does not contain the session id %r"
           % (resp, loc, uid))
    end = size - 1 if size > 0 else 0
    expect_header(resp, "Range", "0-%d" % end)
    return loc


# --------------------------------------------------------------------------
# Content helpers


class Image:
    """A pushed image manifest and its parts."""

    def __init__(self, repo, body, media_type, config, layers):
        self.repo = repo
        self.body = body
        self.digest = sha(body)
        self.media_type = media_type
        self.config = config      # descriptor dict
        self.layers = layers      # descriptor dicts
        self.size = len(body)

    def descriptor(self, **extra):
        d = {"mediaType": self.media_type, "digest": self.digest,
             "size": self.size}
        d.update(extra)
        return d


def descriptor(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": sha(data), "size": len(data)}
    d.update(extra)
    return d


def fake_layer(n=256):
    """A small but real gzip'd tar-like payload; registries never look in."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as z:
        z.write(os.urandom(n))
    return buf.getvalue()


def image_config(layers_plain):
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers",
                   "diff_ids": [sha(p) for p in layers_plain]},
    }, sort_keys=True).encode()


class T:
    """What a test gets: the registry, the target, fresh names, pushes."""

    def __init__(self, reg, target, run_id):
        self.reg = reg
        self.target = target
        self.run_id = run_id
        self.proxy_scheme = ""  # --proxy-scheme

    def repo(self, hint="r"):
        """A fresh repository name: wharf-api-<run>/<hint>-<random>."""
        return "wharf-api-%s/%s-%s" % (self.run_id, hint, rand_hex(8))

    # blobs
    def start_upload(self, repo, query=""):
        r = self.reg.request("POST", "/v2/%s/blobs/uploads/%s" % (repo, query))
        expect_status(r, 202)
        check_upload_headers(r, 0)
        return r.h("Location")

    def push_blob(self, repo, data, algo="sha256"):
        """POST then PUT: the portable way every registry supports."""
        loc = self.start_upload(repo)
        d = sha(data, algo)
        r = self.reg.request("PUT", add_query(loc, digest=d), body=data,
                             headers={"Content-Type": "application/octet-stream"})
        expect_status(r, 201)
        return d

    # manifests
    def put_manifest(self, repo, ref, body, media_type):
        return self.reg.request("PUT", "/v2/%s/manifests/%s" % (repo, ref),
                                body=body, headers={"Content-Type": media_type})

    def push_manifest(self, repo, ref, body, media_type):
        r = self.put_manifest(repo, ref, body, media_type)
        expect_status(r, 201)
        expect_header(r, "Docker-Content-Digest", sha(body))
        return r

    def push_image(self, repo, tag=None, docker=False, layers=1,
                   annotations=None, config_media_type=None, config=None,
                   artifact_type=None, subject=None, indent=2, push=True):
        plains = [os.urandom(64) for _ in range(layers)]
        layer_blobs = [fake_layer() for _ in plains]
        cfg = config if config is not None else image_config(plains)
        if docker:
            mt, cmt, lmt = MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG, MT_DOCKER_LAYER
        else:
            mt, cmt, lmt = MT_OCI_MANIFEST, MT_OCI_CONFIG, MT_OCI_LAYER
        if config_media_type:
            cmt = config_media_type
        self.push_blob(repo, cfg)
        for b in layer_blobs:
            self.push_blob(repo, b)
        m = {"schemaVersion": 2, "mediaType": mt}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["config"] = descriptor(cmt, cfg)
        m["layers"] = [descriptor(lmt, b) for b in layer_blobs]
        if subject:
            m["subject"] = subject
        if annotations:
            m["annotations"] = annotations
        body = json.dumps(m, indent=indent).encode()
        img = Image(repo, body, mt, m["config"], m["layers"])
        if push:
            self.push_manifest(repo, tag or img.digest, body, mt)
        return img

    def push_index(self, repo, children, tag=None, docker=False,
                   subject=None, artifact_type=None, annotations=None):
        mt = MT_DOCKER_LIST if docker else MT_OCI_INDEX
        plats = [("amd64", "linux"), ("arm64", "linux"), ("s390x", "linux")]
        m = {"schemaVersion": 2, "mediaType": mt}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["manifests"] = [
            c.descriptor(platform={"architecture": plats[i % 3][0],
                                   "os": plats[i % 3][1]})
            for i, c in enumerate(children)]
        if subject:
            m["subject"] = subject
        if annotations:
            m["annotations"] = annotations
        body = json.dumps(m, indent=2).encode()
        img = Image(repo, body, mt, None, [])
        self.push_manifest(repo, tag or img.digest, body, mt)
        return img


# --------------------------------------------------------------------------
# Test registry

TESTS = []


class Test:
    def __init__(self, fn, only, differs):
        self.fn = fn
        self.name = fn.__name__
        self.only = only
        self.differs = differs or {}


def test(only=None, differs=None):
    """only: the targets the test applies to (others SKIP it).
    differs: {target: Difference} where that target is known to differ."""
    def wrap(fn):
        TESTS.append(Test(fn, only, differs))
        return fn
    return wrap


DIST = "distribution"


def blob_url(repo, digest):
    return "/v2/%s/blobs/%s" % (repo, digest)


def manifest_url(repo, ref):
    return "/v2/%s/manifests/%s" % (repo, ref)


def check_blob(reg, repo, digest, data):
    r = reg.get(blob_url(repo, digest))
    expect_status(r, 200)
    expect(r.body == data, "%s: body differs from what was pushed" % r)
    dcd = r.h("Docker-Content-Digest")
    if dcd is not None:
        algo = dcd.split(":")[0]
        expect(algo in ("sha256", "sha512") and dcd == sha(data, algo),
               "%s: Docker-Content-Digest %r does not match the body"
               % (r, dcd))
    return r


# ==========================================================================
# Base

@test()
def base_api_version_check(t):
    r = t.reg.get("/v2/")
    expect_status(r, 200)
    expect_header(r, "Docker-Distribution-API-Version", "registry/2.0")


# ==========================================================================
# Blob pull

@test()
def blob_get_and_head(t):
    repo = t.repo()
    data = os.urandom(1000)
    d = t.push_blob(repo, data)
    r = check_blob(t.reg, repo, d, data)
    expect_header(r, "Docker-Content-Digest", d)
    expect_header(r, "Content-Length", str(len(data)))
    r = t.reg.head(blob_url(repo, d))
    expect_status(r, 200)
    expect(r.body == b"", "%s: HEAD has a body" % r)
    expect_header(r, "Docker-Content-Digest", d)
    expect_header(r, "Content-Length", str(len(data)))


@test()
def blob_unknown_is_blob_unknown(t):
    repo = t.repo()
    t.push_blob(repo, b"something")   # the repository exists
    d = sha(os.urandom(16))
    expect_error(t.reg.get(blob_url(repo, d)), 404, "BLOB_UNKNOWN")
    expect_error(t.reg.head(blob_url(repo, d)), 404)


@test()
def blob_range_206(t):
    repo = t.repo()
    data = os.urandom(100)
    d = t.push_blob(repo, data)
    for rng, lo, hi in (("bytes=2-5", 2, 5), ("bytes=90-", 90, 99),
                        ("bytes=-10", 90, 99), ("bytes=95-200", 95, 99)):
        r = t.reg.get(blob_url(repo, d), headers={"Range": rng})
        expect_status(r, 206)
        expect(r.body == data[lo:hi + 1], "%s (%s): wrong bytes" % (r, rng))
        expect_header(r, "Content-Range", "bytes %d-%d/100" % (lo, hi))
        expect_header(r, "Content-Length", str(hi - lo + 1))


@test()
def blob_range_unsatisfiable_416(t):
    repo = t.repo()
    data = os.urandom(100)
    d = t.push_blob(repo, data)
    r = t.reg.get(blob_url(repo, d), headers={"Range": "bytes=200-300"},
                  tolerate_truncation=True)
    expect_status(r, 416)
    cr = r.h("Content-Range")
    expect(cr is None or cr == "bytes */100",
           "%s: Content-Range %r, expected bytes */100" % (r, cr))


@test()
def blob_range_last_before_first_416(t):
    """spec.md: "A registry SHOULD support the `Range` request header in
    accordance with RFC 9110 (section 14)"; the spec's conformance suite
    (TestBlobAPIs, "range 500-0") expects 416 and reads a 200 as "range
    request unsupported"."""
    repo = t.repo()
    d = t.push_blob(repo, os.urandom(2048))
    r = t.reg.get(blob_url(repo, d), headers={"Range": "bytes=500-0"},
                  tolerate_truncation=True)
    expect_status(r, 416)


@test(differs={DIST: D_RANGE_416_BODY})
def blob_range_416_error_body(t):
    repo = t.repo()
    d = t.push_blob(repo, os.urandom(100))
    r = t.reg.get(blob_url(repo, d), headers={"Range": "bytes=200-300"})
    expect_status(r, 416)
    check_error_body(r)


# ==========================================================================
# Blob push: monolithic, POST then PUT, chunked, streamed

@test(differs={DIST: D_MONOLITHIC_POST})
def push_monolithic_post(t):
    repo = t.repo()
    data = os.urandom(3000)
    d = sha(data)
    # digest unescaped here (escaped in POST-then-PUT): both must decode
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d),
                      body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    loc = expect_header(r, "Location")
    expect_header(r, "Docker-Content-Digest", d)
    g = t.reg.get(loc)
    expect_status(g, 200)
    expect(g.body == data, "%s: blob at Location differs" % g)
    check_blob(t.reg, repo, d, data)


@test(differs={DIST: D_MONOLITHIC_POST})
def push_monolithic_post_digest_mismatch(t):
    repo = t.repo()
    t.push_blob(repo, b"repository exists")
    data = os.urandom(500)
    claimed = sha(os.urandom(8))
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s"
                      % (repo, claimed), body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400, "DIGEST_INVALID")
    expect_error(t.reg.head(blob_url(repo, claimed)), 404)
    expect_error(t.reg.head(blob_url(repo, sha(data))), 404)


@test(differs={DIST: D_MONOLITHIC_POST})
def push_monolithic_post_sha512(t):
    repo = t.repo()
    data = os.urandom(700)
    d = sha(data, "sha512")
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d),
                      body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    check_blob(t.reg, repo, d, data)


@test()
def push_post_then_put(t):
    repo = t.repo()
    data = os.urandom(2048)
    d = sha(data)
    loc = t.start_upload(repo)
    r = t.reg.request("PUT", add_query(loc, digest=d), body=data,
                      headers={"Content-Type": "application/octet-stream"})
    check_created(t, r, repo, d, data)


@test()
def push_chunked_patch(t):
    repo = t.repo()
    data = os.urandom(100)
    loc = t.start_upload(repo)
    # status of a fresh session: 204 with Location, Range, Docker-Upload-UUID
    s = t.reg.get(loc)
    expect_status(s, 204)
    loc = check_upload_headers(s, 0)
    r = t.reg.request("PATCH", loc, body=data[:40], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-39"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 40)
    s = t.reg.get(loc)
    expect_status(s, 204)
    loc = check_upload_headers(s, 40)
    r = t.reg.request("PATCH", loc, body=data[40:], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "40-99"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 100)
    s = t.reg.get(loc)
    expect_status(s, 204)
    loc = check_upload_headers(s, 100)
    # close with an empty body
    r = t.reg.request("PUT", add_query(loc, digest=sha(data)))
    expect_status(r, 201)
    expect_header(r, "Location")
    expect_header(r, "Docker-Content-Digest", sha(data))
    check_blob(t.reg, repo, sha(data), data)


@test(differs={DIST: D_CHUNK_ORDER})
def push_chunk_out_of_order_416(t):
    repo = t.repo()
    data = os.urandom(100)
    loc = t.start_upload(repo)
    r = t.reg.request("PATCH", loc, body=data[:40], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-39"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 40)
    # a gap
    r = t.reg.request("PATCH", loc, body=data[60:], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "60-99"})
    expect_status(r, 416)
    check_error_body(r)
    # a retry of the previous chunk
    r = t.reg.request("PATCH", loc, body=data[:40], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-39"})
    expect_status(r, 416)
    s = t.reg.get(loc)
    expect_status(s, 204)
    loc = check_upload_headers(s, 40)
    r = t.reg.request("PATCH", loc, body=data[40:], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "40-99"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 100)
    r = t.reg.request("PUT", add_query(loc, digest=sha(data)))
    expect_status(r, 201)
    check_blob(t.reg, repo, sha(data), data)


@test(differs={DIST: D_SIZE_INVALID})
def push_chunk_range_length_mismatch_size_invalid(t):
    repo = t.repo()
    loc = t.start_upload(repo)
    r = t.reg.request("PATCH", loc, body=b"12345", headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-9"})
    expect_error(r, 400, "SIZE_INVALID")


@test()
def push_streamed_patch_chunked_encoding(t):
    repo = t.repo()
    data = os.urandom(70000)
    loc = t.start_upload(repo)
    # no Content-Length, no Content-Range: Transfer-Encoding: chunked
    r = t.reg.request("PATCH", loc, chunks=[data[:1000], data[1000:40000]],
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 40000)
    r = t.reg.request("PATCH", loc, chunks=[data[40000:50000], data[50000:]],
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 202)
    loc = check_upload_headers(r, len(data))
    r = t.reg.request("PUT", add_query(loc, digest=sha(data)))
    expect_status(r, 201)
    check_blob(t.reg, repo, sha(data), data)


@test()
def push_put_with_final_chunk(t):
    repo = t.repo()
    data = os.urandom(64)
    loc = t.start_upload(repo)
    r = t.reg.request("PATCH", loc, body=data[:30], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-29"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 30)
    r = t.reg.request("PUT", add_query(loc, digest=sha(data)), body=data[30:],
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Range": "30-63"})
    expect_status(r, 201)
    check_blob(t.reg, repo, sha(data), data)


@test()
def push_sha512_chunked(t):
    repo = t.repo()
    data = os.urandom(5000)
    d = sha(data, "sha512")
    loc = t.start_upload(repo)
    r = t.reg.request("PATCH", loc, body=data[:2000], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-1999"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 2000)
    r = t.reg.request("PUT", add_query(loc, digest=d), body=data[2000:],
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    check_blob(t.reg, repo, d, data)
    r = t.reg.head(blob_url(repo, d))
    expect_status(r, 200)
    expect_header(r, "Content-Length", str(len(data)))


@test()
def push_digest_mismatch_leaves_nothing(t):
    for algo in ("sha256", "sha512"):
        repo = t.repo()
        t.push_blob(repo, b"repository exists")
        data = os.urandom(300)
        claimed = sha(os.urandom(8), algo)
        loc = t.start_upload(repo)
        r = t.reg.request("PATCH", loc, body=data[:100], headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": "0-99"})
        expect_status(r, 202)
        loc = check_upload_headers(r, 100)
        r = t.reg.request("PUT", add_query(loc, digest=claimed),
                          body=data[100:],
                          headers={"Content-Type": "application/octet-stream"})
        expect_error(r, 400, "DIGEST_INVALID")
        for d in (claimed, sha(data, algo), sha(data)):
            expect_error(t.reg.head(blob_url(repo, d)), 404)
            expect_error(t.reg.get(blob_url(repo, d)), 404, "BLOB_UNKNOWN")
        # and the session is gone
        expect_error(t.reg.get(loc), 404)


@test()
def push_put_without_digest(t):
    repo = t.repo()
    loc = t.start_upload(repo)
    r = t.reg.request("PUT", loc, body=b"abc",
                      headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")


@test()
def push_put_with_malformed_digest(t):
    repo = t.repo()
    for bad in ("sha256:zzz", "sha256:abc", "nonsense"):
        loc = t.start_upload(repo)
        r = t.reg.request("PUT", add_query(loc, digest=bad), body=b"abc",
                          headers={"Content-Type": "application/octet-stream"})
        expect_error(r, 400, "DIGEST_INVALID")


@test()
def upload_cancel_with_delete(t):
    repo = t.repo()
    loc = t.start_upload(repo)
    r = t.reg.request("PATCH", loc, body=b"0123456789", headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-9"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 10)
    r = t.reg.delete(loc)
    expect_status(r, 204)
    expect_error(t.reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.request("PATCH", loc, body=b"x", headers={
        "Content-Type": "application/octet-stream"}), 404,
        "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.request("PUT", add_query(
        loc, digest=sha(b"0123456789"))), 404, "BLOB_UPLOAD_UNKNOWN")


@test(differs={DIST: D_UPLOAD_UNKNOWN})
def upload_unknown_session(t):
    repo = t.repo()
    t.push_blob(repo, b"repository exists")
    u = "/v2/%s/blobs/uploads/%s" % (repo, uuid.uuid4())
    expect_error(t.reg.get(u), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.request("PATCH", u, body=b"x", headers={
        "Content-Type": "application/octet-stream"}), 404,
        "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.request("PUT", add_query(u, digest=sha(b"x")),
                               body=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.delete(u), 404, "BLOB_UPLOAD_UNKNOWN")


@test(differs={DIST: D_UPLOAD_UNKNOWN})
def upload_session_belongs_to_its_repository(t):
    a, b = t.repo("a"), t.repo("b")
    t.push_blob(b, b"repository exists")
    loc = t.start_upload(a)
    u = urllib.parse.urlsplit(loc)
    prefix = "/v2/%s/blobs/uploads/" % a
    expect(u.path.startswith(prefix),
           "upload Location %r is not under %s" % (loc, prefix))
    other = "/v2/%s/blobs/uploads/%s" % (b, u.path[len(prefix):]) + (
        "?" + u.query if u.query else "")
    expect_error(t.reg.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(t.reg.request("PATCH", other, body=b"x", headers={
        "Content-Type": "application/octet-stream"}), 404,
        "BLOB_UPLOAD_UNKNOWN")
    # the session itself is untouched
    expect_status(t.reg.get(loc), 204)


@test()
def upload_location_honours_forwarded_headers(t):
    # Behind a load balancer that sets X-Forwarded-Proto itself (nginx's
    # $scheme), the proto is the balancer's; the forwarded host still counts.
    scheme = t.proxy_scheme or "https"
    repo = t.repo()
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/" % repo, headers={
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "registry.example.com:8443"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 0)
    expect(loc.startswith("/") or
           loc.startswith(scheme + "://registry.example.com:8443/"),
           "%s: Location %r ignores X-Forwarded-Proto/Host" % (r, loc))
    # the session works through the path of that Location
    data = os.urandom(10)
    r = t.reg.request("PUT", add_query(loc, digest=sha(data)), body=data,
                      headers={"X-Forwarded-Proto": "https",
                               "X-Forwarded-Host": "registry.example.com:8443",
                               "Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    blob_loc = expect_header(r, "Location")
    expect(blob_loc.startswith("/") or
           blob_loc.startswith(scheme + "://registry.example.com:8443/"),
           "%s: Location %r ignores X-Forwarded-Proto/Host" % (r, blob_loc))


@test()
def upload_location_honours_host(t):
    repo = t.repo()
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/" % repo,
                      headers={"Host": "alt.example:1234"})
    expect_status(r, 202)
    loc = check_upload_headers(r, 0)
    expect(loc.startswith("/") or loc.startswith("http://alt.example:1234/"),
           "%s: Location %r ignores the Host header" % (r, loc))


# ==========================================================================
# Cross-repository mount and repository isolation

@test()
def blob_repository_isolation(t):
    a, b = t.repo("a"), t.repo("b")
    data = os.urandom(200)
    d = t.push_blob(a, data)
    t.push_blob(b, b"repository exists")
    expect_error(t.reg.get(blob_url(b, d)), 404, "BLOB_UNKNOWN")
    expect_error(t.reg.head(blob_url(b, d)), 404)
    check_blob(t.reg, a, d, data)


def check_created(t, r, repo, d, data):
    """A 201 for blob d (pushed or mounted): Location and digest headers, and
    the blob served there and in repo is exactly data."""
    expect_status(r, 201)
    loc = expect_header(r, "Location")
    expect_header(r, "Docker-Content-Digest", d)
    g = t.reg.get(loc)
    expect_status(g, 200)
    expect(g.body == data, "%s: blob at Location differs" % g)
    check_blob(t.reg, repo, d, data)


@test()
def mount_unescaped(t):
    a, b = t.repo("a"), t.repo("b")
    data = os.urandom(300)
    d = t.push_blob(a, data)
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                      % (b, d, a))
    check_created(t, r, b, d, data)


@test()
def mount_escaped(t):
    a, b = t.repo("a"), t.repo("b")
    data = os.urandom(300)
    d = t.push_blob(a, data)
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?from=%s&mount=%s" % (
        b, urllib.parse.quote(a, safe=""), urllib.parse.quote(d, safe="")))
    expect("%2F" in r.target and "%3A" in r.target, "query not escaped")
    check_created(t, r, b, d, data)


@test()
def mount_falls_back_to_upload(t):
    a, b, c = t.repo("a"), t.repo("b"), t.repo("c")
    data = os.urandom(300)
    d = t.push_blob(a, data)
    t.push_blob(c, b"repository exists")
    # the blob is not in `from`
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                      % (b, d, c))
    expect_status(r, 202)
    loc = check_upload_headers(r, 0)
    expect_error(t.reg.head(blob_url(b, d)), 404)
    r = t.reg.request("PUT", add_query(loc, digest=d), body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    check_blob(t.reg, b, d, data)
    # a digest nobody has
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                      % (b, sha(os.urandom(8)), a))
    expect_status(r, 202)
    check_upload_headers(r, 0)


@test(differs={DIST: D_MOUNT_NO_FROM})
def mount_without_from_known_blob(t):
    repo = t.repo()
    data = os.urandom(100)
    d = t.push_blob(repo, data)
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s" % (repo, d))
    check_created(t, r, repo, d, data)


@test()
def mount_without_from_other_repository(t):
    """Either outcome is allowed ("MAY cross-mount the blob if it can be
    found"), but it must be a consistent one."""
    a, b = t.repo("a"), t.repo("b")
    data = os.urandom(100)
    d = t.push_blob(a, data)
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s" % (b, d))
    expect_status(r, 201, 202)
    if r.status == 201:
        check_created(t, r, b, d, data)
    else:
        check_upload_headers(r, 0)
        expect_error(t.reg.head(blob_url(b, d)), 404)


# ==========================================================================
# Manifests: push and pull of every kind

def check_manifest(t, repo, ref, body, media_type, accept=None):
    headers = [("Accept", accept or media_type)]
    r = t.reg.get(manifest_url(repo, ref), headers=headers)
    expect_status(r, 200)
    expect(r.body == body, "%s: manifest bytes differ from what was pushed"
           % r)
    expect(media_type_of(r) == media_type,
           "%s: Content-Type %r, stored %r" % (r, r.h("Content-Type"),
                                               media_type))
    expect_header(r, "Docker-Content-Digest", sha(body))
    expect_header(r, "Content-Length", str(len(body)))
    h = t.reg.head(manifest_url(repo, ref), headers=headers)
    expect_status(h, 200)
    expect(h.body == b"", "%s: HEAD has a body" % h)
    expect(media_type_of(h) == media_type,
           "%s: Content-Type %r, stored %r" % (h, h.h("Content-Type"),
                                               media_type))
    expect_header(h, "Docker-Content-Digest", sha(body))
    expect_header(h, "Content-Length", str(len(body)))


@test()
def manifest_oci_image(t):
    repo = t.repo()
    img = t.push_image(repo, "v1", layers=2, push=False)
    r = t.put_manifest(repo, "v1", img.body, img.media_type)
    expect_status(r, 201)
    expect_header(r, "Location")
    expect_header(r, "Docker-Content-Digest", img.digest)
    check_manifest(t, repo, "v1", img.body, img.media_type)
    check_manifest(t, repo, img.digest, img.body, img.media_type)
    # the Location is a pullable manifest URL
    g = t.reg.get(r.h("Location"), headers={"Accept": img.media_type})
    expect_status(g, 200)
    expect(g.body == img.body, "%s: manifest at Location differs" % g)


@test()
def manifest_oci_index(t):
    repo = t.repo()
    a, b = t.push_image(repo), t.push_image(repo)
    idx = t.push_index(repo, [a, b], tag="multi")
    check_manifest(t, repo, "multi", idx.body, MT_OCI_INDEX)
    check_manifest(t, repo, idx.digest, idx.body, MT_OCI_INDEX)


@test()
def manifest_docker_schema2(t):
    repo = t.repo()
    img = t.push_image(repo, "v2s2", docker=True)
    check_manifest(t, repo, "v2s2", img.body, MT_DOCKER_MANIFEST)
    check_manifest(t, repo, img.digest, img.body, MT_DOCKER_MANIFEST)


@test()
def manifest_docker_manifest_list(t):
    repo = t.repo()
    a = t.push_image(repo, docker=True)
    b = t.push_image(repo, docker=True)
    lst = t.push_index(repo, [a, b], tag="list", docker=True)
    check_manifest(t, repo, "list", lst.body, MT_DOCKER_LIST)
    check_manifest(t, repo, lst.digest, lst.body, MT_DOCKER_LIST)


@test()
def manifest_artifact_with_artifact_type(t):
    repo = t.repo()
    t.push_blob(repo, b"{}")
    payload = b'{"sbom": true}'
    t.push_blob(repo, payload)
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "artifactType": "application/vnd.example.sbom.v1+json",
         "config": descriptor(MT_OCI_EMPTY, b"{}"),
         "layers": [descriptor("application/vnd.example.sbom.v1+json",
                               payload)],
         "annotations": {"org.example.kind": "sbom"}}
    body = json.dumps(m).encode()
    t.push_manifest(repo, "sbom", body, MT_OCI_MANIFEST)
    check_manifest(t, repo, "sbom", body, MT_OCI_MANIFEST)


@test()
def manifest_artifact_custom_config_media_type(t):
    repo = t.repo()
    cfg = b'{"chart": "example", "version": "1.0.0"}'
    layer = os.urandom(100)
    t.push_blob(repo, cfg)
    t.push_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "config": descriptor("application/vnd.cncf.helm.config.v1+json",
                              cfg),
         "layers": [descriptor(
             "application/vnd.cncf.helm.chart.content.v1.tar+gzip", layer)]}
    body = json.dumps(m).encode()
    t.push_manifest(repo, "chart", body, MT_OCI_MANIFEST)
    check_manifest(t, repo, "chart", body, MT_OCI_MANIFEST)


@test()
def manifest_stored_byte_for_byte(t):
    repo = t.repo()
    cfg = image_config([b"x"])
    layer = fake_layer()
    t.push_blob(repo, cfg)
    t.push_blob(repo, layer)
    c, l_ = descriptor(MT_OCI_CONFIG, cfg), descriptor(MT_OCI_LAYER, layer)
    body = ('{\r\n\t"schemaVersion" :  2 ,\n   "mediaType":"%s",'
            '"config" : {"size":%d,  "digest":"%s","mediaType":"%s"},\n\n'
            '"layers":[ {"mediaType":"%s","digest":"%s","size":%d} ] ,'
            '"annotations":{"note":"caf\u00e9 \\u00e9 \\/ slash"}'
            '}   \n\n' % (MT_OCI_MANIFEST, c["size"], c["digest"],
                          c["mediaType"], l_["mediaType"], l_["digest"],
                          l_["size"])).encode("utf-8")
    json.loads(body)  # valid JSON, unusual whitespace
    d = sha(body)
    r = t.put_manifest(repo, "odd", body, MT_OCI_MANIFEST)
    expect_status(r, 201)
    expect_header(r, "Docker-Content-Digest", d)
    check_manifest(t, repo, "odd", body, MT_OCI_MANIFEST)
    check_manifest(t, repo, d, body, MT_OCI_MANIFEST)


@test()
def manifest_put_by_digest(t):
    repo = t.repo()
    img = t.push_image(repo, push=False)
    r = t.put_manifest(repo, img.digest, img.body, img.media_type)
    expect_status(r, 201)
    expect_header(r, "Docker-Content-Digest", img.digest)
    check_manifest(t, repo, img.digest, img.body, img.media_type)


@test()
def manifest_put_by_wrong_digest_is_digest_invalid(t):
    repo = t.repo()
    img = t.push_image(repo, push=False)
    other = sha(img.body + b" ")
    r = t.put_manifest(repo, other, img.body, img.media_type)
    expect_error(r, 400, "DIGEST_INVALID")
    expect_error(t.reg.get(manifest_url(repo, other),
                           headers={"Accept": img.media_type}), 404,
                 "MANIFEST_UNKNOWN")
    expect_error(t.reg.get(manifest_url(repo, img.digest),
                           headers={"Accept": img.media_type}), 404,
                 "MANIFEST_UNKNOWN")


@test(differs={DIST: difference(
    "invalid-reference-get",
    "GET/HEAD of a manifest reference that is neither a tag nor a digest "
    "is 400 TAG_INVALID",
    "the spec's v1.1 conformance tests (\"GET nonexistent manifest should "
    "return 404\", with the reference \".INVALID_MANIFEST_NAME\"); "
    "spec.md: \"If the manifest is not found in the repository, the "
    "response code MUST be `404 Not Found`\"")})
def manifest_invalid_reference_is_404(t):
    """GET and HEAD of `.INVALID_MANIFEST_NAME` are 404 MANIFEST_UNKNOWN; a
    PUT under it keeps TAG_INVALID."""
    repo = t.repo()
    img = t.push_image(repo, "v1")
    for method in ("GET", "HEAD"):
        r = t.reg.request(method, manifest_url(repo, ".INVALID_MANIFEST_NAME"),
                          headers={"Accept": img.media_type})
        expect_error(r, 404, "MANIFEST_UNKNOWN")
    expect_error(t.put_manifest(repo, ".INVALID_MANIFEST_NAME", img.body,
                                img.media_type), 400, "TAG_INVALID")


D_TAG_PARAM = difference(
    "manifest-tag-param",
    "`?tag=` on a manifest PUT by digest is ignored: no OCI-Tag header, no tag",
    "spec.md (main branch), Pushing Manifests: \"When pushing a manifest by "
    "digest, the registry MAY support the pushing of tags specified by "
    "addition of `tag` query parameters. If a registry supports this, it: "
    "SHOULD support pushing at least 10 tags per request. MAY return a `414 "
    "Request-URI Too Long` status if too many tags are included in the "
    "request. MUST include an `OCI-Tag` response header [...] for each "
    "accepted tag.\"")


def oci_tags(r):
    """Every tag named in the response's OCI-Tag headers (comma lists split)."""
    out = []
    for v in r.h_all("OCI-Tag"):
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


@test(differs={DIST: D_TAG_PARAM})
def manifest_put_by_digest_with_tag_params(t):
    repo = t.repo()
    img = t.push_image(repo, push=False)
    tags = ["1.2.3", "1.2", "1", "latest"] + ["t%d" % i for i in range(8)]
    q = "&".join("tag=" + x for x in tags)
    r = t.reg.request("PUT", manifest_url(repo, img.digest) + "?" + q,
                      body=img.body, headers={"Content-Type": img.media_type})
    expect_status(r, 201)
    expect_header(r, "Docker-Content-Digest", img.digest)
    expect(sorted(oci_tags(r)) == sorted(tags),
           "%s: OCI-Tag headers name %s, pushed %s" % (r, oci_tags(r), tags))
    for x in tags:
        check_manifest(t, repo, x, img.body, img.media_type)
    r = t.reg.get("/v2/%s/tags/list" % repo)
    expect(sorted(json.loads(r.body)["tags"]) == sorted(tags),
           "%s: tags/list %s" % (r, r.body))


@test(differs={DIST: D_TAG_PARAM})
def manifest_put_tag_params_invalid_or_too_many(t):
    """An invalid tag parameter is TAG_INVALID and pushes nothing; more than
    the registry takes in one request is 414 and pushes nothing."""
    repo = t.repo()
    img = t.push_image(repo, push=False)
    r = t.reg.request("PUT", manifest_url(repo, img.digest) +
                      "?tag=good&tag=.bad", body=img.body,
                      headers={"Content-Type": img.media_type})
    expect_error(r, 400, "TAG_INVALID")
    many = "&".join("tag=m%d" % i for i in range(101))
    r = t.reg.request("PUT", manifest_url(repo, img.digest) + "?" + many,
                      body=img.body, headers={"Content-Type": img.media_type})
    expect_status(r, 414)
    check_error_body(r)
    for ref in ("good", "m0", img.digest):
        expect_error(t.reg.get(manifest_url(repo, ref),
                               headers={"Accept": img.media_type}), 404,
                     "MANIFEST_UNKNOWN")


@test(differs={DIST: difference(
    "manifest-sha512-tag-param",
    "a manifest PUT under a sha512 digest with `?tag=` stores no tag",
    "spec.md (main branch), Pushing Manifests: tags for manifests under "
    "another digest algorithm are pushed with `tag` parameters; Checking if "
    "content exists: \"A successful response MUST contain the digest of "
    "the uploaded blob or manifest in the header `Docker-Content-Digest`\"")})
def manifest_sha512_pushed_with_tag_param(t):
    """A manifest under a non-canonical digest: PUT /manifests/sha512:…?tag=x;
    HEAD and GET by x then answer Docker-Content-Digest: sha512:…"""
    repo = t.repo()
    img = t.push_image(repo, push=False)
    d512 = sha(img.body, "sha512")
    r = t.reg.request("PUT", manifest_url(repo, d512) + "?tag=x512",
                      body=img.body, headers={"Content-Type": img.media_type})
    expect_status(r, 201)
    expect_header(r, "Docker-Content-Digest", d512)
    expect(oci_tags(r) == ["x512"], "%s: OCI-Tag %s" % (r, oci_tags(r)))
    for ref in ("x512", d512):
        for method in ("GET", "HEAD"):
            g = t.reg.request(method, manifest_url(repo, ref),
                              headers={"Accept": img.media_type})
            expect_status(g, 200)
            expect_header(g, "Docker-Content-Digest", d512)
            if method == "GET":
                expect(g.body == img.body, "%s: bytes differ" % g)


@test(differs={DIST: difference(
    "upload-digest-algorithm",
    "the `digest-algorithm` parameter of an upload POST is ignored (an "
    "unsupported algorithm is accepted)",
    "spec.md (main branch), Pushing a blob in chunks: \"When pushing a blob "
    "with a digest algorithm other than `sha256`, the post request SHOULD "
    "include the `digest-algorithm` parameter\"; Pushing blobs: \"if the "
    "client provided digest is invalid or uses an unsupported algorithm, the "
    "registry SHOULD respond with a response code `400 Bad Request`\"")})
def upload_digest_algorithm_param(t):
    repo = t.repo()
    data = os.urandom(5000)
    loc = t.start_upload(repo, "?digest-algorithm=sha512")
    r = t.reg.request("PUT", add_query(loc, digest=sha(data, "sha512")), body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201)
    check_blob(t.reg, repo, sha(data, "sha512"), data)
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?digest-algorithm=md5" % repo)
    expect_error(r, 400, "DIGEST_INVALID")
    # monolithic POST whose digest does not use the announced algorithm
    r = t.reg.request("POST", "/v2/%s/blobs/uploads/?digest-algorithm=sha512&digest=%s"
                      % (repo, sha(data)), body=data,
                      headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400, "DIGEST_INVALID")


def sparse_image(t, repo):
    """An image manifest whose first layer was never pushed (its config and
    second layer were), as the spec's conformance data set "sparse-image"."""
    cfg = image_config([b"a", b"b"])
    missing, present = fake_layer(), fake_layer()
    t.push_blob(repo, cfg)
    t.push_blob(repo, present)
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "config": descriptor(MT_OCI_CONFIG, cfg),
         "layers": [descriptor(MT_OCI_LAYER, missing), descriptor(MT_OCI_LAYER, present)]}
    return json.dumps(m).encode(), sha(missing), sha(present)


@test(only=("wharf", DIST))
def manifest_sparse_refused_by_default(t):
    """spec.md: "A registry MAY reject a manifest [...] with descriptors in
    other fields that reference a manifest or blob that does not exist in the
    registry. When a manifest is rejected for this reason, it MUST result in
    one or more `MANIFEST_BLOB_UNKNOWN` errors." (wharf: unless
    manifests.allow_sparse is set)"""
    repo = t.repo()
    body, missing, _ = sparse_image(t, repo)
    expect_error(t.put_manifest(repo, "s", body, MT_OCI_MANIFEST), 400,
                 "MANIFEST_BLOB_UNKNOWN")


@test(only=("wharf-sparse",))
def manifest_sparse_accepted_when_enabled(t):
    """With manifests.allow_sparse: the spec's v1.1.0 conformance data sets
    "sparse-image" and "sparse-index" push (201, by tag and by digest) and
    pull byte for byte; the missing parts stay 404."""
    repo = t.repo()
    body, missing, present = sparse_image(t, repo)
    r = t.put_manifest(repo, "img", body, MT_OCI_MANIFEST)
    expect_status(r, 201)
    check_manifest(t, repo, "img", body, MT_OCI_MANIFEST)
    expect_error(t.reg.get(blob_url(repo, missing)), 404, "BLOB_UNKNOWN")
    child = t.push_image(repo)
    ghost = sha(os.urandom(32))
    idx = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [
        child.descriptor(platform={"architecture": "amd64", "os": "linux"}),
        {"mediaType": MT_OCI_MANIFEST, "digest": ghost, "size": 500,
         "platform": {"architecture": "arm64", "os": "linux"}}]}
    ib = json.dumps(idx).encode()
    expect_status(t.put_manifest(repo, sha(ib), ib, MT_OCI_INDEX), 201)
    expect_status(t.put_manifest(repo, "idx", ib, MT_OCI_INDEX), 201)
    check_manifest(t, repo, "idx", ib, MT_OCI_INDEX)
    expect_error(t.reg.get(manifest_url(repo, ghost),
                           headers={"Accept": MT_OCI_MANIFEST}), 404, "MANIFEST_UNKNOWN")


@test(differs={DIST: difference(
    "platform-values",
    "index platform values are not checked (a control character or a 300-"
    "character os is stored)",
    "image-index.md: `platform` `architecture` and `os` are strings naming "
    "a CPU architecture and an operating system (wharf's rule: values no real "
    "client sends broke shell quoting, tag listings and squashes)")})
def index_platform_values_checked(t):
    """Platform values no real client sends (non-strings, over-long values,
    control characters) are MANIFEST_INVALID naming the field; what clients
    do send is kept, BuildKit's unknown/unknown attestation entries and any
    printable string included. (image-index.md: platform `architecture` and
    `os` "string"; a numeric os made tag listings and squashes fail.)"""
    repo = t.repo()
    child = t.push_image(repo)

    def idx(platform):
        m = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
             "manifests": [child.descriptor(platform={"architecture": "amd64", "os": "linux"}),
                           child.descriptor(platform=platform)]}
        return json.dumps(m).encode()

    for bad, field in (({"architecture": "amd64", "os": 7}, "manifests[1].platform.os"),
                       ({"architecture": ["amd64"], "os": "linux"}, "manifests[1].platform.architecture"),
                       ({"architecture": "amd64", "os": "linux\nx"}, "manifests[1].platform.os"),
                       ({"architecture": "a" * 300, "os": "linux"}, "manifests[1].platform.architecture"),
                       ({"architecture": "amd64", "os": "linux", "os.features": "x"}, "manifests[1].platform.os.features")):
        r = t.put_manifest(repo, "bad", idx(bad), MT_OCI_INDEX)
        expect_error(r, 400, "MANIFEST_INVALID")
        if t.target == "wharf":
            expect(field in r.body.decode(), "%s: the error does not name %s: %r" % (r, field, r.body))
    for good in ({"architecture": "unknown", "os": "unknown"}, {"architecture": "amd64", "os": "it's odd; $(x)"}):
        body = idx(good)
        expect_status(t.put_manifest(repo, "good", body, MT_OCI_INDEX), 201)
        check_manifest(t, repo, "good", body, MT_OCI_INDEX)


@test()
def manifest_tag_moves(t):
    repo = t.repo()
    a = t.push_image(repo, "moving")
    b = t.push_image(repo, "moving")
    check_manifest(t, repo, "moving", b.body, b.media_type)
    check_manifest(t, repo, a.digest, a.body, a.media_type)


@test()
def manifest_several_path_components(t):
    repo = t.repo("a/b/c")
    expect(repo.count("/") >= 3, "name %r has too few components" % repo)
    img = t.push_image(repo, "deep")
    check_manifest(t, repo, "deep", img.body, img.media_type)
    r = t.reg.get("/v2/%s/tags/list" % repo)
    expect_status(r, 200)
    doc = r.json()
    expect(doc.get("name") == repo and doc.get("tags") == ["deep"],
           "%s: %r" % (r, doc))
    expect_status(t.reg.head(blob_url(repo, img.layers[0]["digest"])), 200)


@test()
def manifest_isolation(t):
    a, b = t.repo("a"), t.repo("b")
    img = t.push_image(a, "x")
    t.push_image(b, "y")
    expect_error(t.reg.get(manifest_url(b, img.digest),
                           headers={"Accept": img.media_type}), 404,
                 "MANIFEST_UNKNOWN")
    expect_error(t.reg.get(manifest_url(b, "x"),
                           headers={"Accept": img.media_type}), 404,
                 "MANIFEST_UNKNOWN")


@test()
def manifest_unknown(t):
    repo = t.repo()
    img = t.push_image(repo, "known")
    h = {"Accept": img.media_type}
    expect_error(t.reg.get(manifest_url(repo, "unknown"), headers=h), 404,
                 "MANIFEST_UNKNOWN")
    expect_error(t.reg.head(manifest_url(repo, "unknown"), headers=h), 404)
    expect_error(t.reg.get(manifest_url(repo, sha(os.urandom(8))),
                           headers=h), 404, "MANIFEST_UNKNOWN")
    # a repository nobody pushed to
    expect_error(t.reg.get(manifest_url(t.repo("never"), "latest"),
                           headers=h), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


# ==========================================================================
# Manifest validation

@test()
def manifest_missing_blob_is_manifest_blob_unknown(t):
    repo = t.repo()
    cfg = image_config([b"x"])
    t.push_blob(repo, cfg)
    layer = fake_layer()
    # the layer was never pushed
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "config": descriptor(MT_OCI_CONFIG, cfg),
         "layers": [descriptor(MT_OCI_LAYER, layer)]}
    expect_error(t.put_manifest(repo, "t", json.dumps(m).encode(),
                                MT_OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
    # the config was never pushed
    t.push_blob(repo, layer)
    m["config"] = descriptor(MT_OCI_CONFIG, image_config([b"y"]))
    expect_error(t.put_manifest(repo, "t", json.dumps(m).encode(),
                                MT_OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
    # Docker schema2 too
    dcfg = image_config([b"z"])
    m = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
         "config": descriptor(MT_DOCKER_CONFIG, dcfg),
         "layers": [descriptor(MT_DOCKER_LAYER, layer)]}
    expect_error(t.put_manifest(repo, "d", json.dumps(m).encode(),
                                MT_DOCKER_MANIFEST), 400,
                 "MANIFEST_BLOB_UNKNOWN")
    expect_error(t.reg.get(manifest_url(repo, "t"),
                           headers={"Accept": MT_OCI_MANIFEST}), 404,
                 "MANIFEST_UNKNOWN")


@test()
def manifest_blob_of_other_repository_is_unknown(t):
    a, b = t.repo("a"), t.repo("b")
    img = t.push_image(a, "x", push=False)
    t.push_image(a, "y")
    t.push_blob(b, b"repository exists")
    expect_error(t.put_manifest(b, "x", img.body, img.media_type), 400,
                 "MANIFEST_BLOB_UNKNOWN")


@test()
def manifest_index_missing_child_is_manifest_blob_unknown(t):
    repo = t.repo()
    a = t.push_image(repo)
    ghost = t.push_image(repo, push=False)   # blobs pushed, manifest not
    for mt in (MT_OCI_INDEX, MT_DOCKER_LIST):
        m = {"schemaVersion": 2, "mediaType": mt,
             "manifests": [a.descriptor(), ghost.descriptor()]}
        expect_error(t.put_manifest(repo, "idx", json.dumps(m).encode(), mt),
                     400, "MANIFEST_BLOB_UNKNOWN")


@test()
def manifest_foreign_layer_may_be_absent(t):
    repo = t.repo()
    cfg = image_config([b"x"])
    t.push_blob(repo, cfg)
    foreign = os.urandom(64)
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "config": descriptor(MT_OCI_CONFIG, cfg),
         "layers": [descriptor(MT_OCI_LAYER_NONDIST, foreign,
                               urls=["https://example.com/layer.tar.gz"])]}
    body = json.dumps(m).encode()
    t.push_manifest(repo, "oci-foreign", body, MT_OCI_MANIFEST)
    check_manifest(t, repo, "oci-foreign", body, MT_OCI_MANIFEST)
    m = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
         "config": descriptor(MT_DOCKER_CONFIG, cfg),
         "layers": [descriptor(MT_DOCKER_FOREIGN, foreign,
                               urls=["https://example.com/layer.tar.gz"])]}
    body = json.dumps(m).encode()
    t.push_manifest(repo, "docker-foreign", body, MT_DOCKER_MANIFEST)
    check_manifest(t, repo, "docker-foreign", body, MT_DOCKER_MANIFEST)


@test()
def manifest_subject_may_be_absent(t):
    repo = t.repo()
    t.push_blob(repo, b"{}")
    ghost = {"mediaType": MT_OCI_MANIFEST, "digest": sha(os.urandom(8)),
             "size": 1234}
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "artifactType": "application/vnd.example.signature.v1",
         "config": descriptor(MT_OCI_EMPTY, b"{}"),
         "layers": [descriptor(MT_OCI_EMPTY, b"{}")],
         "subject": ghost}
    body = json.dumps(m).encode()
    r = t.put_manifest(repo, sha(body), body, MT_OCI_MANIFEST)
    expect_status(r, 201)
    check_manifest(t, repo, sha(body), body, MT_OCI_MANIFEST)


@test(differs={DIST: D_OCI_SUBJECT})
def manifest_put_with_subject_answers_oci_subject(t):
    repo = t.repo()
    subject = t.push_image(repo, "base")
    t.push_blob(repo, b"{}")
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "artifactType": "application/vnd.example.signature.v1",
         "config": descriptor(MT_OCI_EMPTY, b"{}"),
         "layers": [descriptor(MT_OCI_EMPTY, b"{}")],
         "subject": subject.descriptor()}
    body = json.dumps(m).encode()
    r = t.put_manifest(repo, sha(body), body, MT_OCI_MANIFEST)
    expect_status(r, 201)
    expect_header(r, "OCI-Subject", subject.digest)
    # an index with a subject too
    idx = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
           "artifactType": "application/vnd.example.bundle.v1",
           "manifests": [subject.descriptor()],
           "subject": subject.descriptor()}
    body = json.dumps(idx).encode()
    r = t.put_manifest(repo, sha(body), body, MT_OCI_INDEX)
    expect_status(r, 201)
    expect_header(r, "OCI-Subject", subject.digest)


@test()
def manifest_content_type_differs_from_media_type(t):
    repo = t.repo()
    oci = t.push_image(repo, push=False)
    dock = t.push_image(repo, docker=True, push=False)
    for body, ct in ((oci.body, MT_DOCKER_MANIFEST), (oci.body, MT_OCI_INDEX),
                     (dock.body, MT_OCI_MANIFEST)):
        expect_error(t.put_manifest(repo, "ct", body, ct), 400,
                     "MANIFEST_INVALID")
    expect_error(t.reg.get(manifest_url(repo, "ct")), 404, "MANIFEST_UNKNOWN")


@test()
def manifest_not_json_is_manifest_invalid(t):
    repo = t.repo()
    t.push_blob(repo, b"repository exists")
    for body in (b"{not json", b"", b"[]"):
        expect_error(t.put_manifest(repo, "bad", body, MT_OCI_MANIFEST), 400,
                     "MANIFEST_INVALID")


def padded_manifest(t, repo, size):
    """A valid OCI manifest (blobs pushed) of exactly `size` bytes."""
    t.push_blob(repo, b"{}")
    m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
         "config": descriptor(MT_OCI_EMPTY, b"{}"),
         "layers": [], "annotations": {"pad": ""}}
    base = len(json.dumps(m).encode())
    m["annotations"]["pad"] = "x" * (size - base)
    body = json.dumps(m).encode()
    assert len(body) == size
    return body


@test()
def manifest_of_4_mib_is_accepted(t):
    repo = t.repo()
    body = padded_manifest(t, repo, FOUR_MIB)
    r = t.put_manifest(repo, "big", body, MT_OCI_MANIFEST)
    expect_status(r, 201)
    expect_header(r, "Docker-Content-Digest", sha(body))
    g = t.reg.head(manifest_url(repo, "big"),
                   headers={"Accept": MT_OCI_MANIFEST})
    expect_status(g, 200)
    expect_header(g, "Content-Length", str(FOUR_MIB))


@test(differs={DIST: D_MANIFEST_LIMIT})
def manifest_over_4_mib_is_413(t):
    repo = t.repo()
    body = padded_manifest(t, repo, FOUR_MIB + 1)
    r = t.put_manifest(repo, "huge", body, MT_OCI_MANIFEST)
    expect_status(r, 413)
    if r.body:
        check_error_body(r)
    expect_error(t.reg.get(manifest_url(repo, "huge"),
                           headers={"Accept": MT_OCI_MANIFEST}), 404,
                 "MANIFEST_UNKNOWN")


def schema1_body(repo, layer_digest):
    return json.dumps({
        "schemaVersion": 1, "name": repo, "tag": "old",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": layer_digest}],
        "history": [{"v1Compatibility": "{\"id\":\"%s\"}" % ("a" * 64)}],
        "signatures": [{
            "header": {"jwk": {"crv": "P-256", "kid": "X", "kty": "EC",
                               "x": "x", "y": "y"}, "alg": "ES256"},
            "signature": "c2lnbmF0dXJl", "protected": "e30"}],
    }, indent=3).encode()


@test()
def manifest_docker_schema1_refused(t):
    repo = t.repo()
    layer = os.urandom(32)
    d = t.push_blob(repo, layer)
    body = schema1_body(repo, d)
    for ct in (MT_SCHEMA1_SIGNED, MT_SCHEMA1):
        expect_error(t.put_manifest(repo, "old", body, ct), 400,
                     "MANIFEST_INVALID")


@test(differs={DIST: D_SCHEMA1_MESSAGE})
def manifest_docker_schema1_message_says_why(t):
    repo = t.repo()
    d = t.push_blob(repo, os.urandom(32))
    r = t.put_manifest(repo, "old", schema1_body(repo, d), MT_SCHEMA1_SIGNED)
    expect_error(r, 400, "MANIFEST_INVALID")
    text = " ".join(str(e.get("message", "")) + " " + json.dumps(e.get("detail"))
                    for e in r.json()["errors"])
    expect(re.search(r"schema\s*(version\s*)?1|v1\+prettyjws", text, re.I),
           "%s: the error does not say schema1 is refused: %r" % (r, text))


# ==========================================================================
# Content negotiation (GET and HEAD, by tag and by digest)

NEGOTIATION_KINDS = ("oci", "oci-index", "docker", "docker-list")
FIXTURES = {}   # read-only content shared by several tests of one run


def negotiation_fixture(t):
    if "negotiation" not in FIXTURES:
        repo = t.repo("negotiation")
        a, b = t.push_image(repo), t.push_image(repo)
        da, db = t.push_image(repo, docker=True), t.push_image(repo, docker=True)
        imgs = {"oci": a,
                "oci-index": t.push_index(repo, [a, b]),
                "docker": da,
                "docker-list": t.push_index(repo, [da, db], docker=True)}
        for kind, img in imgs.items():
            t.push_manifest(repo, kind, img.body, img.media_type)
        FIXTURES["negotiation"] = (repo, imgs)
    return FIXTURES["negotiation"]


def negotiate(t, kinds, accept_for, expect_found):
    """accept_for(img) gives the list of (name, value) headers to send."""
    repo, imgs = negotiation_fixture(t)
    for kind in kinds:
        img = imgs[kind]
        for ref in (kind, img.digest):
            for method in ("GET", "HEAD"):
                r = t.reg.request(method, manifest_url(repo, ref),
                                  headers=accept_for(img))
                what = "%s (stored %s, Accept %r)" % (
                    r, img.media_type, [v for _, v in accept_for(img)])
                if expect_found:
                    expect(r.status == 200, "%s: expected 200, body %r"
                           % (what, r.body[:200]))
                    expect(media_type_of(r) == img.media_type,
                           "%s: Content-Type %r" % (what, r.h("Content-Type")))
                    expect_header(r, "Docker-Content-Digest", img.digest)
                    expect_header(r, "Content-Length", str(img.size))
                    expect(r.body == (img.body if method == "GET" else b""),
                           "%s: body is not the stored manifest" % what)
                else:
                    expect(r.status == 404, "%s: expected 404, got %d %r"
                           % (what, r.status, r.body[:200]))
                    expect_error(r, 404, "MANIFEST_UNKNOWN")


@test(differs={DIST: D_ACCEPT_ABSENT})
def negotiate_accept_absent(t):
    negotiate(t, NEGOTIATION_KINDS, lambda img: [], True)


@test(differs={DIST: D_ACCEPT_STAR})
def negotiate_accept_any(t):
    negotiate(t, NEGOTIATION_KINDS, lambda img: [("Accept", "*/*")], True)


@test()
def negotiate_accept_separate_headers(t):
    negotiate(t, NEGOTIATION_KINDS, lambda img: [
        ("Accept", "application/vnd.example.other.v1+json"),
        ("Accept", img.media_type),
        ("Accept", "application/vnd.example.another.v1+json")], True)


@test()
def negotiate_accept_comma_joined(t):
    negotiate(t, NEGOTIATION_KINDS, lambda img: [(
        "Accept", "application/vnd.example.other.v1+json, %s,"
        "application/vnd.example.another.v1+json" % img.media_type)], True)


NOT_LISTED = {
    "oci": [MT_DOCKER_MANIFEST, MT_DOCKER_LIST],
    "oci-index": [MT_OCI_MANIFEST, MT_DOCKER_MANIFEST],
    "docker": [MT_OCI_MANIFEST, MT_OCI_INDEX],
    "docker-list": [MT_DOCKER_MANIFEST, MT_OCI_MANIFEST],
}


def not_listed_accept(img):
    kind = {MT_OCI_MANIFEST: "oci", MT_OCI_INDEX: "oci-index",
            MT_DOCKER_MANIFEST: "docker", MT_DOCKER_LIST: "docker-list"}
    return [("Accept", v) for v in NOT_LISTED[kind[img.media_type]]]


@test()
def negotiate_not_listed_oci_is_manifest_unknown(t):
    negotiate(t, ("oci", "oci-index"), not_listed_accept, False)


@test(differs={DIST: D_NEGOTIATE_DOCKER})
def negotiate_not_listed_docker_is_manifest_unknown(t):
    negotiate(t, ("docker", "docker-list"), not_listed_accept, False)


# ==========================================================================
# Discovery: tags/list and _catalog

def tags_of(t, repo, query=""):
    r = t.reg.get("/v2/%s/tags/list%s" % (repo, query))
    expect_status(r, 200)
    doc = r.json()
    expect(doc.get("name") == repo, "%s: name %r" % (r, doc.get("name")))
    tags = doc.get("tags")
    expect(isinstance(tags, list) or (tags is None and query),
           "%s: tags is %r" % (r, tags))
    return r, tags or []


TAG_SET = ["b", "A", "a", "B1", "_x", "1", "a.b", "a-b", "a_b", "zz", "Z9"]


def tagged_repo(t):
    repo = t.repo("tags")
    img = t.push_image(repo, "first")
    for tag in TAG_SET:
        if tag != "first":
            t.push_manifest(repo, tag, img.body, img.media_type)
    return repo, sorted(TAG_SET + ["first"], key=lambda s: s.encode())


@test(differs={DIST: D_TAGS_ORDER})
def tags_list_in_byte_order(t):
    repo, want = tagged_repo(t)
    _, tags = tags_of(t, repo)
    expect(tags == want, "tags %r, expected byte order %r" % (tags, want))


def follow_links(t, first, key, n):
    """Yield (response, entries) page by page, following Link, checking
    each page's size and Link syntax."""
    target, pages = first, 0
    while target:
        pages += 1
        expect(pages < 100, "more than 100 pages: Link loops?")
        r = t.reg.get(target)
        expect_status(r, 200)
        items = r.json().get(key) or []
        link = r.h("Link")
        expect(len(items) <= n, "%s: %d entries for n=%d" % (r, len(items), n))
        if link:
            expect(items, "%s: empty page with a Link" % r)
            m = re.fullmatch(r'\s*<([^>]+)>\s*;\s*rel="?next"?\s*', link)
            expect(m, "%s: Link %r is not <url>; rel=\"next\"" % (r, link))
            target = m.group(1)
        else:
            target = None
        yield r, items


@test(differs={DIST: D_TAGS_PAGING})
def tags_list_paging(t):
    repo, want = tagged_repo(t)
    # n alone: the first n, and a Link to the rest
    r, tags = tags_of(t, repo, "?n=3")
    expect(tags == want[:3], "%s: %r, expected %r" % (r, tags, want[:3]))
    expect(r.h("Link"), "%s: no Link header while more tags exist" % r)
    # following Link pages through all of them, in order
    got = []
    for r, items in follow_links(t, "/v2/%s/tags/list?n=4" % repo, "tags", 4):
        got.extend(items)
    expect(got == want, "paged tags %r, expected %r" % (got, want))
    # last: strictly after it
    r, tags = tags_of(t, repo, "?n=2&last=%s" % want[3])
    expect(tags == want[4:6], "%s: %r, expected %r" % (r, tags, want[4:6]))
    r, tags = tags_of(t, repo, "?last=%s" % want[-2])
    expect(tags == want[-1:], "%s: %r, expected %r" % (r, tags, want[-1:]))
    # n=0: an empty list and no Link
    r, tags = tags_of(t, repo, "?n=0")
    expect(tags == [], "%s: n=0 gave %r" % (r, tags))
    expect(r.h("Link") is None, "%s: n=0 has a Link" % r)
    # the last page has no Link
    r, tags = tags_of(t, repo, "?n=%d" % len(want))
    expect(tags == want and r.h("Link") is None,
           "%s: full page %r, Link %r" % (r, tags, r.h("Link")))


@test()
def tags_list_unknown_repository(t):
    expect_error(t.reg.get("/v2/%s/tags/list" % t.repo("never")), 404,
                 "NAME_UNKNOWN")


def catalog_repos(t):
    """Repositories whose names differ where byte order and a tree walk
    disagree: '-' < '.' < '/' < '_' < letters."""
    prefix = "wharf-api-%s-catalog" % t.run_id
    names = [prefix + s for s in ("/ab", "/a_b", "/a/b", "/a.b", "/a-b",
                                  "/a", "/a0")]
    for n in names:
        t.push_blob(n, b"{}")
        m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
             "config": descriptor(MT_OCI_EMPTY, b"{}"), "layers": []}
        t.push_manifest(n, "latest", json.dumps(m).encode(), MT_OCI_MANIFEST)
    return prefix, sorted(names, key=lambda s: s.encode())


@test()
def catalog_lists_pushed_repositories(t):
    prefix, want = catalog_repos(t)
    got = []
    for r, items in follow_links(t, "/v2/_catalog?n=3&last=%s" % prefix,
                                 "repositories", 3):
        got.extend(items)
        if items and not items[-1].startswith(prefix):
            break
    ours = [x for x in got if x.startswith(prefix + "/")]
    expect(set(ours) == set(want), "catalog has %r, expected %r"
           % (ours, want))


@test(differs={DIST: D_CATALOG_ORDER})
def catalog_in_byte_order_with_paging(t):
    prefix, want = catalog_repos(t)
    got = []
    for r, items in follow_links(t, "/v2/_catalog?n=2&last=%s" % prefix,
                                 "repositories", 2):
        expect(len(items) == 2 or r.h("Link") is None,
               "%s: short page %r with a Link" % (r, items))
        got.extend(items)
        if items and not items[-1].startswith(prefix):
            break
    ours = [x for x in got if x.startswith(prefix + "/")]
    expect(ours == want, "catalog order %r, expected byte order %r"
           % (ours, want))
    expect(got[:len(want)] == want,
           "catalog after %r starts %r" % (prefix, got[:len(want)]))
    r = t.reg.get("/v2/_catalog?n=3&last=%s" % want[1])
    expect_status(r, 200)
    expect(r.json().get("repositories") == want[2:5],
           "%s: %r, expected %r" % (r, r.json(), want[2:5]))


@test()
def catalog_n0_is_empty(t):
    r = t.reg.get("/v2/_catalog?n=0")
    expect_status(r, 200)
    expect(r.json().get("repositories") == [], "%s: %r" % (r, r.json()))
    expect(r.h("Link") is None, "%s: n=0 has a Link" % r)


# ==========================================================================
# Referrers API

def referrers(t, repo, digest, query=""):
    """All descriptors of the referrers list, following Link pages."""
    target = "/v2/%s/referrers/%s%s" % (repo, digest, query)
    out, first = [], None
    while target:
        r = t.reg.get(target)
        expect_status(r, 200)
        first = first or r
        expect(media_type_of(r) == MT_OCI_INDEX,
               "%s: Content-Type %r" % (r, r.h("Content-Type")))
        doc = r.json()
        expect(doc.get("schemaVersion") == 2 and
               doc.get("mediaType") == MT_OCI_INDEX and
               isinstance(doc.get("manifests"), list),
               "%s: not an OCI image index: %r" % (r, doc))
        out.extend(doc["manifests"])
        link = r.h("Link")
        target = None
        if link:
            m = re.fullmatch(r'\s*<([^>]+)>\s*;\s*rel="?next"?\s*', link)
            expect(m, "%s: Link %r" % (r, link))
            target = m.group(1)
    return first, out


def push_referrer(t, repo, subject, artifact_type=None, config_mt=MT_OCI_EMPTY,
                  annotations=None, index=False):
    t.push_blob(repo, b"{}")
    if index:
        m = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["manifests"] = []
    else:
        m = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["config"] = descriptor(config_mt, b"{}")
        m["layers"] = [descriptor(MT_OCI_EMPTY, b"{}")]
    m["subject"] = subject
    if annotations:
        m["annotations"] = annotations
    body = json.dumps(m).encode()
    mt = m["mediaType"]
    r = t.put_manifest(repo, sha(body), body, mt)
    expect_status(r, 201)
    return {"mediaType": mt, "digest": sha(body), "size": len(body),
            "artifactType": artifact_type, "annotations": annotations}


@test(differs={DIST: D_REFERRERS})
def referrers_empty_is_200_empty_index(t):
    repo = t.repo()
    img = t.push_image(repo, "lonely")
    for d in (img.digest, sha(os.urandom(8))):
        r, items = referrers(t, repo, d)
        expect(items == [], "%s: %r" % (r, items))


@test(differs={DIST: D_REFERRERS})
def referrers_lists_descriptors(t):
    repo = t.repo()
    subject = t.push_image(repo, "base")
    sd = subject.descriptor()
    sbom = push_referrer(t, repo, sd, "application/vnd.example.sbom.v1",
                         annotations={"org.example.format": "spdx"})
    sig = push_referrer(t, repo, sd, None,
                        config_mt="application/vnd.example.sig.config.v1+json",
                        annotations={"org.example.signer": "ci"})
    bundle = push_referrer(t, repo, sd, None, index=True)
    # something that refers to another subject is not listed
    other = t.push_image(repo, "other")
    push_referrer(t, repo, other.descriptor(), "application/vnd.example.x")
    r, items = referrers(t, repo, subject.digest)
    by_digest = {d.get("digest"): d for d in items}
    expect(set(by_digest) == {sbom["digest"], sig["digest"], bundle["digest"]},
           "%s: referrers %r" % (r, items))
    for want, at in ((sbom, "application/vnd.example.sbom.v1"),
                     (sig, "application/vnd.example.sig.config.v1+json"),
                     (bundle, None)):
        got = by_digest[want["digest"]]
        expect(got.get("mediaType") == want["mediaType"] and
               got.get("size") == want["size"],
               "descriptor %r, expected %r" % (got, want))
        expect(got.get("artifactType") == at,
               "artifactType %r, expected %r in %r"
               % (got.get("artifactType"), at, got))
        if want["annotations"]:
            expect(got.get("annotations") == want["annotations"],
                   "annotations %r, expected %r" % (got.get("annotations"),
                                                   want["annotations"]))


@test(differs={DIST: D_REFERRERS})
def referrers_filter_by_artifact_type(t):
    repo = t.repo()
    subject = t.push_image(repo, "base")
    sd = subject.descriptor()
    sbom = push_referrer(t, repo, sd, "application/vnd.example.sbom.v1")
    push_referrer(t, repo, sd, "application/vnd.example.signature.v1")
    q = "?artifactType=" + urllib.parse.quote(
        "application/vnd.example.sbom.v1", safe="")
    r, items = referrers(t, repo, subject.digest, q)
    expect([d.get("digest") for d in items] == [sbom["digest"]],
           "%s: filtered referrers %r" % (r, items))
    applied = [x.strip() for x in (r.h("OCI-Filters-Applied") or "").split(",")]
    expect("artifactType" in applied,
           "%s: OCI-Filters-Applied is %r" % (r, r.h("OCI-Filters-Applied")))
    r, items = referrers(t, repo, subject.digest,
                         "?artifactType=application/vnd.example.none")
    expect(items == [], "%s: %r" % (r, items))


@test(differs={DIST: D_REFERRERS})
def referrers_subject_pushed_later_and_deleted_referrer(t):
    repo = t.repo()
    subject = t.push_image(repo, "base", push=False)
    ref = push_referrer(t, repo, subject.descriptor(),
                        "application/vnd.example.sbom.v1")
    r, items = referrers(t, repo, subject.digest)
    expect([d.get("digest") for d in items] == [ref["digest"]],
           "%s: referrers of an absent subject %r" % (r, items))
    t.push_manifest(repo, "base", subject.body, subject.media_type)
    r, items = referrers(t, repo, subject.digest)
    expect([d.get("digest") for d in items] == [ref["digest"]],
           "%s: %r" % (r, items))
    expect_status(t.reg.delete(manifest_url(repo, ref["digest"])), 202)
    r, items = referrers(t, repo, subject.digest)
    expect(items == [], "%s: deleted referrer still listed: %r" % (r, items))


@test(differs={DIST: D_REFERRERS})
def referrers_invalid_digest_is_400(t):
    repo = t.repo()
    t.push_image(repo, "base")
    for bad in ("sha256:abc", "sha256:zz" + "0" * 62, "notadigest"):
        expect_error(t.reg.get("/v2/%s/referrers/%s" % (repo, bad)), 400,
                     "DIGEST_INVALID")


# ==========================================================================
# Deletion

@test()
def delete_manifest_by_digest(t):
    repo = t.repo()
    keep = t.push_image(repo, "keep")
    img = t.push_image(repo, "gone")
    h = {"Accept": img.media_type}
    r = t.reg.delete(manifest_url(repo, img.digest))
    expect_status(r, 202)
    expect_error(t.reg.get(manifest_url(repo, img.digest), headers=h), 404,
                 "MANIFEST_UNKNOWN")
    expect_error(t.reg.head(manifest_url(repo, img.digest), headers=h), 404)
    expect_error(t.reg.get(manifest_url(repo, "gone"), headers=h), 404,
                 "MANIFEST_UNKNOWN")
    _, tags = tags_of(t, repo)
    expect(tags == ["keep"], "tags after delete: %r" % tags)
    check_manifest(t, repo, "keep", keep.body, keep.media_type)
    expect_error(t.reg.delete(manifest_url(repo, img.digest)), 404,
                 "MANIFEST_UNKNOWN")


@test()
def delete_unknown_manifest(t):
    repo = t.repo()
    t.push_image(repo, "x")
    expect_error(t.reg.delete(manifest_url(repo, sha(os.urandom(8)))), 404,
                 "MANIFEST_UNKNOWN")


@test(differs={DIST: D_TAG_DELETE})
def delete_tag_by_name(t):
    repo = t.repo()
    img = t.push_image(repo, "one")
    t.push_manifest(repo, "two", img.body, img.media_type)
    r = t.reg.delete(manifest_url(repo, "one"))
    expect_status(r, 202)
    h = {"Accept": img.media_type}
    expect_error(t.reg.get(manifest_url(repo, "one"), headers=h), 404,
                 "MANIFEST_UNKNOWN")
    check_manifest(t, repo, "two", img.body, img.media_type)
    check_manifest(t, repo, img.digest, img.body, img.media_type)
    _, tags = tags_of(t, repo)
    expect(tags == ["two"], "tags after deleting one: %r" % tags)
    expect_error(t.reg.delete(manifest_url(repo, "one")), 404,
                 "MANIFEST_UNKNOWN")


@test()
def delete_blob(t):
    a, b = t.repo("a"), t.repo("b")
    data = os.urandom(100)
    d = t.push_blob(a, data)
    t.push_blob(b, data)
    r = t.reg.delete(blob_url(b, d))
    expect_status(r, 202)
    expect_error(t.reg.get(blob_url(b, d)), 404, "BLOB_UNKNOWN")
    expect_error(t.reg.head(blob_url(b, d)), 404)
    expect_error(t.reg.delete(blob_url(b, d)), 404, "BLOB_UNKNOWN")
    # the other repository keeps its blob
    check_blob(t.reg, a, d, data)


# ==========================================================================
# Grammar errors and error codes

BAD_NAMES = ["Upper/case", "-lead/x", "trail-/x", "a..b/x", "a/./b",
             "x" * 300, "/".join(["abcdefghij"] * 30)]


@test(differs={DIST: D_NAME_GRAMMAR})
def name_invalid(t):
    for name in BAD_NAMES:
        for method, path in (("GET", "/v2/%s/tags/list"),
                             ("GET", "/v2/%s/manifests/latest"),
                             ("POST", "/v2/%s/blobs/uploads/")):
            expect_error(t.reg.request(method, path % name), 400,
                         "NAME_INVALID")


BAD_TAGS = ["-lead", ".lead", "bad!tag", "t" * 129]


@test(differs={DIST: D_TAG_GRAMMAR})
def tag_invalid(t):
    repo = t.repo()
    img = t.push_image(repo, "good")
    for tag in BAD_TAGS:
        expect_error(t.put_manifest(repo, tag, img.body, img.media_type), 400,
                     "TAG_INVALID")
        r = t.reg.get(manifest_url(repo, tag),
                      headers={"Accept": img.media_type})
        expect_error(r, (400, 404), "TAG_INVALID", "MANIFEST_UNKNOWN")
    r, tags = tags_of(t, repo)
    expect(tags == ["good"], "%s: %r" % (r, tags))


@test()
def tag_of_128_characters_is_valid(t):
    repo = t.repo()
    tag = "T" + "a1._-" * 25 + "xy"
    expect(len(tag) == 128, "tag length %d" % len(tag))
    img = t.push_image(repo, tag)
    check_manifest(t, repo, tag, img.body, img.media_type)


@test()
def blob_digest_invalid(t):
    repo = t.repo()
    t.push_blob(repo, b"repository exists")
    for bad in ("sha256:zzz", "sha256:abc", "sha256:" + "0" * 63,
                "sha256:" + "A" * 64):
        expect_error(t.reg.get(blob_url(repo, bad)), 400, "DIGEST_INVALID")
    expect_error(t.reg.get(blob_url(repo, "md5:" + "0" * 32)), 400,
                 "DIGEST_INVALID", "UNSUPPORTED")


@test(differs={DIST: D_DIGEST_REFERENCE})
def manifest_digest_invalid(t):
    repo = t.repo()
    t.push_image(repo, "x")
    for bad in ("sha256:abc", "sha256:" + "0" * 63, "sha256:zz" + "0" * 62):
        expect_error(t.reg.get(manifest_url(repo, bad),
                               headers={"Accept": MT_OCI_MANIFEST}), 400,
                     "DIGEST_INVALID")


@test(differs={DIST: D_METHOD_TEXT})
def unsupported_method(t):
    repo = t.repo()
    img = t.push_image(repo, "x")
    for method, path in (("POST", manifest_url(repo, "x")),
                         ("PUT", blob_url(repo, img.config["digest"])),
                         ("DELETE", "/v2/%s/tags/list" % repo)):
        expect_error(t.reg.request(method, path, body=b""), 405,
                     "UNSUPPORTED")


# ==========================================================================
# Operations (wharf only)

@test(only={"wharf"})
def health_instance(t):
    r = t.reg.get("/health/instance")
    expect_status(r, 200)


@test(only={"wharf"})
def health_endtoend(t):
    r = t.reg.get("/health/endtoend")
    expect_status(r, 200)


PROM_SAMPLE = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
    r' +([-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN))( +-?[0-9]+)?')


@test(only={"wharf"})
def metrics_prometheus_text(t):
    t.reg.get("/v2/")
    r = t.reg.get("/metrics")
    expect_status(r, 200)
    ct = media_type_of(r)
    expect(ct in ("text/plain", "application/openmetrics-text"),
           "%s: Content-Type %r" % (r, r.h("Content-Type")))
    text = r.body.decode("utf-8")
    samples, types = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            types += line.startswith("# TYPE ")
            continue
        expect(PROM_SAMPLE.fullmatch(line),
               "%s: not a Prometheus sample line: %r" % (r, line))
        samples.append(line)
    expect(types > 0 and samples, "%s: no # TYPE lines or no samples" % r)
    expect(any(re.search(r'(status|code)="[1-5][0-9][0-9]"', s)
               for s in samples),
           "%s: no series labelled with a response status" % r)


# ==========================================================================
# Runner

def print_differences():
    """The README table, generated from the markers in this file."""
    print("| difference | tests | distribution 2.8 does | why wharf differs "
          "(spec text) |")
    print("|---|---|---|---|")
    for d in DIFFERENCES.values():
        tests = [tc.name for tc in TESTS if tc.differs.get(DIST) is d]
        print("| `%s` | %s | %s | %s |" % (
            d.key, ", ".join("`%s`" % n for n in tests),
            d.observed.replace("|", "\\|"), d.quote.replace("|", "\\|")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="registry base URL, e.g. "
                    "http://127.0.0.1:5000")
    ap.add_argument("--target", choices=("wharf", "wharf-sparse", "distribution"),
                    help="wharf: everything must pass; distribution: the "
                    "known differences of docker-registry 2.8 are XFAIL")
    ap.add_argument("--proxy-scheme", default="",
                    help="the registry is reached through a load balancer "
                    "that sets X-Forwarded-Proto itself (nginx: $scheme): "
                    "Locations carry this scheme, not the one the test sends")
    ap.add_argument("-k", dest="filter", default="",
                    help="run only tests whose name contains one of these "
                    "comma-separated substrings")
    ap.add_argument("-v", dest="verbose", action="store_true",
                    help="show the spec text and the requests of failed and "
                    "XFAIL tests")
    ap.add_argument("--list", action="store_true",
                    help="list the tests (with --target: their expected "
                    "differences) and exit")
    ap.add_argument("--differences", action="store_true",
                    help="print the differences table of README.md and exit")
    args = ap.parse_args()

    if args.differences:
        print_differences()
        return 0
    if args.list:
        for tc in TESTS:
            d = tc.differs.get(args.target)
            extra = " [expected difference: %s]" % d.key if d else ""
            only = " [%s only]" % ",".join(sorted(tc.only)) if tc.only else ""
            print(tc.name + only + extra)
        return 0
    if not args.url or not args.target:
        ap.error("--url and --target are required")

    reg = Registry(args.url, args.verbose)
    try:
        r = reg.get("/v2/")
    except OSError as e:
        print("cannot reach %s: %s" % (args.url, e), file=sys.stderr)
        return 2
    if r.status != 200:
        print("GET %s/v2/ answered %d" % (args.url, r.status), file=sys.stderr)
        return 2

    filters = [f.strip().lower() for f in args.filter.split(",") if f.strip()]
    run_id = rand_hex(8)
    counts = {"PASS": 0, "FAIL": 0, "XFAIL": 0, "XPASS": 0, "SKIP": 0}
    started = time.monotonic()
    for tc in TESTS:
        if filters and not any(f in tc.name.lower() for f in filters):
            continue
        if tc.only and args.target not in tc.only:
            counts["SKIP"] += 1
            print("SKIP  %s (only for %s)" % (tc.name,
                                              ", ".join(sorted(tc.only))))
            continue
        reg.trace = []
        t = T(reg, args.target, run_id)
        t.proxy_scheme = args.proxy_scheme
        t0 = time.monotonic()
        error = None
        try:
            tc.fn(t)
        except Failure as e:
            error = str(e)
        except Exception as e:  # a crash in the test or the connection
            error = "%s: %s\n%s" % (type(e).__name__, e,
                                    traceback.format_exc(limit=3))
        ms = (time.monotonic() - t0) * 1000
        diff = tc.differs.get(args.target)
        if error is None and diff is None:
            status, detail = "PASS", ""
        elif error is None:
            status = "XPASS"
            detail = ("expected difference [%s] no longer observed: update "
                      "the table in README.md" % diff.key)
        elif diff is None:
            status, detail = "FAIL", error
        else:
            status = "XFAIL"
            detail = "[%s] %s\n        observed: %s" % (
                diff.key, diff.observed, error.splitlines()[0][:300])
        counts[status] += 1
        print("%-5s %s (%.0f ms)%s" % (status, tc.name, ms,
                                       (": " + detail) if detail else ""))
        if args.verbose and status in ("FAIL", "XFAIL", "XPASS"):
            if diff:
                print("        spec: " + diff.quote)
            for line in reg.trace:
                print("        " + line)
    total = sum(counts.values())
    print("\n%d tests in %.1f s: %d passed, %d failed, %d expected "
          "differences (XFAIL), %d unexpected passes (XPASS), %d skipped"
          % (total, time.monotonic() - started, counts["PASS"],
             counts["FAIL"], counts["XFAIL"], counts["XPASS"],
             counts["SKIP"]))
    return 0 if counts["FAIL"] == 0 and counts["XPASS"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
