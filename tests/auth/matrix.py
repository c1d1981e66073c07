#!/usr/bin/python3
"""Permission matrix for wharf: who may do what, row by row.

    /usr/bin/python3 tests/auth/matrix.py --url http://127.0.0.1:PORT \\
        --wharf build/wharf --data-dir DATA --admin-password PW [-k REGEX] [-v]

Normally started by matrix.sh, which starts a fresh wharf with accounts and
creates the users, the organization and the robots with the admin CLI. This
script then sets up the repositories (images pushed over HTTP, teams,
permissions, visibility) and checks every row of matrix.tsv: one request (or
a short sequence) made as one principal, its outcome reduced to a short
string and compared with the row's expectation. The expectations follow the
rules at the top of src/auth/auth.h and the contracts of src/auth/access.h,
not what the server happens to do.

Standard library only. Output: one line per failing row (id, principal, op,
target, expected, observed), then a summary. Exit status 0 when every
selected row passed, 1 otherwise, 2 when setup failed.

matrix.tsv columns (tab separated; `#` starts a comment line):

    id  principal  op  target  expect

principal
    anon               no credentials (the token service hands out an
                       anonymous token)
    NAME               user NAME with its password
    NS+NAME            robot with its token
    NAME@pat           user NAME with a personal API token (API rows)
    NAME@jwt           squash rows: a registry token from /v2/auth (asked for
                       pull,push,delete on the target) instead of Basic
    badpw / badrobot   user mallory / robot acme+writer with a wrong secret
target
    acme/private, acme/public, alice/own   shared repositories, never changed
    acme/private*, acme/public*            a fresh copy made for this row
                                           alone (same image, grants and
                                           visibility): rows that change
                                           state use these
    NS/new             a repository that does not exist yet (unique per row)
    acme/missing       a repository that never exists
    NS, NS/SHORT       namespace rows (robots, members)
op and its observed value
    token       actions of the registry token asked for pull,push,delete, in
                the order pull,push,delete ("-" when none); else the status
    pull        GET manifest v1
    push        blob upload: POST .../blobs/uploads/ (202) then PUT ?digest=
                (201); for NS/new also " public" when the new repository is
                readable anonymously (it must be created private)
    delete      DELETE of a manifest by digest (admin pushes it first)
                /v2/ answers of 401 get " no-insufficient_scope" when the
                challenge lacks error="insufficient_scope" (every request
                carries a token, anonymous ones included)
    squash      HEAD /c1/squash/REPO/v1
    squash-get  GET /c1/squash/REPO/v1 (" not-a-tar" when 200 is no docker
                archive)
    prime       POST /c1/squash/REPO/v1/prime
    api-*       management API calls (see OPS below); " basic-challenge"
                when a 401 carries WWW-Authenticate: Basic
"""

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ORG = "acme"
PASSWORDS = {  # created by matrix.sh with these passwords
    "alice": "alice-pw-0001",
    "tread": "tread-pw-0001",
    "twrite": "twrite-pw-0001",
    "repoadmin": "repoadmin-pw-0001",
    "creator": "creator-pw-0001",
    "orgadmin": "orgadmin-pw-0001",
    "mallory": "mallory-pw-0001",
}
ROBOTS = ["acme+reader", "acme+writer", "alice+bot"]
# Grants every acme repository of the matrix carries (shared ones and
# per-row copies): (kind, subject, role).
ACME_GRANTS = [
    ("team", "readers", "read"),
    ("team", "writers", "write"),
    ("robot", "acme+reader", "read"),
    ("robot", "acme+writer", "write"),
    ("user", "repoadmin", "admin"),
]
# Teams of acme besides "owners" (which `wharf org create` made, holding
# orgadmin): name -> (team role, members).
TEAMS = {
    "readers": ("member", ["tread"]),
    "writers": ("member", ["twrite"]),
    "creators": ("creator", ["creator"]),
}


class SetupError(Exception):
    pass


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def h(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Http:
    def __init__(self, url, verbose=False):
        u = urllib.parse.urlsplit(url.rstrip("/"))
        self.host, self.port = u.hostname, u.port or 80
        self.verbose = verbose

    def request(self, method, target, headers=None, body=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if target.startswith("http://"):
            u = urllib.parse.urlsplit(target)
            target = u.path + ("?" + u.query if u.query else "")
        for attempt in range(3):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders()
                if body:
                    conn.send(body)
                r = conn.getresponse()
                data = b"" if method == "HEAD" else r.read()
                resp = Response(r.status, r.headers, data)
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
                time.sleep(0.5)  # the binary may be being replaced; retry
            finally:
                conn.close()
        if self.verbose:
            print("    %s %s -> %d" % (method, target[:150], resp.status))
        return resp


def basic(name, secret):
    return {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (name, secret)).encode()).decode()}


