#!/usr/bin/python3
"""Regression checks for the findings of the security review of accounts
(tests/auth/hardening.sh starts the server). Each check names what it guards.

usage: hardening.py URL ADMIN_PASSWORD WHARF_BIN DATA_DIR
Repositories legacy/app and acme/app were pushed before accounts existed."""
import base64, json, subprocess, sys, time, urllib.parse

sys.path.insert(0, __import__("os").path.dirname(__file__))
from matrix import Http, basic, bearer, jwt_claims, make_image, sha256, MT_MANIFEST  # noqa: E402

URL, ADMIN_PW, WHARF, DATA = sys.argv[1:5]
http = Http(URL)
failures = []


def check(name, ok, detail=""):
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + detail))
    if not ok:
        failures.append(name)


def cli(*args, stdin=None):
    return subprocess.run([WHARF, *args, "--data-dir", DATA], input=stdin, capture_output=True, text=True, check=True).stdout


def api(creds, method, path, body=None, headers=None):
    h = dict(basic(*creds), **(headers or {}))
    return http.request(method, "/api/v1/" + path, h, body)


def token(creds, scope, extra=""):
    q = "service=wharf&" + "&".join("scope=" + urllib.parse.quote(s) for s in scope) + extra
    r = http.request("GET", "/v2/auth?" + q, basic(*creds) if creds else {})
    return r, (r.json() or {}).get("token", "")


def push(creds, repo, label, tag="v1"):
    img = make_image(label)
    r, tok = token(creds, ["repository:%s:pull,push" % repo])
    for blob in img["blobs"]:
        rr = http.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(blob)), bearer(tok), blob)
        if rr.status != 201:
            return rr.status
    return http.request("PUT", "/v2/%s/manifests/%s" % (repo, tag),
                        dict(bearer(tok), **{"Content-Type": MT_MANIFEST}), img["manifest"]).status


admin = ("admin", ADMIN_PW)
for u in ("bob", "carol"):
    cli("user", "create", u, "--password-stdin", stdin=u + "-password-1\n")
bob, carol = ("bob", "bob-password-1"), ("carol", "carol-password-1")

# 1. A namespace with repositories but no account cannot be claimed by a user.
r = api(bob, "POST", "organization/", {"name": "legacy"})
check("org over pre-existing repositories refused for users (409)", r.status == 409, "%d %r" % (r.status, r.body[:200]))
check("... and bob still cannot read legacy/app", api(bob, "GET", "repository/legacy/app").status == 404)
r = api(admin, "POST", "organization/", {"name": "legacy"})
check("a superuser may adopt it", r.status == 201, str(r.status))

# 2. Write on a repository that predates accounts does not become admin.
cli("org", "create", "acme", "--owner", "admin")
cli("perm", "grant", "acme/app", "--user", "carol", "--role", "write")
check("writer pushes to a pre-accounts repository", push(carol, "acme/app", "carol") == 201)
info = api(carol, "GET", "repository/acme/app").json() or {}
check("... and stays a writer (no admin)", info.get("can_write") is True and info.get("can_admin") is False, str(info))
check("... and the repository stays private", info.get("is_public") is False, str(info))

# 3. A deleted and re-created robot does not honour its predecessor's tokens.
cli("robot", "create", "bob+ci")
cli("perm", "grant", "bob/x", "--robot", "bob+ci", "--role", "write")
tok1 = cli("robot", "token", "bob+ci").strip()
r = http.request("GET", "/v2/auth?service=wharf&offline_token=true&scope=repository:bob/x:pull", basic("bob+ci", tok1))
refresh = (r.json() or {}).get("refresh_token", "")
check("robot gets a refresh token", r.status == 200 and refresh != "", str(r.status))
check("robot deleted", api(bob, "DELETE", "namespace/bob/robots/ci").status == 204)
cli("robot", "create", "bob+ci")
cli("perm", "grant", "bob/x", "--robot", "bob+ci", "--role", "write")
r = http.request("POST", "/v2/auth", {"Content-Type": "application/x-www-form-urlencoded"},
                 ("grant_type=refresh_token&service=wharf&scope=repository:bob/x:pull&refresh_token=" + refresh).encode())
