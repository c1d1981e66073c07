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
start_wharf() {
  local port=$1 data=$2 log=$3
  shift 3
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
