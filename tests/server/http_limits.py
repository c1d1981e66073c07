#!/usr/bin/env python3
"""HTTP behaviour at the edges, seen from both sides.

    python3 tests/server/http_limits.py WHARF_BIN WORKDIR [section ...]

Sections (all by default):
  slow     slow but live clients get their whole body, however long it takes
           (header timeout 2 s, send timeout 3 s): a blob over plain HTTP and
           TLS, an on-the-fly gzip squash, a squash read while its build runs,
           a squash whose build waited in the queue; a client that stops
           reading is dropped after the send timeout.
  conns    connection limits: many idle connections from one address do not
           lock out another address; the total cap answers 503; trusted
           proxies are exempt from the per-client cap; idle keep-alive
           connections are closed after the idle timeout.
  framing  RFC 9112 request framing: Transfer-Encoding that does not end in
           chunked (400, closed), an unimplemented coding before chunked
           (501), Transfer-Encoding with Content-Length (read chunked, then
           closed), a malformed chunk size (400).

Every wharf started here listens on 127.0.0.1 on a free port and is stopped by
PID. Standard library only.
"""

import gzip
import hashlib
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request

# Set from the command line, or by a test importing the helpers (squash_memory.py).
BIN, WORK = (sys.argv[1], sys.argv[2]) if __name__ == "__main__" else (None, None)
SERVERS = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    for p in SERVERS:
        if p.poll() is None:
            p.terminate()
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, config, env=None):
    """Starts `wharf serve --no-auth` with `config` (YAML text); returns its port."""
    port = free_port()
    cfg = os.path.join(WORK, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(config)
    log = open(os.path.join(WORK, name + ".log"), "ab")
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen([BIN, "serve", "--no-auth", "--config", cfg, "--listen", "127.0.0.1:%d" % port,
                          "--data-dir", os.path.join(WORK, name + "-data")], stdout=log, stderr=log, env=e)
    SERVERS.append(p)
    for _ in range(200):
        try:
            # Probed from an address no test counts: the server frees a closed
            # connection's slot asynchronously, and a probe from 127.0.0.1 still
            # counted when the conns section opens its 20 would turn one away.
            socket.create_connection(("127.0.0.1", port), timeout=1, source_address=("127.0.0.99", 0)).close()
            return port, p
        except OSError:
            time.sleep(0.05)
    fail("%s did not start (see %s.log)" % (name, name))


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


# ---------------------------------------------------------------- pushing

def http(port, method, path, body=b"", headers=None, ctx=None):
    req = urllib.request.Request("%s://127.0.0.1:%d%s" % ("https" if ctx else "http", port, path),
                                 data=body if method != "GET" else None, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
        return r.status, dict(r.headers), r.read()


def push_blob(port, repo, data, ctx=None):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    st, _, _ = http(port, "POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data,
                    {"Content-Type": "application/octet-stream"}, ctx)
    assert st == 201, st
    return d


def push_image(port, repo, tag, files):
    """Pushes a one-layer image whose layer holds `files` {name: bytes}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for n, content in sorted(files.items()):
            ti = tarfile.TarInfo(n)
            ti.size = len(content)
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(content))
    tar = raw.getvalue()
    layer = gzip.compress(tar, compresslevel=1, mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode()
    ld, cd = push_blob(port, repo, layer), push_blob(port, repo, cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld,
                                  "size": len(layer)}]}).encode()
    st, _, _ = http(port, "PUT", "/v2/%s/manifests/%s" % (repo, tag), man,
                    {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert st == 201, st


# ---------------------------------------------------------------- a raw client

class Client:
    """One HTTP/1.1 connection: send a request, read the response at a rate."""

    def __init__(self, port, tls_ctx=None, source="127.0.0.1", rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        self.sock = tls_ctx.wrap_socket(s, server_hostname="127.0.0.1") if tls_ctx else s
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def get(self, path, headers=""):
        self.send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, headers)).encode())

    def head(self, timeout=30):
        """Reads the status line and headers: (status, {lower name: value})."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            got = self.sock.recv(65536)
            if not got:
                raise EOFError("closed before the headers: %r" % self.buf[:200])
            self.buf += got
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hs = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hs[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), hs

    def body(self, rate=None, length=None, timeout=30):
        """Reads the body (Content-Length or chunked) at `rate` bytes/s; returns
        (bytes, complete). A connection that ends early is complete=False."""
        out = bytearray(self.buf)
        self.buf = b""
        self.sock.settimeout(timeout)
        t0, step = time.time(), 64 * 1024
        chunked = length is None
        while True:
            if not chunked and len(out) >= length:
                return bytes(out[:length]), True
            if chunked and out.endswith(b"0\r\n\r\n") and dechunk(bytes(out)) is not None:
                return dechunk(bytes(out)), True
            try:
                got = self.sock.recv(step)
            except (ConnectionResetError, socket.timeout, ssl.SSLError):
                got = b""
            if not got:
                return (bytes(out) if not chunked else b""), False
            out += got
            if rate:
                ahead = len(out) / rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    def closed(self, timeout):
        """True when the server closes the connection within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()


def dechunk(data):
    out, i = bytearray(), 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return None
        n = int(data[i:j].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += data[j + 2:j + 2 + n]
        i = j + 2 + n + 2
        if i > len(data):
            return None


def fetch(port, path, rate, headers="", tls_ctx=None):
    c = Client(port, tls_ctx, rcvbuf=128 * 1024)
    c.get(path, headers)
    st, hs = c.head(timeout=60)
    length = int(hs["content-length"]) if "content-length" in hs else None
    body, complete = c.body(rate=rate, length=length, timeout=60)
    c.close()
    return st, hs, body, complete


# ---------------------------------------------------------------- sections

def section_slow():
    key = os.path.join(WORK, "key.pem")
    cert = os.path.join(WORK, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    timeouts = "timeouts: {header_seconds: 2, send_seconds: 3}\n"
    # Builds are held 3 s after their first bytes (WHARF_PAUSE_AT): readers of
    # a build wait longer than the header timeout between writes.
    port, plain = start("slow", timeouts + "squash: {workers: 1}\n", {"WHARF_PAUSE_AT": "squash-writing:3000"})
    tport, tls = start("slow-tls", timeouts + "tls: {cert: %s, key: %s}\n" % (cert, key))
    ctx = ssl.create_default_context(cafile=cert)

    blob = os.urandom(24 << 20)
    digest = push_blob(port, "slow/blob", blob)
    push_blob(tport, "slow/blob", blob, ctx)
    for name, p, c in (("plain HTTP (sendfile)", port, None), ("TLS", tport, ctx)):
        t0 = time.time()
        st, _, body, complete = fetch(p, "/v2/slow/blob/blobs/" + digest, 4 << 20, tls_ctx=c)
        took = time.time() - t0
        if st != 200 or not complete or body != blob:
            fail("a 24 MiB blob read at 4 MB/s over %s was cut after %d bytes (%.1f s)" % (name, len(body), took))
        print("PASS a blob read at 4 MB/s over %s arrives whole (%.1f s, past the 2 s header timeout)" % (name, took))

    # A client that stops reading is dropped after the send timeout.
    for name, p, c in (("plain HTTP (sendfile)", port, None), ("TLS", tport, ctx)):
        cl = Client(p, c, rcvbuf=64 * 1024)
        cl.get("/v2/slow/blob/blobs/" + digest)
        st, hs = cl.head()
        time.sleep(3 + 3)
        body, complete = cl.body(length=int(hs["content-length"]), timeout=10)
        if complete:
            fail("a client that stopped reading for twice the send timeout over %s still got the whole blob" % name)
        print("PASS a client that stops reading over %s is dropped after the send timeout (%d of %d bytes)" %
              (name, len(body), len(blob)))

    # Images for the squash cases: 12 MiB of random bytes each (gzip cannot shrink them).
    for tag in ("gz", "follow", "queued-a", "queued-b"):
        push_image(port, "slow/img", tag, {"data/%s.bin" % tag: os.urandom(12 << 20), "etc/tag": tag.encode()})

    # On-the-fly gzip of a squash the cache does not hold yet.
    t0 = time.time()
    st, hs, body, complete = fetch(port, "/c1/squash/slow/img/gz", 2 << 20, "Accept-Encoding: gzip\r\n")
    if st != 200 or not complete or hs.get("content-encoding") != "gzip":
        fail("a gzip squash read at 2 MB/s was cut after %d bytes (%.1f s, %s)" % (len(body), time.time() - t0, hs))
    tarbytes = gzip.decompress(body)
    if len(tarbytes) < 12 << 20:
        fail("the gzip squash decompressed to only %d bytes" % len(tarbytes))
    print("PASS a gzip squash read at 2 MB/s arrives whole (%.1f s)" % (time.time() - t0))

    # A squash read while its build runs (the build pauses 3 s after its first
    # bytes: longer than the header timeout), then compared with the cached GET.
    st, hs, body, complete = fetch(port, "/c1/squash/slow/img/follow", 4 << 20)
    if st != 200 or not complete:
        fail("a squash read while it was built was cut after %d bytes" % len(body))
    st2, _, cached, complete2 = fetch(port, "/c1/squash/slow/img/follow", None)
    if cached != body:
        fail("the squash read during its build differs from the cached one")
    print("PASS a squash read during its build (a 3 s pause after the first bytes) arrives whole and equals the cached body")

    # Two builds on one worker: the second waits in the queue (3 s) before its first byte.
    res = {}

    def grab(tag):
        res[tag] = fetch(port, "/c1/squash/slow/img/" + tag, 4 << 20)

    ts = [threading.Thread(target=grab, args=(t,)) for t in ("queued-a", "queued-b")]
    for t in ts:
        t.start()
        time.sleep(0.2)
    for t in ts:
        t.join()
    for tag in ("queued-a", "queued-b"):
        st, hs, body, complete = res[tag]
        if st != 200 or not complete:
            fail("squash %s (one worker, two builds) was cut after %d bytes" % (tag, len(body)))
    print("PASS with one squash worker, the build that waited in the queue is streamed whole")
    stop(plain)
    stop(tls)


def section_conns():
    port, srv = start("conns", "limits: {max_connections_per_client: 20, max_connections: 60}\n"
                                "timeouts: {idle_seconds: 1}\n")
    held = [Client(port) for _ in range(20)]          # idle, never sending a byte
    time.sleep(0.3)
    extra = Client(port)
    extra.get("/v2/")
    try:
        st, hs = extra.head(timeout=5)
        body = extra.body(length=int(hs.get("content-length", 0)))[0]
    except EOFError as e:
        fail("the 21st connection from one address got no answer: %s" % e)
    if st != 429 or "retry-after" not in hs or json.loads(body)["errors"][0]["code"] != "TOOMANYREQUESTS":
        fail("the 21st connection from one address got %d %s %r" % (st, hs, body))
    if not extra.closed(5):
        fail("the connection over the per-client limit stayed open")
    print("PASS 20 idle connections from 127.0.0.1: the 21st gets 429 TOOMANYREQUESTS with Retry-After and is closed")
    other = Client(port, source="127.0.0.2")
    other.get("/v2/")
    st, _ = other.head(timeout=5)
    if st != 200:
        fail("a client from 127.0.0.2 got %d while 127.0.0.1 held its 20 connections" % st)
    other.close()
    time.sleep(0.5)  # its slot is freed asynchronously; the total below must not count it
    print("PASS meanwhile a client from 127.0.0.2 is served")
    held += [Client(port, source="127.0.0.3") for _ in range(20)]
    held += [Client(port, source="127.0.0.4") for _ in range(20)]
    time.sleep(0.3)
    full = Client(port, source="127.0.0.5")
    full.get("/v2/")
    st, hs = full.head(timeout=5)
    if st != 503 or "retry-after" not in hs:
        fail("with 60 connections open (the total limit) a new client got %d" % st)
    full.close()
    print("PASS at the total limit (60 open) a new client gets 503 with Retry-After")
    for c in held:
        c.close()
    time.sleep(0.5)
    again = Client(port, source="127.0.0.5")
    again.get("/v2/")
    st, _ = again.head(timeout=5)
    if st != 200:
        fail("after the held connections closed, a client got %d" % st)
    # the same connection, now idle after its request: closed after idle_seconds
    t0 = time.time()
    if not again.closed(5):
        fail("an idle keep-alive connection stayed open past the 1 s idle timeout")
    print("PASS closed connections free their slots; an idle keep-alive connection is closed after %.1f s (idle 1 s)"
          % (time.time() - t0))
    # a slow client using its few connections is not an attacker: it is served at its pace
    slow = Client(port, source="127.0.0.6")
    slow.send(b"GET /v2/ HTTP/1.1\r\n")
    time.sleep(1.5)
    slow.send(b"Host: 127.0.0.1\r\n\r\n")
    st, _ = slow.head(timeout=5)
    if st != 200:
        fail("a client taking 1.5 s over its headers got %d" % st)
    print("PASS a client taking 1.5 s over its request headers is answered (only idle connections time out at 1 s)")
    stop(srv)

    port, srv = start("conns-proxy", "limits: {max_connections_per_client: 5}\ntrusted_proxies: [\"127.0.0.1\"]\n")
    held = [Client(port) for _ in range(10)]
    time.sleep(0.3)
    for c in held:
        c.get("/v2/")
    for i, c in enumerate(held):
        st, _ = c.head(timeout=5)
        if st != 200:
            fail("connection %d from a trusted proxy got %d (proxies are exempt from the per-client cap)" % (i, st))
        c.close()
    print("PASS a trusted proxy may hold more connections than the per-client cap (10 of 5)")
    stop(srv)


def raw(port, data, timeout=5):
    c = Client(port)
    c.send(data)
    st, hs = c.head(timeout=timeout)
    body, _ = c.body(length=int(hs.get("content-length", "0")), timeout=timeout)
    return c, st, hs, body


def section_framing():
    port, srv = start("framing", "")
    digest0 = "sha256:" + "0" * 64
    for te, want in (("gzip", 400), ("identity", 400), ("chunked, identity", 400), ("gzip, chunked", 501)):
        # the bytes after the headers would be a second request if the body were taken as empty
        smuggled = b"GET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n"
        c, st, hs, body = raw(port, ("POST /v2/fr/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: %s\r\n\r\n" % (digest0, te)).encode() + smuggled)
        if st != want or json.loads(body)["errors"][0]["code"] != "UNSUPPORTED":
            fail("Transfer-Encoding: %s got %d %r (want %d)" % (te, st, body, want))
        if not c.closed(5):
            fail("Transfer-Encoding: %s: the connection stayed open (its body length is unknown)" % te)
        c.close()
    print("PASS Transfer-Encoding not ending in chunked is 400 and closes; gzip before chunked is 501")

    data = b"framed by chunked, not by Content-Length"
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    c, st, hs, body = raw(port, ("POST /v2/fr/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"
                                 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" % d).encode() + chunked)
    if st != 201:
        fail("a chunked body with a Content-Length too got %d %r" % (st, body))
    if hs.get("connection", "").lower() != "close" or not c.closed(5):
        fail("Transfer-Encoding with Content-Length: the connection was not closed after the response")
    st, _, got = http(port, "GET", "/v2/fr/blobs/" + d)
    if got != data:
        fail("the blob framed by chunked with a Content-Length beside it is %r" % got)
    print("PASS Transfer-Encoding with Content-Length: the body is read chunked, then the connection closes")

    c, st, hs, body = raw(port, ("POST /v2/fr/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n" % digest0).encode())
    if st != 400:
        fail("a malformed chunk size got %d %r" % (st, body))
    print("PASS a malformed chunk size is 400 (not 500)")
    st, _, _ = http(port, "GET", "/v2/")
    if st != 200:
        fail("the server stopped answering after the framing cases")
    stop(srv)


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    for s in sys.argv[3:] or ["slow", "conns", "framing"]:
        {"slow": section_slow, "conns": section_conns, "framing": section_framing}[s]()
    for p in SERVERS:
        if p.poll() is None:
            stop(p)
