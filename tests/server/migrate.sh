#!/usr/bin/env bash
# wharf migrate: an embedded registry (SQLite + filesystem) with accounts, a
# robot, pushed images and a cached squash is copied to PostgreSQL + S3 while
# it serves, then once more with it restarted read-only (the final pass:
# pulls and cached squashes go on, pushes and squash builds are refused with
# 405 naming read_only); the new
# registry then logs the admin in, lets the old robot token pull with skopeo
# and serves the squash from its cache byte for byte as the old one did; a
# third run copies nothing again. Needs WHARF_TEST_PG_DSN and
# WHARF_TEST_S3_ENDPOINT (scripts/test.sh starts both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
: "${WHARF_TEST_PG_DSN:?set WHARF_TEST_PG_DSN}" "${WHARF_TEST_S3_ENDPOINT:?set WHARF_TEST_S3_ENDPOINT}"
make_work migrate
export WHARF_KEY_DIR=$work/keys WHARF_ADMIN_PASSWORD=migrate-admin-1
unset WHARF_ADMIN_USER WHARF_SECRET_KEY
name=mig$$$RANDOM
curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u testak:testsk -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
  -X PUT "$WHARF_TEST_S3_ENDPOINT/$name" -o /dev/null
cat >"$work/old.yaml" <<EOC
data_dir: $work/old-data
squash: {repo_host: "registry.example:5000"}
EOC
cat >"$work/new.yaml" <<EOC
data_dir: $work/new-data
squash: {repo_host: "registry.example:5000"}
metadata: {driver: postgres, postgres: {dsn: "$WHARF_TEST_PG_DSN", schema: $name}}
storage: {driver: s3, s3: {endpoint: "$WHARF_TEST_S3_ENDPOINT", bucket: $name, access_key: testak, secret_key: testsk}}
EOC
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1==n{print $2}' | tail -1; }

port=$(free_port)
WHARF_AUTH=1 start_wharf "$port" "$work/old-data" "$work/old.log" --config "$work/old.yaml"; PIDS=("$WHARF_PID")
adm() { "$WHARF_BIN" "$@" --config "$work/old.yaml" >/dev/null; }
adm org create acme --owner admin
token=$("$WHARF_BIN" robot create acme+deployer --config "$work/old.yaml" | tail -1)
adm perm grant acme/app --robot acme+deployer --role read
bash "$here/../lib/make-oci-image.sh" "$work/img" v1 >/dev/null
bash "$here/../lib/make-oci-image.sh" "$work/img2" v1 >/dev/null
skopeo copy -q --dest-tls-verify=false --dest-creds "admin:$WHARF_ADMIN_PASSWORD" "oci:$work/img:v1" \
  "docker://127.0.0.1:$port/acme/app:v1"
adm perm grant acme/app --robot acme+deployer --role read
curl -sf -u "acme+deployer:$token" "http://127.0.0.1:$port/c1/squash/acme/app/v1" -o "$work/old.tar"
[ -s "$work/old.tar" ] || fail "no squash from the old registry"

# First pass while the old registry serves; then a push it does not have yet.
"$WHARF_BIN" migrate --from "$work/old.yaml" --to "$work/new.yaml" >"$work/pass1.out"
grep -q '^migrated: [1-9][0-9]* blobs copied' "$work/pass1.out" || fail "first pass: $(cat "$work/pass1.out")"
skopeo copy -q --dest-tls-verify=false --dest-creds "admin:$WHARF_ADMIN_PASSWORD" "oci:$work/img2:v1" \
  "docker://127.0.0.1:$port/acme/app:v2"
