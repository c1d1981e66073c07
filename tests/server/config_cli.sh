#!/usr/bin/env bash
# tests/server/config_cli.sh — every command opens its stores through the one
# factory: an unknown storage or metadata driver is refused by serve, gc,
# squash prime and the account commands alike, naming the setting and the
# drivers there are, and nothing is created; a configuration in the nested
# form (storage.filesystem.*, metadata.sqlite.path) and one in the older form
# both serve.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
make_work config-cli
fail() { echo "FAIL: $*" >&2; exit 1; }

printf 'storage: {driver: azure}\n' >"$work/azure.yaml"
printf 'metadata: {driver: mysql}\n' >"$work/mysql.yaml"
for cmd in "serve --listen 127.0.0.1:1" "gc" "squash prime a/b:c" "user create bob --password-stdin"; do
  for c in azure mysql; do
    set +e
    out=$(echo password123 | $WHARF_BIN $cmd --config "$work/$c.yaml" --data-dir "$work/d-$c" 2>&1)
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "wharf $cmd with $c.yaml succeeded"
    case $c in
      azure) want='unknown storage.driver "azure" (known: filesystem, s3)' ;;
      mysql) want='unknown metadata.driver "mysql" (known: postgres, sqlite)' ;;
    esac
    grep -qF "$want" <<<"$out" || fail "wharf $cmd with $c.yaml: $out"
    [ ! -e "$work/d-$c/wharf.db" ] || fail "wharf $cmd with $c.yaml created a database"
  done
done
# A known driver without its settings: refused naming the missing setting.
printf 'storage: {driver: s3}\n' >"$work/s3.yaml"
printf 'metadata: {driver: postgres}\n' >"$work/pg.yaml"
for cmd in "serve --listen 127.0.0.1:1" "gc"; do
  for c in s3 pg; do
    set +e
    out=$(env -u WHARF_S3_ACCESS_KEY -u WHARF_S3_SECRET_KEY $WHARF_BIN $cmd --config "$work/$c.yaml" --data-dir "$work/e-$c" 2>&1)
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "wharf $cmd with $c.yaml (no settings) succeeded"
    case $c in
      s3) want='storage.s3: access_key and secret_key' ;;
      pg) want='metadata.postgres.dsn is not set' ;;
    esac
    grep -qF "$want" <<<"$out" || fail "wharf $cmd with $c.yaml: $out"
  done
done
echo "PASS an unknown storage or metadata driver is refused by serve, gc, squash prime and user create, naming it"

port=$(free_port)
printf 'log: {requests: false}\nstorage: {driver: filesystem, filesystem: {drop_committed: false}}\nmetadata: {driver: sqlite, sqlite: {path: %s}}\n' \
  "$work/elsewhere.db" >"$work/nested.yaml"
start_wharf "$port" "$work/d-nested" "$work/nested.log" --config "$work/nested.yaml"
PIDS+=("$WHARF_PID")
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || fail "nested configuration does not serve"
[ -s "$work/elsewhere.db" ] || fail "metadata.sqlite.path not used"
[ ! -e "$work/d-nested/wharf.db" ] || fail "the database was made in the data directory despite metadata.sqlite.path"
stop_pid "$WHARF_PID"
port=$(free_port)
printf 'log: {requests: false}\nstorage: {driver: filesystem, drop_committed: false}\n' >"$work/old.yaml"
start_wharf "$port" "$work/d-old" "$work/old.log" --config "$work/old.yaml"
PIDS+=("$WHARF_PID")
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || fail "older configuration form does not serve"
stop_pid "$WHARF_PID"
echo "PASS the nested form (storage.filesystem, metadata.sqlite.path) and the older form both serve"