def bearer(token):
    return {"Authorization": "Bearer " + token}


def jwt_claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# A tiny image: one real gzipped tar layer, an OCI config and manifest.


def make_image(label):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in (("etc/", None), ("etc/matrix.txt", label.encode() + b"\n")):
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    tar = buf.getvalue()
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"matrix": label}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    return {"blobs": [config, layer], "manifest": manifest, "digest": sha256(manifest)}


IMAGE = make_image("v1")          # tag v1 of every repository
VICTIM = make_image("victim")     # pushed before, and deleted by, delete rows


# --------------------------------------------------------------------------
# Principals


class Principal:
    def __init__(self, spec, secrets, pats):
        self.spec = spec
        self.via = "basic"
        name = spec
        if "@" in spec:
            name, self.via = spec.split("@", 1)
        if name == "anon":
            self.kind, self.name, self.secret = "anon", "", None
        elif name == "badpw":
            self.kind, self.name, self.secret = "user", "mallory", "not-the-password"
        elif name == "badrobot":
            self.kind, self.name, self.secret = "robot", "acme+writer", "0" * 40
        elif "+" in name:
            self.kind, self.name, self.secret = "robot", name, secrets[name]
        else:
            self.kind, self.name, self.secret = "user", name, secrets[name]
        self.pat = None
        if self.via == "pat":
            self.pat = pats.get(self.name)

    def basic_headers(self):
        return {} if self.kind == "anon" else basic(self.name, self.secret)

    def api_headers(self):
        if self.via == "pat":
            if not self.pat:
                raise SetupError("no personal API token for %s" % self.name)
            return bearer(self.pat)
        return self.basic_headers()


# --------------------------------------------------------------------------
# The matrix run


