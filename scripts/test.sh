#!/usr/bin/env bash
# Runs wharf's whole test suite on a Debian 12 machine as root: installs what
# it needs, builds, then runs every stage and prints a summary. Exit 0 only if
# every stage passed. Servers started here listen on 127.0.0.1 and are
# stopped by PID. Stages can be picked: scripts/test.sh unit api ...
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh test || exit 1
[ -f tests/e2e/install-deps.sh ] && { bash tests/e2e/install-deps.sh || exit 1; }
WHARF_WERROR=ON bash scripts/build.sh || exit 1
. tests/lib/common.sh
. tests/lib/cluster.sh

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit api api-distribution durability server e2e pg-s3 squash auth ui fuzz sanitize)
work=$(mktemp -d /tmp/wharf-test.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done
  [ -n "${CEPH_BASE:-}" ] && BASE=$CEPH_BASE bash tests/lib/ceph_stop.sh
  [ -n "${CEPH_BIG_BASE:-}" ] && BASE=$CEPH_BIG_BASE bash tests/lib/ceph_stop.sh
  [ -n "${PG_BASE:-}" ] && BASE=$PG_BASE bash tests/lib/pg_stop.sh
}
trap cleanup EXIT
results=()

# step CMD...: runs one test script of a stage; a script that exits non-zero
# is named with its status (a script ended by errexit prints nothing itself)
step() {
  "$@" && return 0
  local rc=$?
  echo "FAIL  $* (exit $rc)"
  return $rc
}

run_stage() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "=== $name"
  if "$@"; then results+=("PASS  $name ($((SECONDS - t0))s)"); else results+=("FAIL  $name ($((SECONDS - t0))s)"); fi
}

# One PostgreSQL 15 server for every stage that needs it, started on first
# use (tests/lib/pg_start.sh; stopped by PID at exit). Exports its DSN as
# WHARF_TEST_PG_DSN: the unit suites run on it, the stages their servers.
pg_up() {
  [ -n "${WHARF_TEST_PG_DSN:-}" ] && return 0
  local base=/tmp/wharf-test-pg.$$
  if ! PGPORT=$(free_port) BASE=$base bash tests/lib/pg_start.sh >"$work/pg.dsn" 2>"$work/pg.err"; then
    echo "PostgreSQL did not start:"; cat "$work/pg.err" "$base/server.log" 2>/dev/null | tail -20
    return 1
  fi
  PG_BASE=$base  # stopped at exit by the PID in $base/pid (a test that restarts it updates the file)
  export WHARF_TEST_PG_BASE=$base
  export WHARF_TEST_PG_DSN; WHARF_TEST_PG_DSN=$(cat "$work/pg.dsn")
}
# A wharf config on the test server's PostgreSQL, in a schema of its own: pg_config FILE SCHEMA [EXTRA YAML]
pg_config() {
  printf 'metadata: {driver: postgres, postgres: {dsn: "%s", schema: %s}}\n%s' "$WHARF_TEST_PG_DSN" "$2" "${3:-}" >"$1"
}

