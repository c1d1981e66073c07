#!/bin/bash
# Accounts and Docker token auth, end to end: real clients (Docker engine, podman,
# skopeo, containerd's ctr, curl | docker load) through the real token flow against a
# wharf started here with accounts on, plus exact-status checks of what must be refused.
# Usage: tests/auth/clients.sh          (as root; clients from tests/e2e/install-deps.sh)
# Environment: WHARF_BIN (default build/wharf; copied into the scratch dir at start, so a
#   rebuild during the run does not matter), E2E_VERBOSE=1 / E2E_KEEP=1 as in tests/e2e/lib.sh.
# Prints one PASS/FAIL line per test; exits non-zero if any failed.
#
# Two servers: A, under test (token_ttl 300 s; trusted_proxies 127.0.0.1; 5 failed logins
# per (address, account) in 300 s block that pair for 60 s), and B (its own key directory,
# token_ttl 2 s, no trusted proxy): B's tokens are well-formed, correctly signed by another
# key, and expire fast. Accounts on A: users alice, bob, eve, dave; org acme (owner alice);
# robots alice+ci (write alice/app, alice/skopeo), alice+reader (read on both),
# alice+regen (read alice/app), bob+other (nothing on alice/*), dave+bot, acme+ci (write
# acme/tool); bob has read on alice/app.
#
# setup                    servers, accounts, robots, grants, offline test images
# engine-start             containerd + dockerd in the scratch dir
# docker-login-user        docker login as alice (stores an identity/refresh token)
# docker-push              docker push alice/app:v1; digest in the registry; private repo:
#                          an anonymous token grants nothing and the manifest is 401
# docker-pull-run          docker pull (same digest) + docker run --rm --network none
# docker-login-robot       docker login as alice+ci (write): push + pull; alice+reader
#                          logs in but its push fails and creates no tag
# docker-wrong-password    401 at /v2/auth (wrong password, unknown user, wrong robot
#                          token); docker login fails with "unauthorized"
# ctr-pull-post-token      ctr images pull --plain-http --user: digest; the server saw
#                          POST /v2/auth (containerd's form token request); no creds fails
# squash-curl-docker-load  curl -fL -u 'alice+reader:TOKEN' /c1/squash | docker load; one
#                          layer; docker run; /c1/squash 401 without/with bad creds, 403
#                          DENIED for prime by a reader, 202 by a writer, Bearer accepted
# skopeo-robot-creds       skopeo copy --dest-creds (robot, write) and --src-creds (write
#                          and read robots), digests; read robot cannot push; foreign
#                          robot and anonymous cannot pull
# podman-login-push-pull   podman login/push/rmi/pull (digest)/run; after logout pull fails
# challenge                exact WWW-Authenticate of /v2/ and of a manifest; garbage
#                          token, Basic on /v2/ and _catalog without token are 401; realm
#                          follows X-Forwarded-* from the trusted proxy only; 400 for
#                          another service
# cache-control            Cache-Control: no-store on GET, POST and refused token responses
# expired-token            B's token (ttl 2 s) after >= 3 s: 401 at /v2/ and on a manifest
# other-key-token          a valid token of B (same issuer, audience, user id) is 401 on
#                          A at /v2/, manifest and /c1/squash while B still takes it
# insufficient-scope       a token for alice/app on alice/podman: 401 with
#                          error="insufficient_scope" and the scope; pull-only token on
#                          an upload POST: 401 insufficient_scope, scope pull,push
# foreign-robot            bob+other asking for alice/app gets access [], 401
#                          insufficient_scope on /v2, 404 on /c1/squash (Basic and Bearer)
# forged-tokens            the same claims (bob+other + pull on alice/app): signed with
#                          A's key -> 200 (control); payload swapped under the original
#                          signature, sub/id of the superuser, exp + 1 h, alg none/None/
#                          NONE, HS256 keyed with A's public key -> 401 (/v2 and /c1)
# catalog-filtered         _catalog lists only what the caller may read (robots,
#                          anonymous, owner)
# mount-from-unreadable    cross-repo mount from a repository the caller cannot read is a
#                          plain upload (202) and links nothing; with read it mounts (201)
# org                      org owner gets push on a new org repo; others and an ungranted
#                          org robot get nothing; org robot with write pushes
# robot-regenerated        after robot token --regenerate: old token 401 at /v2/auth (GET
#                          and POST) and /c1/squash; JWT and refresh token issued before
#                          are 401; the new token works
# password-change          after user passwd: issued JWT 401 (/v2/ and manifest), both
#                          refresh tokens 401, old password 401, new password works,
#                          docker's stored login stops working; refresh token as Bearer 401
# brute-force-429          5 wrong passwords (X-Forwarded-For A1) then the right one: 429
#                          + Retry-After (also POST); same account from A2 and direct: 200;
#                          another account from A1: 200; robot tokens at /c1/squash are
#                          limited too; on B (no trusted proxy) X-Forwarded-For is ignored
# account-mismatch         account= differing from the Basic user (or robot): 401
# jwt-at-token-endpoint    a registry JWT as Bearer to GET/POST /v2/auth, as a
#                          refresh_token and as a password: 401
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/common.sh"   # free_port, start_wharf, stop_pid, WHARF_BIN
. "$HERE/../e2e/lib.sh"      # e2e_test/e2e_step/e2e_end, assertions, images, dockerd, podman

[ "$(id -u)" = 0 ] || e2e_die "run as root"
[ -x "$WHARF_BIN" ] || e2e_die "no wharf binary at $WHARF_BIN"
PYJWT=/usr/bin/python3   # Debian's python with python3-jwt and python3-cryptography
"$PYJWT" -c 'import jwt, cryptography' 2>/dev/null || e2e_die "$PYJWT needs python3-jwt and python3-cryptography"

# Like e2e_begin, but the registry is started by this script (inside the scratch dir).
export E2E_SUITE=auth   # read by lib.sh
e2e_make_work auth
_E2E_PASSES=0 _E2E_FAILS=0 _E2E_T0=$EPOCHREALTIME
trap _e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binary may be rebuilt while we run: server and admin CLI use one copy.
cp "$WHARF_BIN" "$E2E_WORK/wharf"
WHARF_BIN=$E2E_WORK/wharf
"$WHARF_BIN" --help >/dev/null 2>&1 || e2e_die "$WHARF_BIN does not run (copied during a rebuild? run again)"
ST="$E2E_WORK/state"
mkdir -p "$ST"