check("the old robot's refresh token is refused after re-creation (401)", r.status == 401, "%d %r" % (r.status, r.body[:200]))

# 4. Huge user names cost nothing and are not kept.
r = http.request("POST", "/api/v1/signin", {"Content-Type": "application/json"},
                 json.dumps({"username": "x" * 500000, "password": "y"}).encode())
check("a 500 KB user name is a plain 401", r.status == 401, str(r.status))
# Refused before any work: 120 of them (more than the per-address budget of
# 100) take no failure slot, so the right password still works from here.
statuses = {http.request("GET", "/v2/auth?service=wharf", basic("y%d" % i + "z" * 40000, "pw")).status for i in range(120)}
check("120 over-long user names: all 401", statuses == {401}, str(statuses))
r, _ = token(admin, [])
check("... and they cost this address nothing (admin still gets a token)", r.status == 200, str(r.status))

# 5. Personal API tokens die with a password change.
r = api(carol, "POST", "user/tokens", {"name": "script"})
pat = (r.json() or {}).get("token", "")
check("PAT works", http.request("GET", "/api/v1/user/", bearer(pat)).status == 200)
r = api(carol, "PUT", "user/password", {"current_password": carol[1], "new_password": "carol-password-2"})
check("password changed", r.status == 204, str(r.status))
check("the PAT stops working with the old password (401)", http.request("GET", "/api/v1/user/", bearer(pat)).status == 401)
carol = ("carol", "carol-password-2")

# The audit log records who did what from where: logins (and failed ones),
# token grants, pushes, deletions, permission changes (API and CLI), robot
# token views and squash pulls.
puller = cli("robot", "create", "acme+puller").strip()
check("grant through the API", api(admin, "PUT", "repository/acme/app/permissions/robot/acme+puller", {"role": "read"}).status == 200)
check("squash pull by a robot", http.request("GET", "/c1/squash/acme/app/v1", basic("acme+puller", puller)).status == 200)
check("robot token view", api(admin, "GET", "namespace/acme/robots/puller").status == 200)
check("tag deletion", api(admin, "DELETE", "repository/acme/app/tag/v1").status == 204)
r = http.request("POST", "/api/v1/signin", {"Content-Type": "application/json"},
                 json.dumps({"username": "carol", "password": "carol-password-2"}).encode())
check("sign-in", r.status == 200, str(r.status))
check("a wrong password", api(("carol", "not-her-password"), "GET", "user/").status == 401)
events = (api(admin, "GET", "superuser/logs?limit=1000").json() or {}).get("logs", [])
def logged(action, actor, kind, repo=None, **detail):
    return any(e["action"] == action and e["actor"] == actor and e["actor_kind"] == kind and
               (repo is None or e["repository"] == repo) and e["address"] == "127.0.0.1" and
               all(e["detail"].get(k) == v for k, v in detail.items()) for e in events)
for what, ok in [
        ("carol's token grant", logged("token_grant", "carol", "user", "acme/app", credential="password")),
        ("carol's push", logged("push", "carol", "user", "acme/app", tag="v1")),
        ("the API grant", logged("permission", "admin", "user", "acme/app", name="acme+puller", role="read")),
        ("the squash pull", logged("squash_pull", "acme+puller", "robot", "acme/app", reference="v1")),
        ("the token view", logged("robot_token_view", "admin", "user", robot="acme+puller")),
        ("the deletion", logged("delete", "admin", "user", "acme/app", reference="v1")),
        ("carol's sign-in", logged("login", "carol", "user", via="ui")),
        ("the failed login", logged("login_failed", "carol", "unknown", account="carol")),
        ("the CLI grant", any(e["action"] == "permission" and e["actor_kind"] == "cli" and e["repository"] == "acme/app"
                              and e["detail"].get("name") == "carol" for e in events))]:
    check("audit log has " + what, ok)
