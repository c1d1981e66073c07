#!/usr/bin/env bash
# tests/ui/run.sh — the web UI's end-to-end tests: starts wharf (accounts on),
# a Docker engine (tests/e2e/lib.sh), installs playwright-core from npm, and
# runs ui.test.mjs with node's test runner against Debian's chromium.
# Screenshots go to tests/ui/artifacts/. Everything is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. tests/lib/common.sh
. tests/e2e/lib.sh

(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

port=$(free_port)
e2e_make_work ui
data="$E2E_WORK/data"
export WHARF_KEY_DIR="$E2E_WORK/keys" WHARF_ADMIN_PASSWORD="ui-admin-$RANDOM-pass"
WHARF_AUTH=1 start_wharf "$port" "$data" "$E2E_WORK/wharf.log"
echo "$WHARF_PID wharf" >>"$E2E_WORK/pids"
trap _e2e_cleanup EXIT

e2e_build_images "$E2E_WORK/layout" >/dev/null
e2e_docker_start "$E2E_WORK/docker"

rc=0
WHARF_URL="http://127.0.0.1:$port" WHARF_PORT=$port ADMIN_PASSWORD=$WHARF_ADMIN_PASSWORD \
  LAYOUT="$E2E_WORK/layout" IMG_ID=$IMG_ID ARTIFACTS="$root/tests/ui/artifacts" POLICY="$(e2e_policy_json)" \
  WHARF_BIN="$WHARF_BIN" WHARF_DATA="$data" \
  node --test tests/ui/ui.test.mjs || rc=$?
[ $rc = 0 ] || tail -20 "$E2E_WORK/wharf.log" >&2
exit $rc
