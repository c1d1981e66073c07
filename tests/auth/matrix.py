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

Each run needs a fresh server (what matrix.sh gives it): the revoke rows
change the credentials of rotor and acme+rotor, and the wrong-secret rows
count towards the failed-login limit. Rows do not depend on one another's
order (rows that change state work on copies or restore what they use).

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
    NAME@jwt           a registry token from /v2/auth (asked for
                       pull,push,delete on the target) instead of Basic: the
                       squash endpoint takes it, the API must not
    badpw / badrobot   user mallory / robot acme+writer with a wrong secret
target
    acme/private, acme/public, alice/own   shared repositories, never changed
    acme/private*, acme/public*, alice/own*
                                           a fresh copy made for this row
                                           alone (same image, grants and
                                           visibility): rows that change
                                           state use these
    NS/new             a repository that does not exist yet (unique per row)
    acme/missing       a repository that never exists
    NS, NS/SHORT       namespace rows (robots, members)
    TARGET#ARG         an argument for the op (mount source, permission
                       subject KIND:NAME of api-perm-put)
op and its observed value (the status, plus a word when a side effect is
wrong: the request was refused but happened anyway, or succeeded without
effect)
    token         actions of a registry token asked for pull,push,delete on
                  the target, in that order ("-" when none); else the status
    pull          GET manifest v1
    tags          GET tags/list
    push          a whole image (config, layer: POST then PUT ?digest=;
                  manifest under a new tag); for NS/new also " public" when
                  the new repository is readable anonymously, " pusher-
                  cannot-pull" when its creator cannot read it
    upload-other  PUT finishing an upload session that admin opened
    delete        DELETE of a manifest by digest (admin pushes it first)
    blob-delete   DELETE of a blob (admin pushes it first)
    mount         target DEST#SOURCE: POST ?mount=DIGEST&from=SOURCE of a blob
                  only SOURCE has (DEST#~SOURCE: without from). 201 mounted,
                  202 fell back to an upload (mounting needs read on SOURCE)
    catalog       GET /v2/_catalog: "200 " and which of the shared
                  repositories it lists
                  /v2/ answers of 401 get " no-insufficient_scope" when the
                  challenge lacks error="insufficient_scope" (every request
                  carries a token, anonymous ones included)
    squash        HEAD /c1/squash/REPO/v1
    squash-get    GET /c1/squash/REPO/v1 (" not-a-tar" unless a docker archive)
    prime         POST /c1/squash/REPO/v1/prime
    revoke        "B A S": pull with a fresh registry token (B), the same token
                  after the principal's password was set / robot token
                  regenerated with the CLI (A), squash HEAD with the old
                  Basic credentials (S); principals rotor / acme+rotor only
    api-*         management API calls (the op_api_* methods); a 401 gets
                  " basic-challenge" when it carries WWW-Authenticate: Basic
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
    "rotor": "rotor-pw-0001",   # only the revoke rows use rotor and acme+rotor
}
ROBOTS = ["acme+reader", "acme+writer", "alice+bot", "acme+rotor"]
# Grants every acme repository of the matrix carries (shared ones and
# per-row copies): (kind, subject, role).
ACME_GRANTS = [
    ("team", "readers", "read"),
    ("team", "writers", "write"),
    ("robot", "acme+reader", "read"),
    ("robot", "acme+writer", "write"),
    ("user", "repoadmin", "admin"),
    ("user", "rotor", "read"),
    ("robot", "acme+rotor", "read"),
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


SHARED = ("acme/private", "acme/public", "alice/own")  # repositories no row changes
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

    def actions_of(self, who, repo):
        """Actions a fresh registry token of `who` ("anon", a user or a
        robot) gets on `repo` when asking for pull,push,delete."""
        headers = {} if who == "anon" else basic(who, self.secrets[who])
        return self.token(headers, repo)[2]

    def manifest_status(self, repo, ref):
        """Status of GET manifest as admin (200 when it is there)."""
        _, tok, _ = self.token(self.admin_headers(), repo, "pull")
        return self.http.request("GET", "/v2/%s/manifests/%s" % (repo, ref),
                                 dict(bearer(tok), Accept=MT_MANIFEST)).status

    def repo_settings(self, repo):
        """The repository as admin sees it through the API (None: 404)."""
        r = self.api_call("GET", "/repository/" + repo)
        return r.json() if r.status == 200 else None

    def push_image(self, headers, repo, image, tag):
        """Pushes the image's blobs (when missing) and manifest (setup: any
        failure is a SetupError)."""
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

    def upload_blob(self, tok, repo, data):
        """POST then PUT ?digest=; returns the first status that is not the
        expected one (202, then 201), or 201."""
        r = self.http.request("POST", "/v2/%s/blobs/uploads/" % repo, bearer(tok))
        if r.status != 202:
            return r
        loc = r.h("Location") or ""
        loc += ("&" if "?" in loc else "?") + "digest=" + sha256(data)
        return self.http.request("PUT", loc, dict(bearer(tok), **{"Content-Type": "application/octet-stream"}), data)

    def admin_blob(self, repo):
        """A blob only `repo` has (pushed by admin); returns its digest."""
        data = b"blob of %s %s" % (repo.encode(), os.urandom(8).hex().encode())
        _, tok, _ = self.token(self.admin_headers(), repo, "pull,push")
        r = self.upload_blob(tok, repo, data)
        if r.status != 201:
            raise SetupError("admin blob push to %s: %d" % (repo, r.status))
        return sha256(data)

    def blob_status(self, repo, digest):
        _, tok, _ = self.token(self.admin_headers(), repo, "pull")
        return self.http.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest), bearer(tok)).status

    def api_call(self, method, path, body=None, headers=None):
        return self.http.request(method, "/api/v1" + path, headers or self.admin_headers(), body)

    # --- fixtures

    def setup_team(self, team, role, members):
        # The admin CLI has no team commands: the management API's.
        r = self.api_call("PUT", "/organization/%s/team/%s" % (ORG, team), {"role": role})
        if r.status not in (200, 201):
            raise SetupError("creating team %s: %d %r" % (team, r.status, r.body[:200]))
        for m in members:
            r = self.api_call("PUT", "/organization/%s/team/%s/members/%s" % (ORG, team, m), {})
            if r.status not in (200, 201, 204):
                raise SetupError("adding %s to team %s: %d %r" % (m, team, r.status, r.body[:200]))

    def grant(self, repo, kind, subject, role):
        self.cli("perm", "grant", repo, "--" + kind, subject, "--role", role)

    def set_public(self, repo, public):
        # No CLI for visibility: the API's (as admin).
        r = self.api_call("POST", "/repository/%s/changevisibility" % repo,
                          {"visibility": "public" if public else "private"})
        if r.status not in (200, 201, 204):
            raise SetupError("changevisibility %s: %d %r" % (repo, r.status, r.body[:200]))

    def setup_repo(self, repo, public):
        """A repository as the matrix expects it: image v1 pushed by admin,
        the standard grants of its namespace, the visibility."""
        self.push_image(self.admin_headers(), repo, IMAGE, "v1")
        if repo.startswith(ORG + "/"):
            for kind, subject, role in ACME_GRANTS:
                self.grant(repo, kind, subject, role)
        elif repo.startswith("alice/"):
            self.grant(repo, "robot", "alice+bot", "write")
        self.set_public(repo, public)

    def setup(self):
        r = self.http.request("GET", "/api/v1/user/", self.admin_headers())
        if r.status != 200:
            raise SetupError("the management API does not answer (GET /api/v1/user/ as admin -> %d); "
                             "teams and visibility are set up through it" % r.status)
        for robot in ROBOTS:
            self.secrets[robot] = self.cli("robot", "token", robot)
        for team, (role, members) in TEAMS.items():
            self.setup_team(team, role, members)
        self.setup_repo("acme/private", False)
        self.setup_repo("acme/public", True)
        # alice's own repository, pushed by alice; her robot may write there.
        self.push_image(basic("alice", self.secrets["alice"]), "alice/own", IMAGE, "v1")
        self.grant("alice/own", "robot", "alice+bot", "write")
        if (self.repo_settings("alice/own") or {}).get("is_public"):
            raise SetupError("alice/own was created public")
        for user in PASSWORDS:
            r = self.http.request("POST", "/api/v1/user/tokens", basic(user, self.secrets[user]),
                                  {"name": "matrix"})
            if r.status in (200, 201) and (r.json() or {}).get("token"):
                self.pats[user] = r.json()["token"]

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
        """Pushes a whole image: config and layer (POST, PUT ?digest=), then
        the manifest under a tag of its own."""
        tok, _ = self.registry_token(p, repo)
        image = make_image("pushed by %s %s" % (p.spec, os.urandom(4).hex()))
        for blob in image["blobs"]:
            r = self.upload_blob(tok, repo, blob)
            if r.status != 201:
                return self.v2_status(r)
        r = self.http.request("PUT", "/v2/%s/manifests/pushed-%s" % (repo, os.urandom(4).hex()),
                              dict(bearer(tok), **{"Content-Type": MT_MANIFEST}), image["manifest"])
        out = self.v2_status(r)
        if r.status == 201 and "/new-" in repo:
            # Created private; the creator may use what it created.
            if "pull" in self.actions_of("anon", repo):
                out += " public"
            if "pull" not in self.actions_of(p.name, repo):
                out += " pusher-cannot-pull"
        return out

    def op_mount(self, p, dest, source):
        """Cross-repository mount of a blob only `source` has (written
        "~SOURCE": the same without `from`): 201 when mounted, 202 when the
        registry fell back to an upload session. Mounting needs read on the
        source."""
        with_from = not source.startswith("~")
        source = source.lstrip("~")
        digest = self.admin_blob(source)
        tok, _ = self.registry_token(p, dest)
        q = {"mount": digest}
        if with_from:
            q["from"] = source
        r = self.http.request("POST", "/v2/%s/blobs/uploads/?%s" % (dest, urllib.parse.urlencode(q)), bearer(tok))
        out = self.v2_status(r)
        linked = self.blob_status(dest, digest) == 200
        if r.status == 201 and not linked:
            out += " not-linked"
        elif r.status != 201 and linked:
            out += " linked-anyway"
        return out

    def op_tags(self, p, repo, arg):
        tok, _ = self.registry_token(p, repo)
        return self.v2_status(self.http.request("GET", "/v2/%s/tags/list" % repo, bearer(tok)))

    def op_upload_other(self, p, repo, arg):
        """Finishes an upload session that admin opened in `repo`."""
        _, atok, _ = self.token(self.admin_headers(), repo, "pull,push")
        r = self.http.request("POST", "/v2/%s/blobs/uploads/" % repo, bearer(atok))
        if r.status != 202:
            raise SetupError("admin upload start in %s: %d" % (repo, r.status))
        data = os.urandom(32)
        loc = r.h("Location") or ""
        loc += ("&" if "?" in loc else "?") + "digest=" + sha256(data)
        tok, _ = self.registry_token(p, repo)
        r = self.http.request("PUT", loc, dict(bearer(tok), **{"Content-Type": "application/octet-stream"}), data)
        out = self.v2_status(r)
        there = self.blob_status(repo, sha256(data)) == 200
        if r.status != 201 and there:
            out += " stored-anyway"
        return out

    def op_blob_delete(self, p, repo, arg):
        digest = self.admin_blob(repo)
        tok, _ = self.registry_token(p, repo)
        r = self.http.request("DELETE", "/v2/%s/blobs/%s" % (repo, digest), bearer(tok))
        out = self.v2_status(r)
        left = self.blob_status(repo, digest)
        if r.status == 202 and left != 404:
            out += " still-there"
        elif r.status != 202 and left != 200:
            out += " deleted-anyway"
        return out

    def op_delete(self, p, repo, arg):
        self.push_image(self.admin_headers(), repo, VICTIM, "victim")
        tok, _ = self.registry_token(p, repo)
        r = self.http.request("DELETE", "/v2/%s/manifests/%s" % (repo, VICTIM["digest"]), bearer(tok))
        out = self.v2_status(r)
        left = self.manifest_status(repo, VICTIM["digest"])
        if r.status == 202 and left != 404:
            out += " still-there"
        elif r.status != 202 and left != 200:
            out += " deleted-anyway"
        return out

    def op_revoke(self, p, repo, arg):
        """A registry token, then the credential it came from changes
        (password set, robot token regenerated) with the admin CLI: "STATUS
        STATUS STATUS" of a pull with the token before, with it after, and
        of a squash HEAD with the old Basic credentials after."""
        tok, _ = self.registry_token(p, repo)
        url = "/v2/%s/manifests/v1" % repo
        before = self.http.request("GET", url, dict(bearer(tok), Accept=MT_MANIFEST)).status
        old = p.basic_headers()
        if p.kind == "robot":
            self.secrets[p.name] = self.cli("robot", "token", p.name, "--regenerate")
        else:
            self.secrets[p.name] = "%s-pw-%s" % (p.name, os.urandom(4).hex())
            self.cli("user", "passwd", p.name, "--password-stdin", stdin=self.secrets[p.name] + "\n")
        after = self.http.request("GET", url, dict(bearer(tok), Accept=MT_MANIFEST)).status
        squash = self.http.request("HEAD", "/c1/squash/%s/v1" % repo, old).status
        return "%d %d %d" % (before, after, squash)

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
        headers = p.api_headers()
        if p.via == "jwt":  # a registry token, which the API must refuse
            headers = bearer(self.registry_token(p, "%s/own" % p.name)[0])
        r = self.http.request(method, "/api/v1" + path, headers, body)
        out = str(r.status)
        if r.status == 401 and (r.h("WWW-Authenticate") or "").lower().startswith("basic"):
            out += " basic-challenge"
        return r, out

    def op_api_user(self, p, target, arg):
        return self.api(p, "GET", "/user/")[1]

    def op_api_repo_list(self, p, ns, arg):
        names, page, out = set(), "", None
        for _ in range(100):
            q = urllib.parse.urlencode({"namespace": ns, "limit": 500, "next_page": page})
            r, st = self.api(p, "GET", "/repository?" + q)
            out = out or st
            if r.status != 200:
                return st
            body = r.json() or {}
            for x in body.get("repositories", []):
                full = "%s/%s" % (x.get("namespace"), x.get("name"))
                if full in SHARED:
                    names.add(full)
            page = body.get("next_page")
            if not page:
                break
        return out + " " + (",".join(sorted(names)) or "-")

    def op_api_repo_get(self, p, repo, arg):
        return self.api(p, "GET", "/repository/" + repo)[1]

    def op_api_repo_put(self, p, repo, arg):
        desc = "set by %s %s" % (p.spec, os.urandom(4).hex())
        r, out = self.api(p, "PUT", "/repository/" + repo, {"description": desc})
        changed = (self.repo_settings(repo) or {}).get("description") == desc
        if r.status == 200 and not changed:
            out += " no-effect"
        elif r.status != 200 and changed:
            out += " changed-anyway"
        return out

    def op_api_visibility(self, p, repo, arg):
        public = not repo.startswith("acme/public")  # flip it
        r, out = self.api(p, "POST", "/repository/%s/changevisibility" % repo,
                          {"visibility": "public" if public else "private"})
        anon_reads = "pull" in self.actions_of("anon", repo)
        if anon_reads != public and r.status == 200:
            out += " no-effect"
        elif anon_reads == public and r.status != 200:
            out += " changed-anyway"
        return out

    def op_api_repo_delete(self, p, repo, arg):
        r, out = self.api(p, "DELETE", "/repository/" + repo)
        if r.status == 204:
            if self.repo_settings(repo) is not None:
                out += " still-listed"
            if self.manifest_status(repo, "v1") != 404:
                out += " image-kept"
            grantee = "alice+bot" if repo.startswith("alice/") else "twrite"
            if self.actions_of(grantee, repo):  # its grants go with it
                out += " grants-kept"
        elif self.manifest_status(repo, "v1") != 200:
            out += " deleted-anyway"
        return out

    def op_api_repo_create(self, p, repo, arg):
        ns, name = repo.split("/", 1)
        r, out = self.api(p, "POST", "/repository",
                          {"namespace": ns, "repository": name, "visibility": "private"})
        exists = self.repo_settings(repo) is not None
        if r.status == 201:
            if not exists:
                out += " not-created"
            if "pull" in self.actions_of("anon", repo):
                out += " public"
            if "pull" not in self.actions_of(p.name, repo):
                out += " creator-cannot-pull"
        elif exists:
            out += " created-anyway"
        return out

    def op_api_tags(self, p, repo, arg):
        return self.api(p, "GET", "/repository/%s/tag/" % repo)[1]

    def op_api_tag_delete(self, p, repo, arg):
        r, out = self.api(p, "DELETE", "/repository/%s/tag/v1" % repo)
        left = self.manifest_status(repo, "v1")
        if r.status == 204 and left != 404:
            out += " tag-kept"
        elif r.status != 204 and left != 200:
            out += " deleted-anyway"
        return out

    def op_api_perms(self, p, repo, arg):
        return self.api(p, "GET", "/repository/%s/permissions/" % repo)[1]

    def op_api_perm_put(self, p, repo, arg):
        """Grants write to a subject that has less (by default a user with
        nothing there; team readers and robot acme+reader: read) and checks
        a member's token."""
        default = "user:tread" if repo.startswith("alice/") else "user:alice"
        kind, subject = (arg or default).split(":", 1)
        member = {"user": subject, "robot": subject}.get(kind) or TEAMS[subject][1][0]
        r, out = self.api(p, "PUT", "/repository/%s/permissions/%s/%s" % (repo, kind, subject),
                          {"role": "write"})
        writes = "push" in self.actions_of(member, repo)
        if r.status == 200 and not writes:
            out += " no-effect"
        elif r.status != 200 and writes:
            out += " granted-anyway"
        return out

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
        r, out = self.api(p, "POST", "/user/tokens", {"name": "matrix-row"})
        if r.status == 201:
            if "no-store" not in (r.h("Cache-Control") or ""):
                out += " cacheable"
            tok = (r.json() or {}).get("token") or ""
            if not tok.startswith("wharf_pat_") or self.http.request(
                    "GET", "/api/v1/user/", bearer(tok)).status != 200:
                out += " token-unusable"
        return out

    def op_catalog(self, p, target, arg):
        q = urllib.parse.urlencode({"service": "wharf", "scope": "registry:catalog:*"})
        r = self.http.request("GET", "/v2/auth?" + q, p.basic_headers())
        if r.status != 200:
            return "token %d" % r.status
        tok = (r.json() or {}).get("token", "")
        names, target_ = set(), "/v2/_catalog?n=1000"
        for _ in range(100):
            r = self.http.request("GET", target_, bearer(tok))
            if r.status != 200:
                return self.v2_status(r)
            names |= {n for n in (r.json() or {}).get("repositories", []) if n in SHARED}
            m = re.search(r"<([^>]+)>", r.h("Link") or "")
            if not m:
                break
            target_ = m.group(1)
        return "200 " + (",".join(sorted(names)) or "-")

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