# One Ceph RADOS Gateway (S3) for every stage that needs it, started on first
# use (tests/lib/ceph_start.sh: 1 mon, 1 MemStore OSD, radosgw; stopped by
# its PIDs at exit). Exports WHARF_TEST_S3_ENDPOINT (keys testak/testsk).
s3_up() {
  [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] && return 0
  local base=/tmp/wharf-test-ceph.$$ rgw mon
  rgw=$(free_port); mon=$(free_port)
  if ! (cd /tmp && BASE=$base RGW_PORT=$rgw MON_PORT=$mon bash "$root/tests/lib/ceph_start.sh") >"$work/ceph.out" 2>&1; then
    echo "Ceph RADOS Gateway did not start:"; tail -20 "$work/ceph.out"
    BASE=$base bash tests/lib/ceph_stop.sh
    return 1
  fi
  CEPH_BASE=$base
  export WHARF_TEST_CEPH_BASE=$base WHARF_TEST_S3_ENDPOINT=http://127.0.0.1:$rgw
}
# A second RGW, on BlueStore in a sparse 24 GiB file, for the scripts that
# store gigabytes (MemStore holds 2 GiB in RAM): exports WHARF_TEST_S3_BIG_ENDPOINT.
s3_big_up() {
  [ -n "${WHARF_TEST_S3_BIG_ENDPOINT:-}" ] && return 0
  local base=/tmp/wharf-test-ceph-big.$$ rgw
  rgw=$(free_port)
  if ! (cd /tmp && CEPH_STORE=bluestore BLUESTORE_BYTES=$((24 << 30)) BASE=$base RGW_PORT=$rgw MON_PORT=$(free_port) \
    bash "$root/tests/lib/ceph_start.sh") >"$work/ceph-big.out" 2>&1; then
    echo "Ceph RADOS Gateway on BlueStore did not start:"; tail -20 "$work/ceph-big.out"
    BASE=$base bash tests/lib/ceph_stop.sh
    return 1
  fi
  CEPH_BIG_BASE=$base
  export WHARF_TEST_S3_BIG_ENDPOINT=http://127.0.0.1:$rgw
}
# s3_bucket NAME: creates a bucket on the test RGW
s3_bucket() {
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u testak:testsk -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -X PUT "$WHARF_TEST_S3_ENDPOINT/$1" -o /dev/null
}
# A wharf config on PostgreSQL + the test RGW: s3_config FILE NAME [REDIRECT] [EXTRA YAML]
# (schema and bucket NAME)
s3_config() {
  s3_bucket "$2" || return 1
  pg_config "$1" "$2" "storage: {driver: s3, s3: {endpoint: \"$WHARF_TEST_S3_ENDPOINT\", bucket: $2, access_key: testak, secret_key: testsk, redirect: ${3:-proxy}}}
${4:-}"
}

stage_unit() { pg_up && s3_up || return 1; (cd build && ctest --output-on-failure -j2); }

# The API suite (blobs proxied) and the real clients (following presigned
# redirects to RGW), each through nginx in front of two replicas on
# PostgreSQL + RGW (tests/lib/cluster.sh); then the scripts of the backends
# and of the replicas (tests/cluster/).
stage_pg_s3() {
  pg_up && s3_up || return 1
  local rc=0
  s3_config "$work/pgs3-api.yaml" apis3 proxy || return 1
  cluster_up "$work/pgs3-api" "$work/pgs3-api.yaml" || return 1
  step python3 tests/api/run.py --url "http://$CLUSTER_ADDR" --target wharf --proxy-scheme http || rc=1
  local served; served=$(grep -c ' /v2/' "$work/pgs3-api/replica-B.log" || true)
  echo "API requests answered by replica B (nginx balances): $served"
  [ "$served" -gt 0 ] || { echo "FAIL: nginx sent nothing to replica B"; rc=1; }
  # /metrics counts requests to each backend by operation and outcome
  local metrics; metrics=$(curl -sf "http://$REPLICA_A/metrics")
  for want in 'backend="s3",operation="PutObject",outcome="ok"' 'backend="s3",operation="CopyObject",outcome="ok"' \
    'backend="postgres",operation="write",outcome="ok"' 'backend="postgres",operation="read",outcome="ok"'; do
    grep -qF "wharf_backend_requests_total{$want}" <<<"$metrics" || { echo "FAIL: /metrics lacks $want"; rc=1; }
  done
  # an upload session advertises the driver's part size as the chunk minimum
  curl -sf -D - -o /dev/null -X POST "http://$CLUSTER_ADDR/v2/chunk/min/blobs/uploads/" | tr -d '\r' |
    grep -qi '^oci-chunk-min-length: 16777216$' || { echo "FAIL: no OCI-Chunk-Min-Length on the POST"; rc=1; }
  stop_pid "$NGINX_PID"; stop_pid "$REPLICA_A_PID"; stop_pid "$REPLICA_B_PID"
  s3_config "$work/pgs3-e2e.yaml" e2es3 presigned || return 1
  cluster_up "$work/pgs3-e2e" "$work/pgs3-e2e.yaml" || return 1
  step env E2E_REPLICAS="$REPLICA_A $REPLICA_B" bash tests/e2e/run.sh "$CLUSTER_ADDR" skopeo podman docker squash || rc=1
  local redirects; redirects=$(cat "$work"/pgs3-e2e/replica-*.log | grep -c '" 307 ' || true)
  echo "blob GETs answered with a presigned redirect: $redirects"
  [ "$redirects" -gt 0 ] || { echo "no client was redirected to the object store"; rc=1; }
  stop_pid "$NGINX_PID"; stop_pid "$REPLICA_A_PID"; stop_pid "$REPLICA_B_PID"
  pg_config "$work/pgs3-listing.yaml" listing
  step bash tests/auth/listing.sh "$work/pgs3-listing.yaml" || rc=1
  step bash tests/server/migrate.sh || rc=1
  step bash tests/server/backend_faults.sh || rc=1
  step bash tests/server/backend_startup.sh || rc=1
  step bash tests/cluster/upload_lock.sh || rc=1
  step bash tests/cluster/revocation.sh || rc=1
  step bash tests/cluster/squash_relay.sh || rc=1
  step bash tests/cluster/shared_state.sh || rc=1
  step bash tests/cluster/gc_online.sh || rc=1
  step bash tests/cluster/image.sh || rc=1
  # the squash operations and gc stages' scripts (1 GiB images), and a blob over 5 GiB, on PostgreSQL + RGW on BlueStore
  s3_big_up || return 1
  step env WHARF_TEST_BACKEND=pg-s3 WHARF_TEST_S3_ENDPOINT=$WHARF_TEST_S3_BIG_ENDPOINT bash tests/server/squash_ops.sh || rc=1
  step env WHARF_TEST_BACKEND=pg-s3 WHARF_TEST_S3_ENDPOINT=$WHARF_TEST_S3_BIG_ENDPOINT bash tests/server/gc.sh || rc=1
  step bash tests/server/s3_big_blob.sh || rc=1
  step env WHARF_TEST_S3_ENDPOINT=$WHARF_TEST_S3_BIG_ENDPOINT bash tests/cluster/kill_push.sh || rc=1
  return $rc
}

