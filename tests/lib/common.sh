# tests/lib/common.sh — shared helpers for the shell test scripts: free
# ports, starting wharf in the background and stopping it by PID, assertions.
# Everything listens on 127.0.0.1 only. Never kills by name.

WHARF_BIN=${WHARF_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/wharf}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL [tries]: until URL answers (any status)
wait_http() {
  local url=$1 tries=${2:-100}
  for _ in $(seq "$tries"); do
    curl -s -o /dev/null "$url" && return 0
    sleep 0.1
  done
  echo "nothing answers at $url" >&2
  return 1
}

# start_wharf PORT DATA_DIR LOG [extra serve args...]; sets WHARF_PID.
# An open registry (--no-auth) unless WHARF_AUTH=1; with accounts, the keys
# go to $WHARF_KEY_DIR (default: DATA_DIR.keys, beside the data directory).
# WHARF_TEST_BACKEND=pg-s3 (with WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT,
# which scripts/test.sh exports) puts each data directory's metadata and
# blobs in a PostgreSQL schema and an RGW bucket named after the directory,
# so a script written for the embedded stores runs on the remote ones:
# backend_config DATA_DIR [CONFIG] prints a config that is CONFIG plus those
# sections (or CONFIG itself, or nothing, on the embedded default), and
# start_wharf uses it. Scripts pass it to the CLI: --config "$(backend_config ...)".
backend_name() { echo "t$(realpath -m "$1" | sha256sum | cut -c1-20)"; }
backend_config() {
  local data=$1 cfg=${2:-}
  if [ "${WHARF_TEST_BACKEND:-}" != pg-s3 ]; then
    [ -n "$cfg" ] && echo "$cfg"
    return 0
  fi
  local name out
  name=$(backend_name "$data")
  out=$(realpath -m "$data").backend.yaml
  s3_request PUT "/$name" >/dev/null 2>&1 || true  # exists already on a restart
  {
    [ -n "$cfg" ] && cat "$cfg"
    printf 'metadata: {driver: postgres, postgres: {dsn: "%s", schema: %s}}
' "$WHARF_TEST_PG_DSN" "$name"
    printf 'storage: {driver: s3, s3: {endpoint: "%s", bucket: %s, access_key: testak, secret_key: testsk}}
' \
      "$WHARF_TEST_S3_ENDPOINT" "$name"
  } >"$out"
  echo "$out"
}
# s3_request METHOD PATH [curl args...]: a SigV4-signed request to the test RGW
s3_request() {
  local method=$1 path=$2
  shift 2
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u testak:testsk -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -X "$method" "$WHARF_TEST_S3_ENDPOINT$path" "$@"
}

start_wharf() {
  local port=$1 data=$2 log=$3
  shift 3
  if [ "${WHARF_TEST_BACKEND:-}" = pg-s3 ]; then  # --config CONFIG becomes CONFIG plus the backend sections
    local args=() cfg=""
    while [ $# -gt 0 ]; do
      if [ "$1" = --config ]; then cfg=$2; shift 2; else args+=("$1"); shift; fi
    done
    set -- "${args[@]}" --config "$(backend_config "$data" "$cfg")"
  fi
  local open=(--no-auth)
  if [ "${WHARF_AUTH:-0}" = 1 ]; then
    open=()
    export WHARF_KEY_DIR=${WHARF_KEY_DIR:-$data.keys}
  fi
  "$WHARF_BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" "${open[@]}" "$@" >>"$log" 2>&1 &
  WHARF_PID=$!
  wait_http "http://127.0.0.1:$port/v2/"
}

# stop_pid PID: SIGTERM, wait, then SIGKILL
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# make_work NAME: sets $work to a fresh scratch dir and PIDS=(); on exit every
# PID in PIDS is stopped and the scratch dir removed.
make_work() {
  work=$(mktemp -d "/tmp/wharf-$1.XXXXXX")
  PIDS=()
  trap _common_cleanup EXIT
}
_common_cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done
  rm -rf "$work"
}