ADMIN_PW=admin-pw-$RANDOM$RANDOM
ALICE_PW=alice-pw-$RANDOM$RANDOM
BOB_PW=bob-pw-$RANDOM$RANDOM
BOB_PW2=bob-new-pw-$RANDOM$RANDOM
EVE_PW=eve-pw-$RANDOM$RANDOM
DAVE_PW=dave-pw-$RANDOM$RANDOM
export WHARF_ADMIN_PASSWORD=$ADMIN_PW
CTR_NS=wharf-auth
ACCEPT=(-H "Accept: $E2E_OCI_MANIFEST" -H "Accept: $E2E_OCI_INDEX" -H "Accept: $E2E_DOCKER_MANIFEST" -H "Accept: $E2E_DOCKER_LIST")

# ---------------------------------------------------------------- helpers

# wadm ARGS: the admin CLI on server A's store and keys
wadm() { WHARF_KEY_DIR="$KEYS_A" x "$WHARF_BIN" "$@" --data-dir "$DATA_A" --config "$CFG_A"; }

# req CURL_ARGS: body to $E2E_WORK/last.body, headers to last.hdr; prints the status
req() {
  printf '+ curl %s\n' "$*" >&2
  curl -s -o "$E2E_WORK/last.body" -D "$E2E_WORK/last.hdr" -w '%{http_code}' "$@"
}
body() { cat "$E2E_WORK/last.body"; }
# hdr NAME: the last value of header NAME in the last response
hdr() {
  tr -d '\r' <"$E2E_WORK/last.hdr" | awk -v n="$1" '{
    i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == tolower(n)) { v = substr($0, i + 1); sub(/^ +/, "", v); last = v } }
    END { print last }'
}
# expect STATUS WHAT CURL_ARGS: the exact status; shows the response body in the log
expect() {
  local want=$1 what=$2 got
  shift 2
  got=$(req "$@")
  printf '  -> %s %s\n' "$got" "$(head -c 400 "$E2E_WORK/last.body")" >&2
  assert_eq "$want" "$got" "$what"
}

# tok BASE CREDS SCOPE...: a registry token from BASE/v2/auth (GET, Basic); fails unless 200
tok() {
  local base=$1 creds=$2 q="service=wharf" s code
  shift 2
  for s; do q+="&scope=$s"; done
  code=$(curl -s -o "$E2E_WORK/tok.json" -w '%{http_code}' -u "$creds" "$base/v2/auth?$q")
  [ "$code" = 200 ] || { cat "$E2E_WORK/tok.json" >&2; fail "token for ${creds%%:*} ($*): HTTP $code"; }
  jq -er .token "$E2E_WORK/tok.json"
}
# man_status BASE TOKEN REPO REF: status of GET /v2/REPO/manifests/REF with the token
man_status() {
  local a=()
  [ -z "$2" ] || a=(-H "Authorization: Bearer $2")
  req "${a[@]}" "${ACCEPT[@]}" "$1/v2/$3/manifests/$4"
}
# expect_manifest STATUS WHAT BASE TOKEN REPO REF
expect_manifest() {
  local got
  got=$(man_status "$3" "$4" "$5" "$6")
  printf '  -> %s %s | WWW-Authenticate: %s\n' "$got" "$(head -c 300 "$E2E_WORK/last.body")" "$(hdr WWW-Authenticate)" >&2
  assert_eq "$1" "$got" "$2"
}
claims() { "$PYJWT" "$E2E_WORK/forge_jwt.py" claims "$1"; }
jwtpy() { "$PYJWT" "$E2E_WORK/forge_jwt.py" "$@"; }
robot_token() { cat "$ST/robot.$1"; }

cat >"$E2E_WORK/forge_jwt.py" <<'PY'
# JWT surgery for the negative tests: read claims, replace the payload keeping the
# signature, and forge tokens (alg none, HS256 keyed with the server's public key, and a
# correctly ES256-signed control made with the server's private key).
import base64, hashlib, hmac, json, sys
def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def b64e(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def js(o): return json.dumps(o, separators=(",", ":")).encode()
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "claims":
    print(json.dumps(json.loads(b64d(args[0].split(".")[1]))))
elif cmd == "header":
    print(json.dumps(json.loads(b64d(args[0].split(".")[0]))))
elif cmd == "repayload":           # TOKEN CLAIMS_JSON: new payload, old header and signature
    h, _, s = args[0].split(".")
    print(h + "." + b64e(js(json.loads(args[1]))) + "." + s)
elif cmd == "none":                # ALG CLAIMS_JSON KID
    h = {"alg": args[0], "typ": "JWT", "kid": args[2]}
    print(b64e(js(h)) + "." + b64e(js(json.loads(args[1]))) + ".")
elif cmd in ("hs256", "es256"):    # KEYFILE CLAIMS_JSON KID
    from cryptography.hazmat.primitives import serialization
    pem = open(args[0], "rb").read()
    claims = json.loads(args[1])
    if cmd == "es256":
        import jwt
        print(jwt.encode(claims, pem, algorithm="ES256", headers={"kid": args[2]}))
    else:
        key = serialization.load_pem_private_key(pem, None)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        si = b64e(js({"alg": "HS256", "typ": "JWT", "kid": args[2]})) + "." + b64e(js(claims))
        print(si + "." + b64e(hmac.new(pub, si.encode(), hashlib.sha256).digest()))
PY

# ---------------------------------------------------------------- setup

# Servers A and B, accounts, robots, grants, test images. State for later tests goes
# to $ST/env (sourced below) and $ST/robot.NAME.
setup() {
  local port_a port_b
  port_a=$(free_port)
  port_b=$(free_port)
  while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
  DATA_A="$E2E_WORK/a/data" KEYS_A="$E2E_WORK/a/keys" CFG_A="$E2E_WORK/a/config.yml"
  local data_b="$E2E_WORK/b/data" keys_b="$E2E_WORK/b/keys" cfg_b="$E2E_WORK/b/config.yml"
  mkdir -p "$E2E_WORK/a" "$E2E_WORK/b"
  cat >"$CFG_A" <<EOF
trusted_proxies: ["127.0.0.1"]
auth:
  service: wharf
  token_ttl_seconds: 300
  max_failed_logins: 5
  failed_login_window_seconds: 300
  block_seconds: 60
EOF
  cat >"$cfg_b" <<EOF
auth:
  service: wharf
  token_ttl_seconds: 2
EOF
  WHARF_AUTH=1 WHARF_KEY_DIR="$KEYS_A" start_wharf "$port_a" "$DATA_A" "$E2E_WORK/logs/wharf-a.log" --config "$CFG_A"
  echo "$WHARF_PID wharf-a" >>"$E2E_WORK/pids"
  WHARF_AUTH=1 WHARF_KEY_DIR="$keys_b" start_wharf "$port_b" "$data_b" "$E2E_WORK/logs/wharf-b.log" --config "$cfg_b"
  echo "$WHARF_PID wharf-b" >>"$E2E_WORK/pids"
  [ -s "$KEYS_A/token-key.pem" ] && [ -s "$keys_b/token-key.pem" ] || fail "the servers did not write their keys"
  cmp -s "$KEYS_A/token-key.pem" "$keys_b/token-key.pem" && fail "A and B have the same signing key"

  printf '%s\n' "$ALICE_PW" | wadm user create alice --email alice@example.com --password-stdin
  printf '%s\n' "$BOB_PW" | wadm user create bob --email bob@example.com --password-stdin
  printf '%s\n' "$EVE_PW" | wadm user create eve --email eve@example.com --password-stdin
  printf '%s\n' "$DAVE_PW" | wadm user create dave --email dave@example.com --password-stdin
  local r
  wadm org create acme --owner alice
  for r in alice+ci alice+reader alice+regen bob+other dave+bot acme+ci; do
    wadm robot create "$r" >"$ST/robot.$r"
    assert_match "$(cat "$ST/robot.$r")" '^[A-Z0-9]{20,}$' "token of the new robot $r"
  done
  wadm perm grant alice/app --robot alice+ci --role write
  wadm perm grant alice/skopeo --robot alice+ci --role write
  wadm perm grant alice/app --robot alice+reader --role read
  wadm perm grant alice/skopeo --robot alice+reader --role read
  wadm perm grant alice/app --robot alice+regen --role read
  wadm perm grant alice/app --user bob --role read
  wadm perm grant acme/tool --robot acme+ci --role write

  e2e_build_images "$E2E_WORK/layout"
  cat >"$ST/env" <<EOF
DATA_A='$DATA_A'; KEYS_A='$KEYS_A'; CFG_A='$CFG_A'; KEYS_B='$keys_b'
REGISTRY='127.0.0.1:$port_a'; A='http://127.0.0.1:$port_a'; B='http://127.0.0.1:$port_b'
EOF
  . "$E2E_WORK/layout/images.env"

  # A token from B now; t_expired uses it > 3 s later (B's tokens live 2 s).
  tok "http://127.0.0.1:$port_b" "admin:$ADMIN_PW" "repository:admin/x:pull" >"$ST/b-token"
  date +%s >"$ST/b-token.time"
  local c
  c=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$ST/b-token")" "http://127.0.0.1:$port_b/v2/")
  assert_eq 200 "$c" "B accepts its fresh token at /v2/"
  touch "$ST/setup.ok"
}