stage_api() {
  local port; port=$(free_port)
  # the suite checks Location honours X-Forwarded-* from a trusted proxy
  printf 'trusted_proxies: ["127.0.0.1"]\n' >"$work/api.yaml"
  start_wharf "$port" "$work/api-data" "$work/api-wharf.log" --config "$work/api.yaml" || return 1
  PIDS+=("$WHARF_PID")
  python3 tests/api/run.py --url "http://127.0.0.1:$port" --target wharf
  local rc=$?
  stop_pid "$WHARF_PID"
  # sparse manifests are opt-in: their tests against a server that has them on
  port=$(free_port)
  printf 'manifests: {allow_sparse: true}\n' >"$work/api-sparse.yaml"
  start_wharf "$port" "$work/api-sparse-data" "$work/api-sparse.log" --config "$work/api-sparse.yaml" || return 1
  PIDS+=("$WHARF_PID")
  step python3 tests/api/run.py --url "http://127.0.0.1:$port" --target wharf-sparse -k sparse || rc=1
  stop_pid "$WHARF_PID"
  # the whole suite again with the metadata on PostgreSQL
  pg_up || return 1
  port=$(free_port)
  pg_config "$work/api-pg.yaml" api 'trusted_proxies: ["127.0.0.1"]'
  start_wharf "$port" "$work/api-pg-data" "$work/api-pg.log" --config "$work/api-pg.yaml" || return 1
  PIDS+=("$WHARF_PID")
  echo "--- the API suite on PostgreSQL"
  step python3 tests/api/run.py --url "http://127.0.0.1:$port" --target wharf || rc=1
  stop_pid "$WHARF_PID"
  return $rc
}

# The same suite against CNCF distribution 2.8 (Debian's docker-registry):
# keeps the suite honest; wharf's deliberate differences are marked in it.
stage_api_distribution() {
  local port; port=$(free_port)
  bash tests/api/start-distribution.sh "$work/distribution" "$port" >/dev/null || return 1
  PIDS+=("$(cat "$work/distribution/pid")")
  python3 tests/api/run.py --url "http://127.0.0.1:$port" --target distribution
  local rc=$?
  stop_pid "$(cat "$work/distribution/pid")"
  return $rc
}