class Matrix:
    def __init__(self, args):
        self.args = args
        self.http = Http(args.url, args.verbose)
        self.secrets = dict(PASSWORDS)
        self.secrets["admin"] = args.admin_password
        self.pats = {}
        self.runtag = os.urandom(3).hex()
        self.has_api = False
        self.copies = {}

    # --- helpers over HTTP

    def cli(self, *argv, stdin=None):
        r = subprocess.run([self.args.wharf, *argv, "--data-dir", self.args.data_dir],
                           input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            raise SetupError("wharf %s: %s" % (" ".join(argv), r.stderr.strip()))
        return r.stdout.strip()

    def token(self, headers, repo, actions="pull,push,delete"):
        q = urllib.parse.urlencode({"service": "wharf",
                                    "scope": "repository:%s:%s" % (repo, actions)})
        r = self.http.request("GET", "/v2/auth?" + q, headers)
        if r.status != 200:
            return r.status, None, []
        tok = (r.json() or {}).get("token", "")
        granted = []
        for a in jwt_claims(tok).get("access") or []:
            if a.get("type") == "repository" and a.get("name") == repo:
                granted += a.get("actions", [])
        return 200, tok, granted

    def admin_headers(self):
        return basic("admin", self.secrets["admin"])

    def push_image(self, headers, repo, image, tag):
        """Pushes the image's blobs (when missing) and manifest; returns the
        manifest status."""
        st, tok, _ = self.token(headers, repo, "pull,push")
        if st != 200:
            raise SetupError("token for %s: %d" % (repo, st))
        auth = bearer(tok)
        for blob in image["blobs"]:
            d = sha256(blob)
            if self.http.request("HEAD", "/v2/%s/blobs/%s" % (repo, d), auth).status == 200:
                continue
            r = self.http.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), auth, blob)
            if r.status != 201:
                raise SetupError("blob push to %s: %d %r" % (repo, r.status, r.body[:200]))
        r = self.http.request("PUT", "/v2/%s/manifests/%s" % (repo, tag),
                              dict(auth, **{"Content-Type": MT_MANIFEST}), image["manifest"])
        if r.status != 201:
            raise SetupError("manifest push to %s:%s: %d %r" % (repo, tag, r.status, r.body[:200]))

    def api_call(self, method, path, body=None, headers=None):
        return self.http.request(method, "/api/v1" + path, headers or self.admin_headers(), body)

    # --- fixtures

    def db(self):
        return sqlite3.connect(os.path.join(self.args.data_dir, "wharf.db"), timeout=30)

    def setup_team(self, team, role, members):
        # Through the management API (Quay's team endpoints) when it has them;
        # the admin CLI has no team commands, so otherwise straight into the
        # account store (sqlite, WAL; the server reads it on every decision).
        if self.has_api:
            r = self.api_call("PUT", "/organization/%s/team/%s" % (ORG, team), {"role": role})
            if r.status in (200, 201):
                for m in members:
                    r = self.api_call("PUT", "/organization/%s/team/%s/members/%s" % (ORG, team, m), {})
                    if r.status not in (200, 201, 204):
                        raise SetupError("adding %s to team %s: %d %r" % (m, team, r.status, r.body[:200]))
                return
        roles = {"member": 1, "creator": 2, "admin": 3}
        with self.db() as db:
            org_id = db.execute("SELECT id FROM accounts WHERE name=? AND is_org=1", (ORG,)).fetchone()[0]
            db.execute("INSERT OR IGNORE INTO teams(org_id,name,role,description) VALUES(?,?,?,'')",
                       (org_id, team, roles[role]))
            team_id = db.execute("SELECT id FROM teams WHERE org_id=? AND name=?", (org_id, team)).fetchone()[0]
            for m in members:
                uid = db.execute("SELECT id FROM accounts WHERE name=?", (m,)).fetchone()[0]
                db.execute("INSERT OR IGNORE INTO team_members(team_id,kind,member_id) VALUES(?,1,?)",
                           (team_id, uid))

    def grant(self, repo, kind, subject, role):
        if self.has_api:
            r = self.api_call("PUT", "/repository/%s/permissions/%s/%s" % (repo, kind, subject), {"role": role})
            if r.status in (200, 201, 204):
                return
            raise SetupError("granting %s %s on %s: %d %r" % (kind, subject, role, r.status, r.body[:200]))
        self.cli("perm", "grant", repo, "--" + kind, subject, "--role", role)

    def set_public(self, repo, public):
        if self.has_api:
            r = self.api_call("POST", "/repository/%s/changevisibility" % repo,
                              {"visibility": "public" if public else "private"})
            if r.status in (200, 201, 204):
                return
            raise SetupError("changevisibility %s: %d %r" % (repo, r.status, r.body[:200]))
        with self.db() as db:  # no CLI for visibility: the settings row directly
            n = db.execute("UPDATE repo_settings SET is_public=? WHERE name=?", (int(public), repo)).rowcount
        if n != 1:
            raise SetupError("no settings row for %s" % repo)

    def setup_repo(self, repo, public):
        """An acme repository as the matrix expects it: image v1 pushed by
        admin, the standard grants, the visibility."""
        self.push_image(self.admin_headers(), repo, IMAGE, "v1")
        if repo.startswith(ORG + "/"):
            for kind, subject, role in ACME_GRANTS:
                self.grant(repo, kind, subject, role)
        self.set_public(repo, public)

    def setup(self):
        r = self.http.request("GET", "/api/v1/user/", self.admin_headers())
        self.has_api = r.status == 200
        if not self.has_api:
            print("note: the management API does not answer (GET /api/v1/user/ -> %d); "
                  "fixtures fall back to the CLI and the account store" % r.status)
        for robot in ROBOTS:
            self.secrets[robot] = self.cli("robot", "token", robot)
        for team, (role, members) in TEAMS.items():
            self.setup_team(team, role, members)
        self.setup_repo("acme/private", False)
        self.setup_repo("acme/public", True)
        # alice's own repository, pushed by alice; her robot may write there.
        self.push_image(basic("alice", self.secrets["alice"]), "alice/own", IMAGE, "v1")
        self.grant("alice/own", "robot", "alice+bot", "write")
        if self.has_api:
            for user in PASSWORDS:
                if user == "mallory":
                    continue
                r = self.http.request("POST", "/api/v1/user/tokens", basic(user, self.secrets[user]),
                                      {"name": "matrix"})
                tok = (r.json() or {}).get("token") if r.status in (200, 201) else None
                if tok:
                    self.pats[user] = tok

    def target(self, row_id, spec):
        """Resolves a row's target to a repository (or namespace) name."""
        if spec.endswith("*"):
            base = spec[:-1]
            name = "%s-%s-%s" % (base, row_id.lower(), self.runtag)
            self.setup_repo(name, base.endswith("public"))
            return name
        if spec.endswith("/new"):
            return "%s-%s-%s" % (spec, row_id.lower(), self.runtag)
        return spec

    # --- observations

    @staticmethod
    def v2_status(r):
        out = str(r.status)
        if r.status == 401 and 'error="insufficient_scope"' not in (r.h("WWW-Authenticate") or ""):
            out += " no-insufficient_scope"
        return out

    def registry_token(self, p, repo):
        st, tok, granted = self.token(p.basic_headers(), repo)
        if st != 200:
            raise Observed("token %d" % st)
        return tok, granted

    def op_token(self, p, repo, arg):
        st, _, granted = self.token(p.basic_headers(), repo)
        if st != 200:
            return str(st)
        order = ["pull", "push", "delete", "*"]
        return ",".join(a for a in order if a in granted) or "-"

    def op_pull(self, p, repo, arg):
        tok, _ = self.registry_token(p, repo)
        r = self.http.request("GET", "/v2/%s/manifests/v1" % repo,
                              dict(bearer(tok), Accept=MT_MANIFEST))
        return self.v2_status(r)

    def op_push(self, p, repo, arg):
        tok, _ = self.registry_token(p, repo)
        data = os.urandom(64)
        r = self.http.request("POST", "/v2/%s/blobs/uploads/" % repo, bearer(tok))
        if r.status != 202:
            return self.v2_status(r)
        loc = r.h("Location") or ""
        loc += ("&" if "?" in loc else "?") + "digest=" + sha256(data)
        r = self.http.request("PUT", loc, dict(bearer(tok), **{"Content-Type": "application/octet-stream"}), data)
        out = self.v2_status(r)
        if r.status == 201 and "/new-" in repo:
            _, _, anon = self.token({}, repo, "pull")
            if "pull" in anon:
                out += " public"
        return out

    def op_delete(self, p, repo, arg):
        self.push_image(self.admin_headers(), repo, VICTIM, "victim")
        tok, _ = self.registry_token(p, repo)
        r = self.http.request("DELETE", "/v2/%s/manifests/%s" % (repo, VICTIM["digest"]), bearer(tok))
        return self.v2_status(r)

    def squash_headers(self, p, repo):
        if p.via == "jwt":
            tok, _ = self.registry_token(p, repo)
            return bearer(tok)
        return p.basic_headers()

    def op_squash(self, p, repo, arg):
        r = self.http.request("HEAD", "/c1/squash/%s/v1" % repo, self.squash_headers(p, repo))
        return str(r.status)

    def op_squash_get(self, p, repo, arg):
        r = self.http.request("GET", "/c1/squash/%s/v1" % repo, self.squash_headers(p, repo))
        out = str(r.status)
        if r.status == 200:
            try:
                with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
                    if "manifest.json" not in tf.getnames():
                        out += " not-a-tar"
            except tarfile.TarError:
                out += " not-a-tar"
        return out

    def op_prime(self, p, repo, arg):
        r = self.http.request("POST", "/c1/squash/%s/v1/prime" % repo, self.squash_headers(p, repo))
        return str(r.status)

    # --- management API

    def api(self, p, method, path, body=None):
        r = self.http.request(method, "/api/v1" + path, p.api_headers(), body)
        out = str(r.status)
        if r.status == 401 and (r.h("WWW-Authenticate") or "").lower().startswith("basic"):
            out += " basic-challenge"
        return r, out

    def op_api_user(self, p, target, arg):
        return self.api(p, "GET", "/user/")[1]

    def op_api_repo_list(self, p, ns, arg):
        r, out = self.api(p, "GET", "/repository?namespace=" + ns)
        if r.status == 200:
            body = r.json() or {}
            repos = body.get("repositories", body if isinstance(body, list) else [])
            names = set()
            for x in repos:
                n = x.get("name", "") if isinstance(x, dict) else str(x)
                full = n if "/" in n else "%s/%s" % (x.get("namespace", ns), n)
                if full in ("acme/private", "acme/public", "alice/own"):
                    names.add(full)
            out += " " + (",".join(sorted(names)) or "-")
        return out

    def op_api_repo_get(self, p, repo, arg):
        return self.api(p, "GET", "/repository/" + repo)[1]

    def op_api_repo_put(self, p, repo, arg):
        return self.api(p, "PUT", "/repository/" + repo, {"description": "set by %s" % p.spec})[1]

    def op_api_visibility(self, p, repo, arg):
        vis = "private" if repo.startswith("acme/public") else "public"
        return self.api(p, "POST", "/repository/%s/changevisibility" % repo, {"visibility": vis})[1]

    def op_api_repo_delete(self, p, repo, arg):
        return self.api(p, "DELETE", "/repository/" + repo)[1]

    def op_api_repo_create(self, p, repo, arg):
        ns, name = repo.split("/", 1)
        return self.api(p, "POST", "/repository",
                        {"namespace": ns, "repository": name, "visibility": "private"})[1]

    def op_api_tags(self, p, repo, arg):
        return self.api(p, "GET", "/repository/%s/tag/" % repo)[1]

    def op_api_tag_delete(self, p, repo, arg):
        return self.api(p, "DELETE", "/repository/%s/tag/v1" % repo)[1]

    def op_api_perms(self, p, repo, arg):
        return self.api(p, "GET", "/repository/%s/permissions/" % repo)[1]

    def op_api_perm_put(self, p, repo, arg):
        kind, subject = (arg or "user:alice").split(":", 1)
        return self.api(p, "PUT", "/repository/%s/permissions/%s/%s" % (repo, kind, subject),
                        {"role": "read"})[1]

    def op_api_robots(self, p, ns, arg):
        return self.api(p, "GET", "/namespace/%s/robots" % ns)[1]

    def op_api_robot(self, p, target, arg):
        ns, short = target.split("/", 1)
        r, out = self.api(p, "GET", "/namespace/%s/robots/%s" % (ns, short))
        if r.status == 200:
            if "no-store" not in (r.h("Cache-Control") or ""):
                out += " cacheable"
            tok = (r.json() or {}).get("token")
            if tok != self.secrets.get("%s+%s" % (ns, short)):
                out += " wrong-token"
        return out

    def op_api_members(self, p, org, arg):
        return self.api(p, "GET", "/organization/%s/members" % org)[1]

    def op_api_logs(self, p, repo, arg):
        return self.api(p, "GET", "/repository/%s/logs" % repo)[1]

    def op_api_pat_create(self, p, target, arg):
        return self.api(p, "POST", "/user/tokens", {"name": "matrix-row"})[1]

    # --- rows

    def run_row(self, row):
        op = getattr(self, "op_" + row["op"].replace("-", "_"), None)
        if op is None:
            return "unknown op"
        p = Principal(row["principal"], self.secrets, self.pats)
        arg = None
        spec = row["target"]
        if "#" in spec:
            spec, arg = spec.split("#", 1)
        try:
            target = self.target(row["id"], spec)
            return op(p, target, arg)
        except Observed as e:
            return str(e)