# ---------------------------------------------------------------- real clients

R() { printf '%s/%s' "$REGISTRY" "$1"; }   # R alice/app:v1 -> 127.0.0.1:PORT/alice/app:v1
d() { x docker "$@"; }
run_ok() {  # TOOL IMAGE
  local out
  out=$(x "$1" run --rm --network none "$2" 2>&1) || { echo "$out" >&2; fail "$1 run $2 failed"; }
  echo "$out" >&2
  assert_contains "$out" "$E2E_MAGIC $IMG_ID x86_64" "output of $1 run $2"
}
# registry_digest CREDS REPO TAG: Docker-Content-Digest of the tag, read with a token
registry_digest() {
  local t
  t=$(tok "$A" "$1" "repository:$2:pull")
  curl -sfI -H "Authorization: Bearer $t" "${ACCEPT[@]}" "$A/v2/$2/manifests/$3" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

t_docker_login_user() {
  local out
  out=$(printf '%s\n' "$ALICE_PW" | x docker login -u alice --password-stdin "$REGISTRY" 2>&1) ||
    { echo "$out" >&2; fail "docker login as alice failed"; }
  echo "$out" >&2
  assert_contains "$out" "Login Succeeded" "docker login output"
  jq -e --arg r "$REGISTRY" '.auths[$r]' "$DOCKER_CONFIG/config.json" >&2 || fail "no entry for $REGISTRY in $DOCKER_CONFIG/config.json"
}

t_docker_push() {
  e2e_docker_loadable_tar "$E2E_WORK/layout" "$(R alice/app:v1)" "$E2E_WORK/load.tar"
  d load -i "$E2E_WORK/load.tar" >&2
  local out want
  out=$(x docker push "$(R alice/app:v1)" 2>&1) || { echo "$out" >&2; fail "docker push as alice failed"; }
  echo "$out" >&2
  want=$(printf '%s\n' "$out" | sed -n 's/^v1: digest: \(sha256:[0-9a-f]*\) size: .*/\1/p')
  assert_match "$want" '^sha256:[0-9a-f]{64}$' "digest docker push reports"
  echo "$want" >"$ST/app.digest"
  assert_eq "$want" "$(registry_digest "alice:$ALICE_PW" alice/app v1)" "digest of alice/app:v1 in the registry"
  # a new repository in a user's namespace is private: no anonymous pull
  local t
  t=$(curl -sf "$A/v2/auth?service=wharf&scope=repository:alice/app:pull" | jq -er .token)
  assert_eq '[]' "$(claims "$t" | jq -c .access)" "access an anonymous token gets on alice/app"
  expect_manifest 401 "anonymous pull of private alice/app" "$A" "$t" alice/app v1
}

t_docker_pull_run() {
  local want out
  want=$(cat "$ST/app.digest")
  d rmi "$(R alice/app:v1)" >&2
  out=$(x docker pull "$(R alice/app:v1)" 2>&1) || { echo "$out" >&2; fail "docker pull as alice failed"; }
  echo "$out" >&2
  assert_contains "$out" "Digest: $want" "docker pull output"
  run_ok docker "$(R alice/app:v1)"
}

t_docker_login_robot() {
  local out
  out=$(robot_token alice+ci | x docker login -u 'alice+ci' --password-stdin "$REGISTRY" 2>&1) ||
    { echo "$out" >&2; fail "docker login as robot alice+ci failed"; }
  echo "$out" >&2
  assert_contains "$out" "Login Succeeded" "docker login output (robot)"
  d tag "$(R alice/app:v1)" "$(R alice/app:robot)"
  out=$(x docker push "$(R alice/app:robot)" 2>&1) || { echo "$out" >&2; fail "docker push as robot alice+ci (write) failed"; }
  echo "$out" >&2
  assert_contains "$out" "digest: $(cat "$ST/app.digest")" "docker push output (robot)"
  assert_eq "$(cat "$ST/app.digest")" "$(registry_digest "alice+ci:$(robot_token alice+ci)" alice/app robot)" "digest of alice/app:robot"
  d rmi "$(R alice/app:robot)" >&2
  d pull "$(R alice/app:robot)" >&2
  # a robot with read only: login works, push is refused
  out=$(robot_token alice+reader | x docker login -u 'alice+reader' --password-stdin "$REGISTRY" 2>&1) ||
    { echo "$out" >&2; fail "docker login as robot alice+reader failed"; }
  d tag "$(R alice/app:v1)" "$(R alice/app:reader)"
  assert_fails "docker push as read-only robot alice+reader" docker push "$(R alice/app:reader)"
  assert_eq 404 "$(man_status "$A" "$(tok "$A" "alice:$ALICE_PW" repository:alice/app:pull)" alice/app reader)" "alice/app:reader after the refused push"
  d rmi "$(R alice/app:reader)" >&2
}

t_docker_wrong_password() {
  expect 401 "GET /v2/auth with a wrong password" -u "dave:not-$DAVE_PW" "$A/v2/auth?service=wharf&account=dave"
  expect 401 "GET /v2/auth for an unknown user" -u "nobody:whatever-pw" "$A/v2/auth?service=wharf"
  expect 401 "GET /v2/auth, wrong robot token" -u "alice+ci:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "$A/v2/auth?service=wharf"
  local out
  if out=$(printf '%s\n' "not-$DAVE_PW" | x docker login -u dave --password-stdin "$REGISTRY" 2>&1); then
    echo "$out" >&2
    fail "docker login with a wrong password succeeded"
  fi
  echo "$out" >&2
  assert_contains "$out" "unauthorized" "docker login error"
}

t_podman() {
  local out want
  # podman also reads $DOCKER_CONFIG/config.json, where docker login left an identity
  # (refresh) token; podman 4.3 refuses to log in over one. Give it an empty one.
  export DOCKER_CONFIG="$E2E_WORK/podman/docker-config"
  mkdir -p "$DOCKER_CONFIG"
  out=$(printf '%s\n' "$ALICE_PW" | x podman login -u alice --password-stdin "$REGISTRY" 2>&1) ||
    { echo "$out" >&2; fail "podman login failed"; }
  echo "$out" >&2
  assert_contains "$out" "Login Succeeded" "podman login output"
  x podman pull -q "oci:$E2E_WORK/layout:amd64" >&2
  local id
  id=$(podman images -q --no-trunc | head -1)
  [ -n "$id" ] || fail "no local image after podman pull oci:"
  x podman tag "$id" "$(R alice/podman:v1)"
  x podman push --digestfile "$E2E_WORK/podman.digest" "$(R alice/podman:v1)" >&2
  want=$(cat "$E2E_WORK/podman.digest")
  assert_eq "$want" "$(registry_digest "alice:$ALICE_PW" alice/podman v1)" "digest of alice/podman:v1"
  x podman rmi -a -f >&2
  x podman pull "$(R alice/podman:v1)" >&2
  assert_eq "$want" "$(podman image inspect --format '{{.Digest}}' "$(R alice/podman:v1)")" "digest podman pulled"
  run_ok podman "$(R alice/podman:v1)"
  x podman logout "$REGISTRY" >&2
  assert_fails "podman pull after logout (private repository)" podman pull "$(R alice/podman:v1)"
}

t_skopeo() {
  local ci rd
  ci="alice+ci:$(robot_token alice+ci)"
  rd="alice+reader:$(robot_token alice+reader)"
  e2e_skopeo copy --dest-tls-verify=false --dest-creds "$ci" "oci:$E2E_WORK/layout:amd64" "docker://$(R alice/skopeo:v1)" >&2
  assert_eq "$IMG_AMD64" "$(registry_digest "$ci" alice/skopeo v1)" "digest of alice/skopeo:v1 pushed by the robot"
  e2e_skopeo copy --src-tls-verify=false --src-creds "$ci" "docker://$(R alice/skopeo:v1)" "oci:$E2E_WORK/sk-out:v1" >&2
  assert_eq "$IMG_AMD64" "$(jq -r '.manifests[0].digest' "$E2E_WORK/sk-out/index.json")" "manifest skopeo pulled (robot with write)"
  e2e_skopeo copy --src-tls-verify=false --src-creds "$rd" "docker://$(R alice/skopeo:v1)" "oci:$E2E_WORK/sk-out2:v1" >&2
  assert_eq "$IMG_AMD64" "$(jq -r '.manifests[0].digest' "$E2E_WORK/sk-out2/index.json")" "manifest skopeo pulled (robot with read)"
  assert_fails "skopeo push by a robot with read only" \
    skopeo --policy "$(e2e_policy_json)" copy --dest-tls-verify=false --dest-creds "$rd" "oci:$E2E_WORK/layout:amd64" "docker://$(R alice/skopeo:v2)"
  assert_fails "skopeo pull by a robot of another namespace" \
    skopeo --policy "$(e2e_policy_json)" copy --src-tls-verify=false --src-creds "bob+other:$(robot_token bob+other)" "docker://$(R alice/skopeo:v1)" "oci:$E2E_WORK/sk-out3:v1"
  assert_fails "skopeo pull without credentials" \
    skopeo --policy "$(e2e_policy_json)" copy --src-tls-verify=false --src-no-creds "docker://$(R alice/skopeo:v1)" "oci:$E2E_WORK/sk-out4:v1"
}

t_ctr() {
  local want out before after
  want=$(cat "$ST/app.digest")
  before=$(grep -c '"POST /v2/auth" 200' "$E2E_WORK/logs/wharf-a.log" || true)
  x ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" images pull --plain-http --user "alice:$ALICE_PW" "$(R alice/app:v1)" >&2
  after=$(grep -c '"POST /v2/auth" 200' "$E2E_WORK/logs/wharf-a.log" || true)
  out=$(x ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" images ls)
  echo "$out" >&2
  assert_contains "$out" "$want" "ctr images ls"
  [ "$after" -gt "$before" ] || fail "ctr got its token without a POST /v2/auth (log: $before -> $after)"
  echo "ok: containerd asked for tokens with POST ($before -> $after)" >&2
  assert_fails "ctr pull without credentials" \
    ctr --address "$CONTAINERD_ADDRESS" --namespace "$CTR_NS" images pull --plain-http "$(R alice/app:robot)"
}

t_squash_load() {
  local rd out
  rd="alice+reader:$(robot_token alice+reader)"
  docker rmi "$(R alice/app:v1)" >/dev/null 2>&1 || true
  out=$(set -o pipefail; curl -fL -u "$rd" "$A/c1/squash/alice/app/v1" | docker load 2>&1) ||
    { echo "$out" >&2; fail "curl -u robot /c1/squash | docker load failed"; }
  echo "$out" >&2
  assert_contains "$out" "Loaded image: $(R alice/app:v1)" "docker load output"
  assert_eq 1 "$(docker image inspect --format '{{len .RootFS.Layers}}' "$(R alice/app:v1)")" "layers of the squashed image"
  run_ok docker "$(R alice/app:v1)"
  expect 401 "/c1/squash without credentials" "$A/c1/squash/alice/app/v1"
  expect 401 "/c1/squash with a wrong robot token" -u "alice+reader:WRONGTOKEN" "$A/c1/squash/alice/app/v1"
  expect 403 "POST /c1/squash/.../prime by a robot with read" -X POST -u "$rd" "$A/c1/squash/alice/app/v1/prime"
  assert_contains "$(body)" DENIED "error code of the refused prime"
  expect 202 "POST /c1/squash/.../prime by a robot with write" -X POST -u "alice+ci:$(robot_token alice+ci)" "$A/c1/squash/alice/app/v1/prime"
  local t
  t=$(tok "$A" "$rd" repository:alice/app:pull)
  expect 200 "HEAD /c1/squash with the robot's registry token" -I -H "Authorization: Bearer $t" "$A/c1/squash/alice/app/v1"
}

# ---------------------------------------------------------------- refusals

t_challenge() {
  expect 401 "GET /v2/ without a token" "$A/v2/"
  assert_eq "Bearer realm=\"$A/v2/auth\",service=\"wharf\"" "$(hdr WWW-Authenticate)" "challenge of /v2/"
  expect 401 "GET a manifest without a token" "${ACCEPT[@]}" "$A/v2/alice/app/manifests/v1"
  assert_eq "Bearer realm=\"$A/v2/auth\",service=\"wharf\",scope=\"repository:alice/app:pull\"" "$(hdr WWW-Authenticate)" "challenge of a manifest GET"
  expect 401 "GET /v2/ with garbage as the token" -H "Authorization: Bearer not.a.jwt" "$A/v2/"
  expect 401 "GET /v2/ with Basic user:password (only registry tokens are accepted there)" -u "alice:$ALICE_PW" "$A/v2/"
  expect 401 "GET a manifest with Basic user:password" -u "alice:$ALICE_PW" "${ACCEPT[@]}" "$A/v2/alice/app/manifests/v1"
  expect 401 "GET /v2/_catalog without a token" "$A/v2/_catalog"
  # the realm follows X-Forwarded-Host/-Proto only from a trusted proxy (A trusts 127.0.0.1, B nobody)
  expect 401 "A: /v2/ via the trusted proxy" -H "X-Forwarded-Host: registry.example" -H "X-Forwarded-Proto: https" "$A/v2/"
  assert_eq 'Bearer realm="https://registry.example/v2/auth",service="wharf"' "$(hdr WWW-Authenticate)" "realm behind the trusted proxy"
  expect 401 "B: /v2/ with X-Forwarded-Host from an untrusted peer" -H "X-Forwarded-Host: evil.example" -H "X-Forwarded-Proto: https" "$B/v2/"
  assert_eq "Bearer realm=\"$B/v2/auth\",service=\"wharf\"" "$(hdr WWW-Authenticate)" "realm ignores untrusted X-Forwarded-*"
  expect 400 "GET /v2/auth for another service" -u "alice:$ALICE_PW" "$A/v2/auth?service=other&scope=repository:alice/app:pull"
}

t_cache_control() {
  expect 200 "GET /v2/auth" -u "alice:$ALICE_PW" "$A/v2/auth?service=wharf&scope=repository:alice/app:pull"
  assert_eq no-store "$(hdr Cache-Control)" "Cache-Control of a GET token response"
  jq -e '.token and .access_token and .expires_in and .issued_at' "$E2E_WORK/last.body" >&2 || fail "token response fields"
  expect 200 "POST /v2/auth grant_type=password" --data-urlencode grant_type=password --data-urlencode username=alice \
    --data-urlencode "password=$ALICE_PW" --data-urlencode service=wharf --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  assert_eq no-store "$(hdr Cache-Control)" "Cache-Control of a POST token response"
  expect 401 "GET /v2/auth with a wrong password" -H "X-Forwarded-For: 192.0.2.50" -u "dave:wrong-$DAVE_PW" "$A/v2/auth?service=wharf"
  assert_eq no-store "$(hdr Cache-Control)" "Cache-Control of a refused token request"
}

t_robot_regenerated() {
  local old new jwt refresh
  old=$(robot_token alice+regen)
  jwt=$(tok "$A" "alice+regen:$old" repository:alice/app:pull)
  expect_manifest 200 "manifest with the robot's JWT before regeneration" "$A" "$jwt" alice/app v1
  expect 200 "robot: GET /v2/auth offline_token=true" -u "alice+regen:$old" "$A/v2/auth?service=wharf&offline_token=true"
  refresh=$(jq -er .refresh_token "$E2E_WORK/last.body")
  expect 200 "robot: refresh token exchange before regeneration" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$refresh" --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  new=$(wadm robot token alice+regen --regenerate)
  assert_ne "$old" "$new" "regenerated robot token"
  expect 401 "GET /v2/auth with the old robot token" -u "alice+regen:$old" "$A/v2/auth?service=wharf&scope=repository:alice/app:pull"
  expect 401 "POST /v2/auth with the old robot token" --data-urlencode grant_type=password --data-urlencode username=alice+regen \
    --data-urlencode "password=$old" --data-urlencode service=wharf "$A/v2/auth"
  expect_manifest 401 "manifest with a JWT issued before regeneration" "$A" "$jwt" alice/app v1
  expect 401 "robot: refresh token exchange after regeneration" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$refresh" --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  expect 401 "/c1/squash with the old robot token" -I -u "alice+regen:$old" "$A/c1/squash/alice/app/v1"
  expect 401 "/c1/squash with a JWT issued before regeneration" -I -H "Authorization: Bearer $jwt" "$A/c1/squash/alice/app/v1"
  jwt=$(tok "$A" "alice+regen:$new" repository:alice/app:pull)
  expect_manifest 200 "manifest with a JWT from the new robot token" "$A" "$jwt" alice/app v1
}

t_password_change() {
  local jwt refresh refresh2 out
  # docker login as bob in a config of his own; pull works
  export DOCKER_CONFIG="$E2E_WORK/docker-bob"
  mkdir -p "$DOCKER_CONFIG"
  printf '%s\n' "$BOB_PW" | x docker login -u bob --password-stdin "$REGISTRY" >&2
  docker rmi "$(R alice/app:robot)" >/dev/null 2>&1 || true
  d pull "$(R alice/app:robot)" >&2
  d rmi "$(R alice/app:robot)" >&2
  jwt=$(tok "$A" "bob:$BOB_PW" repository:alice/app:pull)
  expect_manifest 200 "bob's JWT before the password change" "$A" "$jwt" alice/app v1
  expect 200 "GET /v2/auth offline_token=true" -u "bob:$BOB_PW" "$A/v2/auth?service=wharf&offline_token=true&client_id=docker&account=bob"
  refresh=$(jq -er .refresh_token "$E2E_WORK/last.body")
  expect 200 "POST /v2/auth access_type=offline" --data-urlencode grant_type=password --data-urlencode username=bob \
    --data-urlencode "password=$BOB_PW" --data-urlencode access_type=offline --data-urlencode service=wharf "$A/v2/auth"
  refresh2=$(jq -er .refresh_token "$E2E_WORK/last.body")
  expect 200 "refresh token exchange before the change" --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$refresh" \
    --data-urlencode service=wharf --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  expect_manifest 200 "JWT from the refresh token" "$A" "$(jq -r .token "$E2E_WORK/last.body")" alice/app v1
  expect 401 "a refresh token used as a registry token" -H "Authorization: Bearer $refresh" "$A/v2/"

  printf '%s\n' "$BOB_PW2" | wadm user passwd bob --password-stdin >&2

  expect_manifest 401 "bob's JWT after the password change" "$A" "$jwt" alice/app v1
  expect 401 "GET /v2/ with bob's JWT after the change" -H "Authorization: Bearer $jwt" "$A/v2/"
  local r
  for r in "$refresh" "$refresh2"; do
    expect 401 "refresh token exchange after the change" --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$r" \
      --data-urlencode service=wharf --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  done
  jwt=$(tok "$A" "bob:$BOB_PW2" repository:alice/app:pull)
  expect_manifest 200 "bob's JWT from the new password" "$A" "$jwt" alice/app v1
  expect 401 "old password after the change" -u "bob:$BOB_PW" "$A/v2/auth?service=wharf"
  assert_fails "docker pull with bob's stored login after the change" docker pull "$(R alice/app:robot)"
}

t_expired() {
  local t issued now
  t=$(cat "$ST/b-token")
  issued=$(cat "$ST/b-token.time")
  now=$(date +%s)
  [ $((now - issued)) -ge 3 ] || sleep $((3 - (now - issued)))
  expect 401 "GET /v2/ on B with its token after 3 s (ttl 2 s)" -H "Authorization: Bearer $t" "$B/v2/"
  expect 401 "GET a manifest on B with the expired token" -H "Authorization: Bearer $t" "${ACCEPT[@]}" "$B/v2/admin/x/manifests/v1"
}

t_other_key() {
  local t c
  # B's superuser 'admin' has the same name and id as A's: only the signature differs
  t=$(tok "$B" "admin:$ADMIN_PW" repository:alice/app:pull)
  claims "$t" | jq -c . >&2
  expect_manifest 401 "A, manifest with a token signed by B's key" "$A" "$t" alice/app v1
  expect 401 "A, /v2/ with a token signed by B's key" -H "Authorization: Bearer $t" "$A/v2/"
  expect 401 "A, /c1/squash with a token signed by B's key" -I -H "Authorization: Bearer $t" "$A/c1/squash/alice/app/v1"
  c=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "$B/v2/")
  assert_eq 200 "$c" "B still accepts the token (it was valid when A refused it)"
  # and a token from A's admin works on A (control)
  t=$(tok "$A" "admin:$ADMIN_PW" repository:alice/app:pull)
  expect_manifest 200 "A, manifest with A's own admin token" "$A" "$t" alice/app v1
}

t_insufficient_scope() {
  local t
  t=$(tok "$A" "alice:$ALICE_PW" repository:alice/app:pull)
  expect_manifest 200 "alice/app with a token for alice/app" "$A" "$t" alice/app v1
  expect_manifest 401 "alice/podman with a token for alice/app" "$A" "$t" alice/podman v1
  assert_contains "$(hdr WWW-Authenticate)" 'error="insufficient_scope"' "WWW-Authenticate"
  assert_contains "$(hdr WWW-Authenticate)" 'scope="repository:alice/podman:pull"' "WWW-Authenticate"
  # pull only: no push
  expect 401 "POST an upload with a pull-only token" -X POST -H "Authorization: Bearer $t" "$A/v2/alice/app/blobs/uploads/"
  assert_contains "$(hdr WWW-Authenticate)" 'error="insufficient_scope"' "WWW-Authenticate of a push with a pull token"
  assert_contains "$(hdr WWW-Authenticate)" 'scope="repository:alice/app:pull,push"' "WWW-Authenticate of a push with a pull token"
}

t_foreign_robot() {
  local rt t
  rt=$(robot_token bob+other)
  t=$(tok "$A" "bob+other:$rt" "repository:alice/app:pull,push")
  claims "$t" | jq -c . >&2
  assert_eq '[]' "$(claims "$t" | jq -c .access)" "access granted to bob+other on alice/app"
  expect_manifest 401 "alice/app with bob+other's token" "$A" "$t" alice/app v1
  assert_contains "$(hdr WWW-Authenticate)" 'error="insufficient_scope"' "WWW-Authenticate"
  expect 404 "/c1/squash of alice/app by bob+other (Basic)" -u "bob+other:$rt" "$A/c1/squash/alice/app/v1"
  expect 404 "/c1/squash of alice/app by bob+other (its registry token)" -H "Authorization: Bearer $t" "$A/c1/squash/alice/app/v1"
  expect 404 "/c1/squash of a repository that does not exist, by bob+other" -u "bob+other:$rt" "$A/c1/squash/alice/nothing/v1"
}

t_catalog() {
  local t
  t=$(tok "$A" "alice+reader:$(robot_token alice+reader)" 'registry:catalog:*')
  expect 200 "catalog for alice+reader" -H "Authorization: Bearer $t" "$A/v2/_catalog"
  assert_eq '["alice/app","alice/skopeo"]' "$(jq -c '.repositories | sort' "$E2E_WORK/last.body")" "repositories alice+reader sees"
  t=$(tok "$A" "bob+other:$(robot_token bob+other)" 'registry:catalog:*')
  expect 200 "catalog for bob+other" -H "Authorization: Bearer $t" "$A/v2/_catalog"
  assert_eq '[]' "$(jq -c .repositories "$E2E_WORK/last.body")" "repositories bob+other sees"
  t=$(curl -sf "$A/v2/auth?service=wharf&scope=registry:catalog:*" | jq -er .token)
  expect 200 "catalog for an anonymous token" -H "Authorization: Bearer $t" "$A/v2/_catalog"
  assert_eq '[]' "$(jq -c .repositories "$E2E_WORK/last.body")" "repositories an anonymous caller sees"
  t=$(tok "$A" "alice:$ALICE_PW" 'registry:catalog:*')
  expect 200 "catalog for alice" -H "Authorization: Bearer $t" "$A/v2/_catalog"
  assert_eq '["alice/app","alice/podman","alice/skopeo"]' "$(jq -c '[.repositories[] | select(startswith("alice/"))] | sort' "$E2E_WORK/last.body")" "repositories alice sees"
}

# A cross-repository mount from a repository the caller cannot read must not link the blob.
t_mount_from_unreadable() {
  local t layer
  # a layer of alice/app:v1 as docker pushed it (docker compresses layers itself)
  t=$(tok "$A" "alice:$ALICE_PW" repository:alice/app:pull)
  layer=$(curl -sf -H "Authorization: Bearer $t" "${ACCEPT[@]}" "$A/v2/alice/app/manifests/v1" | jq -er '.layers[-1].digest')
  expect 200 "the layer is in alice/app" -I -H "Authorization: Bearer $t" "$A/v2/alice/app/blobs/$layer"
  t=$(tok "$A" "dave:$DAVE_PW" repository:dave/x:pull,push repository:alice/app:pull)
  assert_eq '[{"type":"repository","name":"dave/x","actions":["pull","push"]}]' "$(claims "$t" | jq -c '[.access[] | {type,name,actions}]')" "access dave gets"
  expect 202 "mount from alice/app into dave/x by dave: an upload, not a mount" -X POST -H "Authorization: Bearer $t" \
    "$A/v2/dave/x/blobs/uploads/?mount=$layer&from=alice/app"
  expect 404 "the layer is not in dave/x" -I -H "Authorization: Bearer $t" "$A/v2/dave/x/blobs/$layer"
  expect 401 "dave's token on alice/app's blob" -I -H "Authorization: Bearer $t" "$A/v2/alice/app/blobs/$layer"
  # bob may read alice/app: his mount works
  t=$(tok "$A" "bob:$BOB_PW" repository:bob/x:pull,push repository:alice/app:pull)
  expect 201 "mount from alice/app into bob/x by bob (read on alice/app)" -X POST -H "Authorization: Bearer $t" \
    "$A/v2/bob/x/blobs/uploads/?mount=$layer&from=alice/app"
  expect 200 "the layer is in bob/x" -I -H "Authorization: Bearer $t" "$A/v2/bob/x/blobs/$layer"
}

# Organizations: the owner (alice) is admin on acme/*, a robot of acme gets what it was granted.
t_org() {
  local ci
  ci="acme+ci:$(robot_token acme+ci)"
  assert_eq '["pull","push"]' "$(claims "$(tok "$A" "alice:$ALICE_PW" repository:acme/new:pull,push)" | jq -c '.access[0].actions')" "owner alice on acme/new"
  assert_eq '[]' "$(claims "$(tok "$A" "dave:$DAVE_PW" repository:acme/new:pull,push)" | jq -c '.access')" "dave on acme/new"
  assert_eq '[]' "$(claims "$(tok "$A" "$ci" repository:acme/new:pull,push)" | jq -c '.access')" "acme+ci on acme/new (no grant)"
  e2e_skopeo copy --dest-tls-verify=false --dest-creds "$ci" "oci:$E2E_WORK/layout:amd64" "docker://$(R acme/tool:v1)" >&2
  assert_eq "$IMG_AMD64" "$(registry_digest "alice:$ALICE_PW" acme/tool v1)" "acme/tool:v1 pushed by acme+ci, read by the owner"
  expect_manifest 401 "dave on acme/tool" "$A" "$(tok "$A" "dave:$DAVE_PW" repository:acme/tool:pull)" acme/tool v1
}

# Forged tokens all carry the same claims: bob+other's real claims with pull on alice/app
# added. The same claims signed with A's own key are accepted (the control), so each 401
# below is the signature/algorithm check and nothing else.
t_forged() {
  local rt base kid forged ctl alg
  rt=$(robot_token bob+other)
  base=$(tok "$A" "bob+other:$rt" "repository:alice/app:pull")
  kid=$(jwtpy header "$base" | jq -r .kid)
  forged=$(claims "$base" | jq -c '.access = [{"type":"repository","name":"alice/app","actions":["pull"]}]')
  echo "forged claims: $forged" >&2
  ctl=$(jwtpy es256 "$KEYS_A/token-key.pem" "$forged" "$kid")
  expect_manifest 200 "control: the forged claims signed with A's key" "$A" "$ctl" alice/app v1

  expect_manifest 401 "tampered JWT (access added, signature kept)" "$A" "$(jwtpy repayload "$base" "$forged")" alice/app v1
  case "$(hdr WWW-Authenticate)" in *insufficient_scope*) fail "the tampered token was read as a valid token" ;; esac
  expect 401 "tampered JWT at /c1/squash" -I -H "Authorization: Bearer $(jwtpy repayload "$base" "$forged")" "$A/c1/squash/alice/app/v1"
  # other flips of one claim: sub/id to the superuser, exp pushed forward
  local admin_claims
  admin_claims=$(claims "$base" | jq -c '.sub = "admin" | .wharf.k = "user" | .wharf.id = 1 | .wharf.g = 1 | .access = [{"type":"repository","name":"alice/app","actions":["pull"]}]')
  expect_manifest 401 "tampered JWT (sub/id of the superuser)" "$A" "$(jwtpy repayload "$base" "$admin_claims")" alice/app v1
  expect 401 "tampered JWT (exp + 1 h) at /v2/" -H "Authorization: Bearer $(jwtpy repayload "$base" "$(claims "$base" | jq -c '.exp += 3600')")" "$A/v2/"

  for alg in none None NONE; do
    expect_manifest 401 "alg=$alg token" "$A" "$(jwtpy none "$alg" "$forged" "$kid")" alice/app v1
  done
  expect_manifest 401 "HS256 token keyed with A's public key" "$A" "$(jwtpy hs256 "$KEYS_A/token-key.pem" "$forged" "$kid")" alice/app v1
  expect 401 "HS256 token at /c1/squash" -I -H "Authorization: Bearer $(jwtpy hs256 "$KEYS_A/token-key.pem" "$forged" "$kid")" "$A/c1/squash/alice/app/v1"
  expect 401 "alg=none token at /c1/squash" -I -H "Authorization: Bearer $(jwtpy none none "$forged" "$kid")" "$A/c1/squash/alice/app/v1"
}