# The unit tests and the API suite again on an ASan + UBSan build (GCC, in
# build-asan/; warnings not errors there: GCC's sanitizers raise false
# -Wmaybe-uninitialized in Boost.Beast): any report fails the stage.
stage_sanitize() {
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWHARF_SANITIZE=ON -DWHARF_WERROR=OFF >/dev/null &&
    cmake --build build-asan -j"$(nproc)" >"$work/asan-build.log" 2>&1 || { tail -30 "$work/asan-build.log"; return 1; }
  pg_up && s3_up || return 1
  (cd build-asan && UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2) || return 1
  local WHARF_BIN=$root/build-asan/wharf port rc=0
  port=$(free_port)
  printf 'trusted_proxies: ["127.0.0.1"]\n' >"$work/asan-api.yaml"
  ASAN_OPTIONS=detect_leaks=0 start_wharf "$port" "$work/asan-api-data" "$work/asan-api.log" --config "$work/asan-api.yaml" ||
    return 1
  PIDS+=("$WHARF_PID")
  step python3 tests/api/run.py --url "http://127.0.0.1:$port" --target wharf || rc=1
  stop_pid "$WHARF_PID"
  if grep -E "AddressSanitizer|runtime error:" "$work/asan-api.log"; then
    echo "sanitizer reports in the server's log ($work/asan-api.log)"
    rc=1
  fi
  return $rc
}

stage_durability() { step bash tests/durability/crash.sh; }
stage_squash() { bash tests/squash/run.sh; }
stage_fuzz() { FUZZ_WORK="$work/fuzz" bash tests/fuzz/run.sh 30; }
stage_auth() {
  step bash tests/auth/matrix.sh && step bash tests/auth/hardening.sh && step bash tests/auth/listing.sh && step bash tests/auth/clients.sh
}
stage_ui() { bash tests/ui/run.sh; }
stage_server() {
  step bash tests/server/tls_and_logs.sh && step python3 tests/server/http_limits.py "$root/build/wharf" "$work/http-limits" &&
    step python3 tests/server/squash_memory.py "$root/build/wharf" "$work/squash-memory" &&
    step python3 tests/server/push_index.py "$root/build/wharf" "$work/push-index" &&
    step bash tests/server/squash_ops.sh && step bash tests/server/gc.sh && step bash tests/server/config_cli.sh
}

stage_e2e() {
  local port; port=$(free_port)
  start_wharf "$port" "$work/e2e-data" "$work/e2e-wharf.log" || return 1
  PIDS+=("$WHARF_PID")
  bash tests/e2e/run.sh "127.0.0.1:$port" skopeo podman docker squash
  local rc=$?
  stop_pid "$WHARF_PID"
  return $rc
}

for s in "${stages[@]}"; do
  case $s in
    unit) run_stage unit stage_unit ;;
    api) run_stage "api (wharf)" stage_api ;;
    api-distribution) run_stage "api (distribution 2.8 reference)" stage_api_distribution ;;
    durability) run_stage "durability (kill -9 at named points)" stage_durability ;;
    auth) run_stage "auth (permission matrix; docker/podman/skopeo/ctr through the token flow)" stage_auth ;;
    ui) run_stage "ui (Playwright + chromium: Fetch Tag to docker run)" stage_ui ;;
    server) run_stage "server (TLS, logs, SIGTERM drain, slow clients, connection limits, framing, squash operations, gc)" stage_server ;;
    e2e) run_stage "e2e real clients" stage_e2e ;;
    pg-s3) run_stage "pg-s3 (two replicas behind nginx on PostgreSQL + Ceph RGW: API suite, real clients with presigned redirects, backend faults, replicas killed mid-push, squash relays, online gc, the OCI image; listing, wharf migrate, upload writers, revocations, squash operations, gc, a 5 GiB blob)" stage_pg_s3 ;;
    squash) run_stage "squash merge semantics vs umoci (generated cases)" stage_squash ;;
    fuzz) run_stage "fuzz (libFuzzer: layer decoder, tar reader, planner; 30 s)" stage_fuzz ;;
    sanitize) run_stage "sanitize (ASan + UBSan: unit tests and the API suite)" stage_sanitize ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
cleanup; PIDS=()
rm -rf "$work" ${PG_BASE:+"$PG_BASE"} ${CEPH_BASE:+"$CEPH_BASE"} ${CEPH_BIG_BASE:+"$CEPH_BIG_BASE"}
CEPH_BASE= CEPH_BIG_BASE= PG_BASE=
for r in "${results[@]}"; do [[ $r == PASS* ]] || exit 1; done
exit 0
