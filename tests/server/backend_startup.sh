#!/usr/bin/env bash
# wharf serve refuses to start on remote backends it cannot work with, with
# a message naming the problem: S3 credentials refused, a bucket that does
# not exist, PostgreSQL unreachable, a schema written by a newer release
# (more than one additive version ahead, or a version marked incompatible);
# and it does start one additive version behind (a rolling upgrade: the
# previous release keeps serving on the newer schema). Needs
# WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT (scripts/test.sh exports them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
: "${WHARF_TEST_PG_DSN:?set WHARF_TEST_PG_DSN}" "${WHARF_TEST_S3_ENDPOINT:?set WHARF_TEST_S3_ENDPOINT}"
make_work startup
name=st$$$RANDOM
s3_request PUT "/$name" -o /dev/null
pg() { printf 'metadata: {driver: postgres, postgres: {dsn: "%s", schema: %s, connect_timeout_seconds: 3}}\n' "$1" "$2"; }
s3() { printf 'storage: {driver: s3, s3: {endpoint: "%s", bucket: %s, access_key: %s, secret_key: %s}}\n' \
  "$WHARF_TEST_S3_ENDPOINT" "$1" "$2" "$3"; }
# refuses NAME CONFIG_TEXT PATTERN: wharf serve exits non-zero within 60 s, its output matching PATTERN
refuses() {
  printf '%s' "$2" >"$work/$1.yaml"
  local rc=0
  timeout 60 "$WHARF_BIN" serve --no-auth --listen "127.0.0.1:$(free_port)" --data-dir "$work/$1-data" \
    --config "$work/$1.yaml" >"$work/$1.out" 2>&1 || rc=$?
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$1: wharf serve did not refuse to start (exit $rc): $(tail -3 "$work/$1.out")"
  grep -qiE "$3" "$work/$1.out" || fail "$1: the message does not name the problem: $(tail -3 "$work/$1.out")"
  echo "PASS $1: refused: $(grep -iE "$3" "$work/$1.out" | head -1 | cut -c1-160)"
}
refuses s3-credentials "$(pg "$WHARF_TEST_PG_DSN" "${name}a"; s3 "$name" testak wrong-secret)" \
  'was refused: check access_key and secret_key'
refuses s3-bucket "$(pg "$WHARF_TEST_PG_DSN" "${name}b"; s3 "${name}-missing" testak testsk)" "bucket \"${name}-missing\" does not exist"
dead=$(free_port)
refuses pg-unreachable "$(pg "postgresql://postgres@127.0.0.1:$dead/wharf" "${name}c"; s3 "$name" testak testsk)" \
  "127\.0\.0\.1.*$dead|$dead.*refused|connection refused"

# The schema: written by this release, then by releases after it.
schema=${name}d
printf '%s\n%s\n' "$(pg "$WHARF_TEST_PG_DSN" "$schema")" "$(s3 "$name" testak testsk)" >"$work/ok.yaml"
port=$(free_port)
start_wharf "$port" "$work/ok-data" "$work/ok.log" --config "$work/ok.yaml"; PIDS=("$WHARF_PID")
stop_pid "$WHARF_PID"
known=$(psql -Atq "$WHARF_TEST_PG_DSN" -c "SELECT max(version) FROM $schema.schema_version")
sql() { psql -Atq "$WHARF_TEST_PG_DSN" -c "$1" >/dev/null; }
sql "INSERT INTO $schema.schema_version VALUES ($((known + 1)), false, 0)"
start_wharf "$port" "$work/ok-data" "$work/ok.log" --config "$work/ok.yaml"; PIDS=("$WHARF_PID")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/endtoend")
[ "$code" = 200 ] || fail "one additive version ahead: /health/endtoend answered $code"
stop_pid "$WHARF_PID"
echo "PASS a schema one additive version ahead (version $((known + 1))): this release starts and serves (rolling upgrade)"
sql "INSERT INTO $schema.schema_version VALUES ($((known + 2)), false, 0)"
refuses schema-two-ahead "$(cat "$work/ok.yaml")" "at version $((known + 2)).*knows versions up to $known"
sql "DELETE FROM $schema.schema_version WHERE version = $((known + 2))"
sql "UPDATE $schema.schema_version SET breaking = true WHERE version = $((known + 1))"
refuses schema-incompatible "$(cat "$work/ok.yaml")" "version $((known + 1)) is marked incompatible"