t_brute_force() {
  local x1=198.51.100.7 x2=203.0.113.9 i ra
  for i in 1 2 3 4 5; do
    expect 401 "wrong password $i for eve from $x1" -H "X-Forwarded-For: $x1" -u "eve:wrong-$i" "$A/v2/auth?service=wharf"
  done
  expect 429 "right password for eve from $x1 after 5 failures" -H "X-Forwarded-For: $x1" -u "eve:$EVE_PW" "$A/v2/auth?service=wharf"
  ra=$(hdr Retry-After)
  assert_match "$ra" '^[0-9]+$' "Retry-After"
  [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] || fail "Retry-After $ra is not within 1..60 (block_seconds 60)"
  expect 429 "POST /v2/auth for eve from $x1 while blocked" -H "X-Forwarded-For: $x1" --data-urlencode grant_type=password \
    --data-urlencode username=eve --data-urlencode "password=$EVE_PW" "$A/v2/auth"
  expect 200 "eve from another address ($x2)" -H "X-Forwarded-For: $x2" -u "eve:$EVE_PW" "$A/v2/auth?service=wharf"
  expect 200 "eve from the proxy's own address (no X-Forwarded-For)" -u "eve:$EVE_PW" "$A/v2/auth?service=wharf"
  expect 200 "another account (alice) from $x1" -H "X-Forwarded-For: $x1" -u "alice:$ALICE_PW" "$A/v2/auth?service=wharf"

  # robot tokens at /c1/squash count too (dave+bot exists only for this)
  for i in 1 2 3 4 5; do
    expect 401 "wrong robot token $i for dave+bot at /c1/squash" -I -u "dave+bot:WRONG$i" "$A/c1/squash/dave/x/v1"
  done
  expect 429 "right robot token for dave+bot after 5 failures" -I -u "dave+bot:$(robot_token dave+bot)" "$A/c1/squash/dave/x/v1"
  assert_match "$(hdr Retry-After)" '^[0-9]+$' "Retry-After at /c1/squash"
  expect 429 "dave+bot at /v2/auth from the same address" -u "dave+bot:$(robot_token dave+bot)" "$A/v2/auth?service=wharf"

  # B trusts no proxy: a client cannot dodge the limit by inventing X-Forwarded-For
  for i in 1 2 3 4 5; do
    expect 401 "B: wrong password $i for admin, X-Forwarded-For 192.0.2.$i (untrusted)" \
      -H "X-Forwarded-For: 192.0.2.$i" -u "admin:wrong-$i" "$B/v2/auth?service=wharf"
  done
  expect 429 "B: right password, yet another X-Forwarded-For (ignored)" -H "X-Forwarded-For: 192.0.2.99" -u "admin:$ADMIN_PW" "$B/v2/auth?service=wharf"
}

