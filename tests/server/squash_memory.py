#!/usr/bin/env python3
"""The squash memory budget, from both sides.

    python3 tests/server/squash_memory.py WHARF_BIN WORKDIR

- An image whose build alone needs more than squash.memory_budget_bytes
  (200 000 entries: about 30 MB by the per-entry figure) is refused before
  it is loaded: 422 LIMIT_EXCEEDED naming the setting, for GET and HEAD,
  twice, and no cache entry; a small image on the same server squashes.
- The push-time index is charged to the budget too: a layer of 500 000
  entries pushed to a server with a 24 MB budget is not indexed at push
  (deferred, counted in /metrics) and the server's peak RSS stays within
  the budget's reach (an unbudgeted index of it takes over 70 MB); its
  squash is then refused with the same error, memory still bounded.
- Two 200 000-entry images whose builds fit the budget one at a time but
  not together both squash completely when asked for at once (one waits).
Servers listen on 127.0.0.1 on free ports and are stopped by PID.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
BIN, WORK = sys.argv[1], sys.argv[2]
import http_limits as hl  # noqa: E402  (its server start/stop and image helpers)
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
import many_entries  # noqa: E402

hl.BIN, hl.WORK = BIN, WORK
os.makedirs(WORK, exist_ok=True)


def get(port, path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


layers = []
for i in range(2):
    p = os.path.join(WORK, "many%d.tar.gz" % i)
    many_entries.layer(p, 200000 + i)  # different layers, so two builds
    layers.append(p)

port, srv = hl.start("budget-small", "squash: {memory_budget_bytes: 20000000}\n")
many_entries.push("http://127.0.0.1:%d" % port, "mem/big", layers[0])
for attempt in (1, 2):
    for method in ("GET", "HEAD"):
        st, body = get(port, "/c1/squash/mem/big/v1", method)
        if st != 422 or (method == "GET" and b"memory_budget_bytes" not in body):
            hl.fail("%s %d of an image over the memory budget: %d %r" % (method, attempt, st, body[:300]))
        if method == "GET" and json.loads(body)["errors"][0]["code"] != "LIMIT_EXCEEDED":
            hl.fail("not LIMIT_EXCEEDED: %r" % body[:300])
print("PASS an image whose build needs more than the whole memory budget: 422 LIMIT_EXCEEDED naming "
      "squash.memory_budget_bytes (GET and HEAD, twice)")
hl.push_image(port, "mem/small", "v1", {"etc/a": b"a\n"})
st, body = get(port, "/c1/squash/mem/small/v1")
if st != 200 or len(body) < 2048:
    hl.fail("a small image on the same server: %d" % st)
print("PASS ... while a small image on the same server squashes")
hl.stop(srv)



def kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])


def metric(port, name):
    st, body = get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


big = os.path.join(WORK, "many-500k.tar.gz")
many_entries.layer(big, 500000)
port, srv = hl.start("budget-push", "squash: {memory_budget_bytes: 24000000}\n")
idle = kib(srv.pid, "VmRSS")
many_entries.push("http://127.0.0.1:%d" % port, "mem/push", big)
for _ in range(600):
    if metric(port, "wharf_squash_background_indexes_deferred_total") + \
            metric(port, "wharf_squash_background_indexes_total") >= 1:
        break
    time.sleep(0.1)
if metric(port, "wharf_squash_background_indexes_deferred_total") != 1:
    hl.fail("the push-time index of 500 000 entries under a 24 MB budget was not deferred")
grown = kib(srv.pid, "VmHWM") - idle
if grown > 48 * 1024:
    hl.fail("the push-time index took the server %d KiB above idle under a 24 MB budget" % grown)
print("PASS the push-time index is charged to the budget: deferred at 24 MB, peak RSS %d MiB above idle"
      % (grown >> 10))
st, body = get(port, "/c1/squash/mem/push/v1")
if st != 422 or b"memory_budget_bytes" not in body:
    hl.fail("squash of a layer whose index exceeds the budget: %d %r" % (st, body[:300]))
grown = kib(srv.pid, "VmHWM") - idle
if grown > 48 * 1024:
    hl.fail("indexing for the squash took the server %d KiB above idle under a 24 MB budget" % grown)
print("PASS ... and its squash: 422 naming squash.memory_budget_bytes, peak RSS %d MiB above idle"
      % (grown >> 10))
hl.stop(srv)

port, srv = hl.start("budget-two", "squash: {memory_budget_bytes: 60000000, workers: 2}\n")
for i in range(2):
    many_entries.push("http://127.0.0.1:%d" % port, "mem/m%d" % i, layers[i])
res = {}


def fetch(i):
    res[i] = get(port, "/c1/squash/mem/m%d/v1" % i)


ts = [threading.Thread(target=fetch, args=(i,)) for i in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for i in range(2):
    st, body = res[i]
    if st != 200:
        hl.fail("build %d of two that fit the budget only one at a time: %d %r" % (i, st, body[:200]))
    # the archive lists every file of the layer
    listing = subprocess.run(["tar", "-tf", "-"], input=body, capture_output=True).stdout
    names = [l for l in listing.split(b"\n") if l.endswith(b"layer.tar")]
    if not names:
        hl.fail("squash %d is not a docker-save archive" % i)
print("PASS two builds that fit the budget one at a time, asked for at once: both complete (together they exceed the budget, so one waited for the other)")
hl.stop(srv)