class Observed(Exception):
    """An outcome reached before the row's own request (e.g. no token)."""


def load_rows(path):
    rows, ids = [], set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) < 5:
                raise SystemExit("%s:%d: expected 5 tab-separated columns" % (path, n))
            row = dict(zip(("id", "principal", "op", "target", "expect"), cols[:5]))
            if row["id"] in ids:
                raise SystemExit("%s:%d: duplicate row id %s" % (path, n, row["id"]))
            ids.add(row["id"])
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--wharf", required=True, help="the wharf binary (admin CLI)")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--admin-password", required=True)
    ap.add_argument("--rows", default=os.path.join(HERE, "matrix.tsv"))
    ap.add_argument("-k", help="only rows whose id, principal, op or target matches this regex")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every row and request")
    args = ap.parse_args()

    rows = load_rows(args.rows)
    if args.k:
        k = re.compile(args.k)
        rows = [r for r in rows if k.search("\t".join((r["id"], r["principal"], r["op"], r["target"])))]
    started = time.monotonic()
    m = Matrix(args)
    try:
        m.setup()
    except SetupError as e:
        print("setup failed: %s" % e)
        return 2
    setup_s = time.monotonic() - started
    failed = 0
    for row in rows:
        try:
            observed = m.run_row(row)
        except SetupError as e:
            observed = "setup failed: %s" % e
        ok = observed == row["expect"]
        if not ok:
            failed += 1
        if not ok or args.verbose:
            print("%s %-8s %-14s %-12s %-22s expected %-26s observed %s" % (
                "FAIL" if not ok else "ok  ", row["id"], row["principal"], row["op"], row["target"],
                repr(row["expect"]), repr(observed)))
    total = time.monotonic() - started
    print("matrix: %d rows, %d passed, %d failed (%.1fs, setup %.1fs)" % (
        len(rows), len(rows) - failed, failed, total, setup_s))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