stop_pid "$WHARF_PID"
# The final pass with the old registry read-only: only the new blobs.
cp "$work/old.yaml" "$work/old-ro.yaml"; echo "read_only: true" >>"$work/old-ro.yaml"
WHARF_AUTH=1 start_wharf "$port" "$work/old-data" "$work/old.log" --config "$work/old-ro.yaml"; PIDS=("$WHARF_PID")
skopeo copy -q --dest-tls-verify=false --dest-creds "admin:$WHARF_ADMIN_PASSWORD" "oci:$work/img2:v1"   "docker://127.0.0.1:$port/acme/app:v3" 2>"$work/ro-push.err" && fail "a push to the read-only registry succeeded"
grep -q "read-only for maintenance (read_only: true)" "$work/ro-push.err" ||
  fail "skopeo's error does not say why: $(tail -3 "$work/ro-push.err")"
skopeo copy -q --src-tls-verify=false --src-creds "acme+deployer:$token" "docker://127.0.0.1:$port/acme/app:v2"   "oci:$work/ro-pull:v2" || fail "the read-only registry refused a pull"
curl -sf -u "acme+deployer:$token" "http://127.0.0.1:$port/c1/squash/acme/app/v1" | cmp - "$work/old.tar" ||
  fail "the read-only registry did not serve the cached squash"
body=$(curl -s -u "acme+deployer:$token" "http://127.0.0.1:$port/c1/squash/acme/app/v2")
grep -q '"UNSUPPORTED".*read_only: true' <<<"$body" || fail "an uncached squash on the read-only registry: $body"
code=$(curl -s -o "$work/ro-api.json" -w '%{http_code}' -u "admin:$WHARF_ADMIN_PASSWORD" -H 'Content-Type: application/json' \
  -d '{"name": "neworg"}' "http://127.0.0.1:$port/api/v1/organization/")
[ "$code" = 405 ] && grep -q 'read_only: true' "$work/ro-api.json" || fail "an account change on the read-only registry: $code"
echo "PASS read_only: pushes, squash builds and account changes refused with 405 naming the setting; pulls and the cached squash served"
"$WHARF_BIN" migrate --from "$work/old.yaml" --to "$work/new.yaml" >"$work/pass2.out"
stop_pid "$WHARF_PID"
grep -qE '^migrated: [1-9][0-9]* blobs copied .*, [1-9][0-9]* already there' "$work/pass2.out" ||
  fail "final pass: $(cat "$work/pass2.out")"
"$WHARF_BIN" migrate --from "$work/old.yaml" --to "$work/new.yaml" >"$work/pass3.out"
grep -q '^migrated: 0 blobs copied' "$work/pass3.out" || fail "a third pass copied blobs again: $(cat "$work/pass3.out")"
echo "PASS wharf migrate: a first pass while serving, a final pass with only what was pushed since, then nothing"

port=$(free_port)
WHARF_AUTH=1 start_wharf "$port" "$work/new-data" "$work/new.log" --config "$work/new.yaml"; PIDS=("$WHARF_PID")
code=$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$WHARF_ADMIN_PASSWORD" \
  "http://127.0.0.1:$port/v2/auth?service=wharf&scope=repository:acme/app:pull")
[ "$code" = 200 ] || fail "the admin cannot log in on the new registry ($code)"
for t in v1 v2; do
  skopeo copy -q --src-tls-verify=false --src-creds "acme+deployer:$token" "docker://127.0.0.1:$port/acme/app:$t" \
    "oci:$work/pulled-$t:$t" || fail "the old robot token cannot pull acme/app:$t from the new registry"
done
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/img/index.json")
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/pulled-v1/index.json")
[ "$want" = "$got" ] || fail "pulled manifest $got, pushed $want"
echo "PASS the new registry (PostgreSQL + S3): the admin logs in, the old robot token pulls both tags"
curl -sf -u "acme+deployer:$token" "http://127.0.0.1:$port/c1/squash/acme/app/v1" -o "$work/new.tar"
cmp "$work/old.tar" "$work/new.tar" || fail "the squash from the new registry differs from the old one"
[ -z "$(metric "$port" wharf_squash_builds_total)" ] || fail "the new registry built the squash again"
echo "PASS the squash comes from the migrated cache, byte for byte"
