#!/usr/bin/env python3
"""Lists of repositories across pages (see listing.sh).

    listing.py push URL            (an open registry: the legacy half)
    listing.py check URL ADMIN_PW  (with accounts: the rest, then the checks)

Repository big/rNNNN for N in 0..1039: even N pushed before accounts (a tag
v1, no settings row), odd N created through the API (no tags; public when
N % 5 == 0). User `reader` is granted read on every N % 3 == 0.
"""
import sys
import urllib.parse

sys.path.insert(0, "tests/auth")
from matrix import Http, basic, bearer, make_image, sha256, MT_MANIFEST  # noqa: E402

N = 1040
names = ["big/r%04d" % i for i in range(N)]
failures = []


def check(name, ok, detail=""):
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + detail))
    if not ok:
        failures.append(name)


def push(h):
    img = make_image("listing")
    for i in range(0, N, 2):
        repo = names[i]
        for b in img["blobs"]:
            assert h.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(b)), {}, b).status == 201
        r = h.request("PUT", "/v2/%s/manifests/v1" % repo, {"Content-Type": MT_MANIFEST}, img["manifest"])
        assert r.status == 201, r.status


def api(h, creds, method, path, body=None):
    return h.request(method, "/api/v1/" + path, basic(*creds), body)


def list_api(h, creds, q="", limit=7):
    got, page, calls = [], "", 0
    while True:
        query = urllib.parse.urlencode({"namespace": "big", "limit": limit, "next_page": page, "q": q})
        r = api(h, creds, "GET", "repository?" + query)
        calls += 1
        if r.status != 200:
            raise AssertionError("repository list: %d %r" % (r.status, r.body[:200]))
        body = r.json()
        got += [("%s/%s" % (x["namespace"], x["name"]), x["tag_count"]) for x in body["repositories"]]
        page = body.get("next_page")
        if not page:
            return got, calls
        if calls > N:
            raise AssertionError("next_page never ends")


def catalog(h, creds):
    r = h.request("GET", "/v2/auth?service=wharf&scope=registry:catalog:*", basic(*creds))
    tok = r.json()["token"]
    got, target = [], "/v2/_catalog?n=50"
    while target:
        r = h.request("GET", target, bearer(tok))
        if r.status != 200:
            raise AssertionError("catalog: %d" % r.status)
        got += r.json()["repositories"]
        link = r.h("Link")
        target = link[1:link.index(">")] if link else None
    return got


def db_queries(h):
    """PostgreSQL round trips so far (/metrics); None on the embedded SQLite."""
    text = h.request("GET", "/metrics").body.decode()
    n = None
    for line in text.splitlines():
        if line.startswith('wharf_backend_requests_total{backend="postgres"'):
            n = (n or 0) + float(line.rsplit(" ", 1)[1])
    return n


def main():
    h = Http(sys.argv[2])
    if sys.argv[1] == "push":
        push(h)
        return 0
    admin = ("admin", sys.argv[3])
    reader = ("reader", "reader-password-1")
    assert api(h, admin, "POST", "organization/", {"name": "big"}).status == 201
    for i in range(1, N, 2):
        vis = "public" if i % 5 == 0 else "private"
        r = api(h, admin, "POST", "repository", {"namespace": "big", "repository": "r%04d" % i, "visibility": vis})
        assert r.status == 201, (r.status, r.body[:200])
    for i in range(0, N, 3):
        r = api(h, admin, "PUT", "repository/%s/permissions/user/reader" % names[i], {"role": "read"})
        assert r.status == 200, (names[i], r.status, r.body[:200])

    tags = {n: (1 if i % 2 == 0 else 0) for i, n in enumerate(names)}
    readable = [n for i, n in enumerate(names) if i % 3 == 0 or (i % 2 == 1 and i % 5 == 0)]
    got, calls = list_api(h, reader)
    check("reader's repository list, 7 a page: exactly the %d it may read, in order" % len(readable),
          [n for n, _ in got] == readable, "got %d, first differences %r" % (
              len(got), [x for x in zip([n for n, _ in got], readable) if x[0] != x[1]][:3]))
    check("... with each repository's tag count", all(t == tags[n] for n, t in got))
    check("... in %d pages" % -(-len(readable) // 7), calls == -(-len(readable) // 7), str(calls))
    got, _ = list_api(h, admin, limit=500)
    check("admin's list: all %d, across the two sources and their chunks" % N, [n for n, _ in got] == names,
          "got %d" % len(got))
    got, _ = list_api(h, reader, q="r01", limit=5)
    want = [n for n in readable if "r01" in n]
    check("?q=r01 filters before paging: %d names" % len(want), [n for n, _ in got] == want,
          "got %r" % [n for n, _ in got][:5])
    got = catalog(h, reader)
    want = [n for i, n in enumerate(names) if i % 2 == 0 and n in set(readable)]
    check("reader's /v2/_catalog, 50 a page: the %d stored repositories it may read" % len(want), got == want,
          "got %d" % len(got))
    check("admin's /v2/_catalog: all %d stored ones" % (N // 2), catalog(h, admin) == names[0::2])
    before = db_queries(h)
    if before is not None:  # on PostgreSQL: count the round trips of one page of each
        list_one = lambda creds, limit: api(h, creds, "GET", "repository?namespace=big&limit=%d" % limit)
        assert list_one(admin, 500).status == 200
        mid = db_queries(h)
        assert list_one(reader, 7).status == 200
        after = db_queries(h)
        # /metrics itself is not a query; the sign-in check is a few.
        check("admin's page of 500 took %d database round trips (not one per repository)" % (mid - before),
              mid - before < 30)
        check("reader's page of 7 took %d database round trips" % (after - mid), after - mid < 30)
    print("listing: %d checks failed" % len(failures) if failures else "listing: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