t_account_mismatch() {
  expect 200 "account= equal to the Basic user" -u "alice:$ALICE_PW" "$A/v2/auth?service=wharf&account=alice&scope=repository:alice/app:pull"
  expect 401 "account= differing from the Basic user" -u "alice:$ALICE_PW" "$A/v2/auth?service=wharf&account=bob&scope=repository:alice/app:pull"
  expect 401 "account= differing from the robot" -u "alice+ci:$(robot_token alice+ci)" "$A/v2/auth?service=wharf&account=alice&scope=repository:alice/app:pull"
}

t_jwt_at_token_endpoint() {
  local t
  t=$(tok "$A" "alice:$ALICE_PW" repository:alice/app:pull,push)
  expect 401 "a registry JWT as Bearer to GET /v2/auth" -H "Authorization: Bearer $t" "$A/v2/auth?service=wharf&scope=repository:alice/app:pull"
  expect 401 "a registry JWT as Bearer to POST /v2/auth" -H "Authorization: Bearer $t" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$t" --data-urlencode service=wharf "$A/v2/auth"
  expect 401 "a registry JWT as the refresh_token" --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$t" \
    --data-urlencode service=wharf --data-urlencode scope=repository:alice/app:pull "$A/v2/auth"
  expect 401 "a registry JWT as the password" -u "alice:$t" "$A/v2/auth?service=wharf"
}

