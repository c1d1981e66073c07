#!/bin/bash
# tests/squash/run.sh — merge-semantics suite for /c1/squash (see README.md).
#
# Generates the test images (gen_images.py), starts wharf (free port, scratch
# data dir, stopped by PID), pushes every case, and for each merge case
# compares the squashed layer, unpacked by umoci, with umoci's unpack of the
# original image; each error case must answer 4xx JSON twice (no cache entry).
# Prints PASS/FAIL per case; exits 0 only if every case passes.
#
# usage: tests/squash/run.sh [CASE...]      (default: every case)
# env:   JOBS=2         cases checked in parallel
#        SQUASH_KEEP=1  keep the scratch dir (printed at the end)
#        WHARF_BIN      wharf binary (default build/wharf)
# needs: root (umoci keeps owners and makes devices), python3, umoci, skopeo,
#        bsdtar (libarchive-tools), getfattr (attr), zstd, curl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/common.sh"
JOBS=${JOBS:-2}
umask 022  # umoci creates implied directories 0777 & ~umask; wharf writes them 0755

[ "$(id -u)" = 0 ] || { echo "run as root: umoci must keep owners and create device nodes" >&2; exit 2; }
for t in python3 umoci skopeo bsdtar getfattr zstd curl; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 2; }
done
[ -x "$WHARF_BIN" ] || { echo "no wharf binary at $WHARF_BIN (bash scripts/build.sh)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/wharf-squash.XXXXXX)
WHARF_PID=
cleanup() {
  [ -n "$WHARF_PID" ] && stop_pid "$WHARF_PID"
  if [ "${SQUASH_KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

GEN=$WORK/gen
python3 "$HERE/gen_images.py" "$GEN" >&2

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
start_wharf "$PORT" "$WORK/data" "$WORK/wharf.log"
python3 "$HERE/squashcheck.py" push-all "$BASE" "$GEN" "$WORK/data" >&2

mapfile -t ALL < <(python3 "$HERE/squashcheck.py" cases "$GEN")
if [ $# -gt 0 ]; then
  SEL=()
  for want in "$@"; do
    found=
    for line in "${ALL[@]}"; do [ "${line%% *}" = "$want" ] && SEL+=("$line") && found=1; done
    [ -n "$found" ] || { echo "no case named $want" >&2; exit 2; }
  done
else
  SEL=("${ALL[@]}")
fi

# run_case NAME REF_TAG KIND: writes $WORK/res/NAME (PASS/FAIL line) and $WORK/res/NAME.log
run_case() {
  local name=$1 ref_tag=$2 kind=$3 d=$WORK/cases/$1 rc=0
  mkdir -p "$d"
  exec >"$WORK/res/$name.log" 2>&1
  local url="$BASE/c1/squash/squash/$name/v1"
  if [ "$kind" = error ]; then
    local s1 s2
    s1=$(curl -s -o "$d/body1" -w '%{http_code}' "$url") || true
    s2=$(curl -s -o "$d/body2" -w '%{http_code}' "$url") || true
    python3 "$HERE/squashcheck.py" error "$GEN" "$name" "$s1" "$d/body1" "$s2" "$d/body2" || rc=1
  else
    if ! curl -sf "$url" -o "$d/sq.tar"; then
      echo "  GET $url failed: $(curl -s "$url" | head -c 500)"
      rc=1
    elif ! umoci raw unpack --image "$GEN/layout:$ref_tag" "$d/ref" >"$d/umoci-ref.log" 2>&1; then
      echo "  umoci could not unpack the original image:"; sed 's/^/    /' "$d/umoci-ref.log" | tail -5
      rc=1
    elif ! skopeo copy -q docker-archive:"$d/sq.tar" "oci:$d/sqlayout:t" >"$d/skopeo.log" 2>&1; then
      echo "  skopeo rejects the squashed archive:"; sed 's/^/    /' "$d/skopeo.log" | tail -5
      rc=1
    elif ! umoci raw unpack --image "$d/sqlayout:t" "$d/sq" >"$d/umoci-sq.log" 2>&1; then
      echo "  umoci could not unpack the squashed image:"; sed 's/^/    /' "$d/umoci-sq.log" | tail -5
      rc=1
    else
      python3 "$HERE/squashcheck.py" compare "$GEN" "$name" "$d/sq.tar" "$d/ref" "$d/sq" || rc=1
    fi
  fi
  if [ $rc = 0 ]; then echo "PASS $name" >"$WORK/res/$name"; else echo "FAIL $name" >"$WORK/res/$name"; fi
}

mkdir -p "$WORK/res" "$WORK/cases"
running=0
for line in "${SEL[@]}"; do
  read -r name ref_tag kind <<<"$line"
  run_case "$name" "$ref_tag" "$kind" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

pass=0 failn=0
for line in "${SEL[@]}"; do
  name=${line%% *}
  res=$(cat "$WORK/res/$name" 2>/dev/null || echo "FAIL $name")
  echo "$res"
  grep -v '^$' "$WORK/res/$name.log" 2>/dev/null | head -60 || true
  case $res in PASS*) pass=$((pass + 1)) ;; *) failn=$((failn + 1)) ;; esac
done
echo "squash merge suite: $pass passed, $failn failed"
[ "$failn" = 0 ]