check("no secret in the audit log", not any(s_ in json.dumps(events) for s_ in (puller, "carol-password-2", "not-her-password", ADMIN_PW)))

# 7. A re-created organization does not inherit the old one's audit log.
check("bob creates org shared", api(bob, "POST", "organization/", {"name": "shared"}).status == 201)
api(bob, "PUT", "namespace/shared/robots/deploy", {})
check("bob deletes it", api(bob, "DELETE", "organization/shared").status == 204)
check("carol creates org shared", api(carol, "POST", "organization/", {"name": "shared"}).status == 201)
logs = (api(carol, "GET", "organization/shared/logs").json() or {}).get("logs", [])
check("... and sees none of bob's events", all(e["actor"] != "bob" for e in logs), json.dumps(logs)[:300])
sup = (api(admin, "GET", "superuser/logs?limit=1000").json() or {}).get("logs", [])
check("superusers still see them", any(e["actor"] == "bob" and e["action"] == "robot_create" for e in sup))

# 8. A user name that is not UTF-8 is a 401, not a 500.
r = http.request("GET", "/v2/auth?service=wharf", {"Authorization": "Basic " + base64.b64encode(b"m\xfcller:pw").decode()})
check("Latin-1 user name: 401", r.status == 401, str(r.status))
r = http.request("GET", "/api/v1/superuser/logs?limit=5", basic(*admin))
check("... and the audit log still reads (200)", r.status == 200, str(r.status))

# 9. Origin: null is cross-site for state changes.
r = api(carol, "POST", "organization/", {"name": "nullorigin"}, {"Origin": "null"})
check("Origin: null refused (403)", r.status == 403, str(r.status))

# 11. Token requests are bounded.
r, _ = token(None, ["repository:x/y%d:pull" % i for i in range(100)])
check("100 scopes in one token request: 400", r.status == 400, str(r.status))

# 12. Disabling a user ends every credential of theirs at once (API), and
# enabling gives back only the password; deleting is refused while their
# namespace holds repositories.
cli("user", "create", "dave", "--password-stdin", stdin="dave-password-1\n")
dave = ("dave", "dave-password-1")
check("dave pushes to his namespace", push(dave, "dave/app", "dave") == 201)
r = http.request("POST", "/api/v1/signin", {"Content-Type": "application/json"},
                 json.dumps({"username": "dave", "password": "dave-password-1"}).encode())
cookie = (r.h("Set-Cookie") or "").split(";")[0]
dpat = (api(dave, "POST", "user/tokens", {"name": "ci"}).json() or {}).get("token", "")
r = http.request("GET", "/v2/auth?service=wharf&offline_token=true&scope=repository:dave/app:pull", basic(*dave))
dtok, drefresh = (r.json() or {}).get("token", ""), (r.json() or {}).get("refresh_token", "")
def dave_access():
    return {
        "session": http.request("GET", "/api/v1/user/", {"Cookie": cookie}).status,
        "pat": http.request("GET", "/api/v1/user/", bearer(dpat)).status,
        "registry token": http.request("GET", "/v2/dave/app/manifests/v1", dict(bearer(dtok), Accept=MT_MANIFEST)).status,
        "refresh token": http.request("POST", "/v2/auth", {"Content-Type": "application/x-www-form-urlencoded"},
                                      ("grant_type=refresh_token&service=wharf&scope=repository:dave/app:pull&refresh_token="
                                       + drefresh).encode()).status,
        "password": token(dave, ["repository:dave/app:pull"])[0].status,
    }
