#!/usr/bin/env bash
# Credentials across replicas: two wharf processes with auth on the same
# PostgreSQL schema, S3 bucket and key files (a replica each; the test picks
# the replica). What one replica issues works on the other, and what is
# revoked through replica A stops working on replica B within one second: a
# regenerated robot token, a removed permission, a signed-out session, a
# deleted user; and failed sign-ins are counted across replicas. Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT
# (scripts/test.sh's pg-s3 stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work revocation

cfg=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
export WHARF_KEY_DIR=$work/keys WHARF_ADMIN_PASSWORD=admin-pw-0001  # the key files both replicas are given
unset WHARF_ADMIN_USER WHARF_SECRET_KEY
pa=$(free_port); pb=$(free_port)
WHARF_AUTH=1 start_wharf "$pa" "$work/a" "$work/a.log" --config "$cfg"; PIDS+=("$WHARF_PID")
WHARF_AUTH=1 start_wharf "$pb" "$work/b" "$work/b.log" --config "$cfg"; PIDS+=("$WHARF_PID")
A=http://127.0.0.1:$pa B=http://127.0.0.1:$pb
admin=admin:$WHARF_ADMIN_PASSWORD

api() {  # api BASE METHOD PATH [JSON]: as the admin; prints the body, fails on a non-2xx
  local out code
  out=$(curl -s -w '\n%{http_code}' -u "$admin" -X "$2" -H 'Content-Type: application/json' ${4:+--data "$4"} "$1/api/v1$3")
  code=${out##*$'\n'}
  [ "${code:0:1}" = 2 ] || fail "$2 $3 on $1: $code ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# pulls BASE CREDS: "yes" when /v2/auth gives CREDS a token that may pull
# acme/app, "no" when it gives one that may not, else the status
pulls() {
  local out code
  out=$(curl -s -w '\n%{http_code}' -u "$2" "$1/v2/auth?service=wharf&scope=repository:acme/app:pull")
  code=${out##*$'\n'}
  [ "$code" = 200 ] || { echo "$code"; return 0; }
  printf '%s' "${out%$'\n'*}" | python3 -c '
import base64, json, sys
t = json.load(sys.stdin)["token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
print("yes" if any("pull" in a.get("actions", []) for a in claims.get("access", [])) else "no")'
}
# within_a_second WHAT CMD... : CMD succeeds within 1 s (it is tried every 50 ms)
within_a_second() {
  local what=$1 t0
  shift
  t0=$(date +%s%N)
  while [ $(($(date +%s%N) - t0)) -lt 1000000000 ]; do
    "$@" && return 0
    sleep 0.05
  done
  fail "replica B still $what more than one second after replica A revoked it"
}

api "$A" POST /organization/ '{"name":"acme","email":"acme@example.com"}' >/dev/null
api "$A" POST /repository '{"namespace":"acme","repository":"app","visibility":"private"}' >/dev/null
old=$(api "$A" PUT /namespace/acme/robots/ci '{"description":"ci"}' | json token)
api "$A" PUT /repository/acme/app/permissions/robot/acme+ci '{"role":"read"}' >/dev/null
[ "$(pulls "$B" "acme+ci:$old")" = yes ] || fail "the robot token issued on replica A does not pull on replica B: $(pulls "$B" "acme+ci:$old")"
echo "PASS a robot created and granted through replica A pulls through replica B"

new=$(api "$A" POST /namespace/acme/robots/ci/regenerate | json token)
within_a_second "accepts the old robot token" test "$(pulls "$B" "acme+ci:$old")" = 401
[ "$(pulls "$B" "acme+ci:$new")" = yes ] || fail "the regenerated token does not pull on replica B"
echo "PASS a robot token regenerated on replica A is refused on replica B within a second; the new one works there"

api "$A" DELETE /repository/acme/app/permissions/robot/acme+ci >/dev/null
within_a_second "lets the robot pull after its permission was removed" test "$(pulls "$B" "acme+ci:$new")" = no
echo "PASS a permission removed on replica A no longer grants a pull on replica B within a second"

"$WHARF_BIN" user create bob --email bob@example.com --password-stdin --data-dir "$work/a" --config "$cfg" \
  <<<"bob-pw-0001" >/dev/null
curl -sf -c "$work/bob.jar" -H 'Content-Type: application/json' -X POST \
  --data '{"username":"bob","password":"bob-pw-0001"}' "$B/api/v1/signin" -o "$work/signin.json" ||
  fail "bob cannot sign in on replica B"
signed_in() { curl -sf -b "$work/bob.jar" "$1/api/v1/session" | json signed_in; }
[ "$(signed_in "$A")" = True ] || fail "bob's session from replica B is not signed in on replica A"
csrf=$(json csrf_token <"$work/signin.json")
curl -sf -b "$work/bob.jar" -H "X-CSRF-Token: $csrf" -H "Origin: $A" -X POST "$A/api/v1/signout" -o /dev/null ||
  fail "bob cannot sign out on replica A"
within_a_second "keeps a session signed in that was signed out" test "$(signed_in "$B")" = False
echo "PASS a session opened on replica B works on A; signed out on A, it is gone on B within a second"

[ "$(pulls "$B" "bob:bob-pw-0001")" = no ] || fail "bob's password does not log in on replica B"
api "$A" DELETE /superuser/users/bob >/dev/null
within_a_second "logs in a deleted user" test "$(pulls "$B" "bob:bob-pw-0001")" = 401
echo "PASS a user deleted on replica A cannot log in on replica B within a second (the password check's cache is keyed by the account's state)"

# The failed-login limit counts across replicas: 5 wrong passwords for carol
# (auth.max_failed_logins), spread over both replicas, block her on both.
"$WHARF_BIN" user create carol --email carol@example.com --password-stdin --data-dir "$work/a" --config "$cfg" \
  <<<"carol-pw-0001" >/dev/null
for i in 1 2 3 4 5; do
  base=$A; [ $((i % 2)) = 0 ] && base=$B
  code=$(pulls "$base" "carol:wrong-$i")
  [ "$code" = 401 ] || fail "wrong password $i for carol on $base: $code (expected 401)"
done
for base in "$A" "$B"; do
  code=$(pulls "$base" "carol:carol-pw-0001")
  [ "$code" = 429 ] || fail "after 5 wrong passwords spread over both replicas, carol's right one on $base got $code, not 429"
done
echo "PASS 5 wrong passwords spread over both replicas block the account on both (429)"