# ---------------------------------------------------------------- run

e2e_test setup setup
if [ ! -f "$ST/setup.ok" ]; then
  echo "setup failed; nothing else runs"
  e2e_end
fi
. "$ST/env"
. "$E2E_WORK/layout/images.env"
export REGISTRY

start_engine() { e2e_docker_start "$E2E_WORK/engine"; }
if e2e_step engine-start start_engine; then
  e2e_test docker-login-user t_docker_login_user
  e2e_test docker-push t_docker_push
  e2e_test docker-pull-run t_docker_pull_run
  e2e_test docker-login-robot t_docker_login_robot
  e2e_test docker-wrong-password t_docker_wrong_password
  e2e_test ctr-pull-post-token t_ctr
  e2e_test squash-curl-docker-load t_squash_load
else
  for t in docker-login-user docker-push docker-pull-run docker-login-robot docker-wrong-password ctr-pull-post-token squash-curl-docker-load; do
    e2e_record FAIL "$t" 0.0
  done
fi
e2e_test skopeo-robot-creds t_skopeo
e2e_podman_setup "$E2E_WORK/podman"
e2e_test podman-login-push-pull t_podman
podman image unmount -a >/dev/null 2>&1 || true

e2e_test challenge t_challenge
e2e_test cache-control t_cache_control
e2e_test expired-token t_expired
e2e_test other-key-token t_other_key
e2e_test insufficient-scope t_insufficient_scope
e2e_test foreign-robot t_foreign_robot
e2e_test forged-tokens t_forged
e2e_test catalog-filtered t_catalog
e2e_test mount-from-unreadable t_mount_from_unreadable
e2e_test org t_org
e2e_test robot-regenerated t_robot_regenerated
e2e_test password-change t_password_change
e2e_test brute-force-429 t_brute_force
e2e_test account-mismatch t_account_mismatch
e2e_test jwt-at-token-endpoint t_jwt_at_token_endpoint

e2e_docker_stop
e2e_end