before = dave_access()
check("dave's session, PAT, registry token, refresh token and password all work", set(before.values()) == {200}, str(before))
r = api(admin, "PUT", "superuser/users/dave", {"enabled": False})
check("a superuser disables dave (200)", r.status == 200, "%d %r" % (r.status, r.body[:200]))
after = dave_access()
check("... and at once none of dave's credentials works (401)", set(after.values()) == {401}, str(after))
r = token(dave, ["repository:dave/app:pull"])[0]
check("... his sign-in says the account is disabled", b"disabled" in r.body, r.body[:200])
check("a non-superuser cannot disable users (403)", api(carol, "PUT", "superuser/users/bob", {"enabled": False}).status == 403)
check("a superuser cannot disable themselves (400)", api(admin, "PUT", "superuser/users/admin", {"enabled": False}).status == 400)
users = {u["username"]: u for u in (api(admin, "GET", "superuser/users").json() or {}).get("users", [])}
check("the user list shows dave disabled", users.get("dave", {}).get("enabled") is False, str(users.get("dave")))
check("enabled again", api(admin, "PUT", "superuser/users/dave", {"enabled": True}).status == 200)
again = dave_access()
check("... the password works again, the old PAT, session and tokens do not",
      again["password"] == 200 and again["pat"] == 401 and again["session"] == 401 and again["registry token"] == 401,
      str(again))
r = api(admin, "DELETE", "superuser/users/dave")
check("deleting dave while dave/app exists is refused (409, says why)", r.status == 409 and b"repositories" in r.body,
      "%d %r" % (r.status, r.body[:200]))
check("dave/app deleted", api(admin, "DELETE", "repository/dave/app").status == 204)
r = api(admin, "DELETE", "superuser/users/dave")
check("then dave is deleted (204)", r.status == 204, "%d %r" % (r.status, r.body[:200]))
check("... and his password no longer works", token(dave, ["repository:dave/app:pull"])[0].status == 401)
sup = (api(admin, "GET", "superuser/logs?limit=1000").json() or {}).get("logs", [])
for act in ("user_disable", "user_enable", "user_delete"):
    check("audit log has %s of dave by admin" % act,
          any(e["action"] == act and e["actor"] == "admin" and e["detail"].get("user") == "dave" for e in sup))
# CLI: the same, while the server runs
cli("user", "create", "erin", "--password-stdin", stdin="erin-password-1\n")
erin = ("erin", "erin-password-1")
_, etok = token(erin, ["repository:erin/x:pull"])
cli("user", "disable", "erin")
check("wharf user disable: erin's registry token stops at once",
      http.request("GET", "/v2/", bearer(etok)).status == 401)
check("... and her password", token(erin, ["repository:erin/x:pull"])[0].status == 401)
cli("user", "enable", "erin")
check("wharf user enable: her password works again", token(erin, ["repository:erin/x:pull"])[0].status == 200)
cli("user", "delete", "erin")
check("wharf user delete: she is gone", token(erin, ["repository:erin/x:pull"])[0].status == 401)

# 13. A user deleted and a new one of the same name: the new one sees none of
# the old one's events; likewise a repository deleted and created again.
cli("user", "create", "dave", "--password-stdin", stdin="dave-password-2\n")
dave2 = ("dave", "dave-password-2")
mine = (api(dave2, "GET", "user/logs").json() or {}).get("logs", [])
check("the new dave sees none of the old dave's events (he pushed, signed in, made a token)",
      not any(e["action"] in ("push", "login", "api_token_create", "user_disable", "token_grant") for e in mine),
      json.dumps(mine)[:300])
check("admin creates acme/reborn", api(admin, "POST", "repository", {"namespace": "acme", "repository": "reborn", "visibility": "private"}).status == 201)
check("push to acme/reborn", push(admin, "acme/reborn", "first-life") == 201)
old = (api(admin, "GET", "repository/acme/reborn/logs").json() or {}).get("logs", [])
check("its log has the push", any(e["action"] == "push" for e in old), json.dumps(old)[:300])
check("acme/reborn deleted", api(admin, "DELETE", "repository/acme/reborn").status == 204)
check("and created again", api(admin, "POST", "repository", {"namespace": "acme", "repository": "reborn", "visibility": "private"}).status == 201)
new = (api(admin, "GET", "repository/acme/reborn/logs").json() or {}).get("logs", [])
check("the new acme/reborn's log has none of the old one's events", not any(e["action"] == "push" for e in new),
      json.dumps(new)[:300])

