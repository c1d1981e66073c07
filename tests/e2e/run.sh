#!/bin/bash
# Run wharf's end-to-end tests with real clients (skopeo, podman, Docker engine, ctr)
# against a registry already listening at REGISTRY_ADDR (plain HTTP on loopback).
#
# Usage: tests/e2e/run.sh REGISTRY_ADDR [SUITE ...]      e.g. tests/e2e/run.sh 127.0.0.1:5000
#   SUITE: skopeo podman docker (default: all three, in that order)
# Environment: E2E_REPLICAS="HOST:PORT ..." (REGISTRY_ADDR is a load balancer: counters are
#   summed over these replicas); E2E_SKIP_INSTALL=1 skips tests/e2e/install-deps.sh; E2E_VERBOSE=1 streams
#   every test's output; E2E_KEEP=1 keeps the scratch dirs (see lib.sh).
# Exit status 0 only if every test passed. The last line is "N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ADDR=${1:-}
if [ -z "$ADDR" ] || [ "$ADDR" = -h ] || [ "$ADDR" = --help ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
shift
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(skopeo podman docker)
[ "$(id -u)" = 0 ] || { echo "run.sh: the end-to-end tests run as root" >&2; exit 2; }

T0=$EPOCHREALTIME
if [ "${E2E_SKIP_INSTALL:-0}" != 1 ]; then
  "$HERE/install-deps.sh" || { echo "run.sh: installing the clients failed" >&2; exit 2; }
fi
if ! curl -s -o /dev/null -m 5 "http://$ADDR/v2/"; then
  echo "run.sh: no registry answers at http://$ADDR/v2/" >&2
  exit 2
fi

RESULTS=$(mktemp /tmp/wharf-e2e-results.XXXXXX)
trap 'rm -f "$RESULTS"' EXIT
export E2E_RESULTS=$RESULTS
export E2E_NS=${E2E_NS:-e2e/$(date +%Y%m%d%H%M%S)-$$}

echo "== wharf e2e: registry $ADDR, repositories under $E2E_NS/"
rcs=0
for s in "${SUITES[@]}"; do
  [ -x "$HERE/$s.sh" ] || { printf 'FAIL\t%s/(no such suite)\t0.0\n' "$s" >>"$RESULTS"; rcs=1; continue; }
  echo "== $s"
  before=$(grep -c "	$s/" "$RESULTS")
  "$HERE/$s.sh" "$ADDR"
  rc=$?
  after=$(grep -c "	$s/" "$RESULTS")
  if [ "$rc" != 0 ]; then
    rcs=1
    if [ "$after" = "$before" ]; then
      printf 'FAIL\t%s/(suite aborted, exit %s)\t0.0\n' "$s" "$rc" >>"$RESULTS"
    fi
  fi
done

secs=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
pass=$(grep -c '^PASS' "$RESULTS")
fails=$(grep -c '^FAIL' "$RESULTS")
echo
echo "== summary (registry $ADDR, ${secs}s in all)"
awk -F'\t' '{printf "%s  %-44s %6ss\n", $1, $2, $3}' "$RESULTS"
if [ "$fails" -gt 0 ]; then
  echo
  echo "failed:"
  awk -F'\t' '$1=="FAIL"{print "  " $2}' "$RESULTS"
fi
echo
echo "e2e: $pass passed, $fails failed"
[ "$fails" -eq 0 ] && [ "$rcs" -eq 0 ]