# 14. A token pasted as the user name is not written to the audit log, in any
# form that reveals or can be searched for it; equal names group together.
secret_name = "wharf_pat_" + "Zq8" * 12
for _ in range(2):
    token((secret_name, "x"), ["repository:acme/app:pull"])
sup = (api(admin, "GET", "superuser/logs?limit=1000").json() or {}).get("logs", [])
fails = [e for e in sup if e["action"] == "login_failed" and "unknown_account" in e["detail"]]
text = json.dumps(sup)
import hashlib
check("a failed login with an unknown name records a keyed hash of it", len(fails) >= 2, json.dumps(fails)[:300])
check("... never the name, a prefix of it, or its plain hash",
      secret_name not in text and secret_name[:12] not in text and hashlib.sha256(secret_name.encode()).hexdigest()[:16] not in text)
check("... and the same name gives the same hash",
      len({e["detail"]["unknown_account"] for e in fails[:2]}) == 1, json.dumps(fails[:2]))

# 15. API JSON says nosniff, like the UI.
r = api(admin, "GET", "user/")
check("API responses carry X-Content-Type-Options: nosniff", r.h("X-Content-Type-Options") == "nosniff", str(r.h("X-Content-Type-Options")))
r = http.request("GET", "/api/v1/nothing-here", basic(*admin))
check("... errors too", r.status == 404 and r.h("X-Content-Type-Options") == "nosniff", "%d %s" % (r.status, r.h("X-Content-Type-Options")))

# Auto-prime set per repository through the management API: a push of a tag
# there builds its squash cache entry; a repository without it is not primed.
check("auto_prime on through the API",
      (api(admin, "PUT", "repository/acme/app", {"auto_prime": True}).json() or {}).get("auto_prime") is True)
check("push to acme/app:auto", push(admin, "acme/app", "autoprime", tag="auto") == 201)
check("push to legacy/app:auto", push(admin, "legacy/app", "not-autoprimed", tag="auto") == 201)
def squash_cached(repo, tag):
    r = http.request("HEAD", "/c1/squash/%s/%s" % (repo, tag), basic(*admin))
    return r.status == 200 and r.h("Accept-Ranges") == "bytes"
for _ in range(100):
    if squash_cached("acme/app", "auto"):
        break
    time.sleep(0.1)
check("a push to a repository with auto_prime builds its squash entry", squash_cached("acme/app", "auto"))
check("... and a repository without it is not primed", not squash_cached("legacy/app", "auto"))

# 6. One address guessing many accounts runs out of its own budget (last: it
# blocks this address). 100 failures (auth.max_failed_logins_per_address).
# Earlier checks already spent a few failures of this address's budget.
statuses = [http.request("GET", "/v2/auth?service=wharf", basic("nobody%d" % i, "guess")).status for i in range(100)]
first = statuses.index(429) if 429 in statuses else -1
check("guesses at ever new accounts: 401 until the address's budget is spent, then 429",
      first > 80 and all(s == 401 for s in statuses[:first]) and all(s == 429 for s in statuses[first:]),
      "first 429 at %d, statuses %s" % (first, sorted(set(statuses))))
r = http.request("GET", "/v2/auth?service=wharf", basic(*admin))
check("... then this address is refused even for a right password (429 + Retry-After)",
      r.status == 429 and r.h("Retry-After") is not None, str(r.status))

print("%d checks failed" % len(failures) if failures else "all hardening checks passed")
sys.exit(1 if failures else 0)
