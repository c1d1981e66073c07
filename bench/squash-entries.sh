#!/usr/bin/env bash
# Squash memory per entry (a benchmark, not a test): a one-layer image of
# N empty files (default 10^6, bench/many_entries.py) is pushed to a fresh
# wharf and squashed uncached; prints wharf's peak RSS during the push-time
# index and during the build, its RSS after the build, and bytes per entry,
# beside the reference in the same run: GNU tar extracting the same layer
# (peak RSS of a streaming extractor, which keeps no per-entry state) and the
# issue's target (64 MiB + 96 B per entry + the entries' path bytes).
# Usage: bench/squash-entries.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/common.sh
N=${1:-1000000}
work=$(mktemp -d /tmp/wharf-bench-entries.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do stop_pid "$p"; done; rm -rf "$work"' EXIT
layer=/tmp/wharf-bench-entries-$N.tar.gz
[ -f "$layer" ] || python3 bench/many_entries.py layer "$layer" "$N"
kb() { awk -v k="$2" '$1==k":"{print $2}' "/proc/$1/status"; }
port=$(free_port)
printf 'log: {requests: false}\n' >"$work/c.yaml"
start_wharf "$port" "$work/data" "$work/log" --config "$work/c.yaml"
PIDS+=("$WHARF_PID")
idle=$(kb "$WHARF_PID" VmRSS)
python3 bench/many_entries.py push "http://127.0.0.1:$port" bench/many "$layer"
for _ in $(seq 600); do  # the push-time index is done when its record exists
  [ "$(curl -sf "http://127.0.0.1:$port/metrics" | awk '$1=="wharf_squash_layers_indexed_total"{print $2}')" = 1 ] && break
  sleep 0.1
done
sleep 0.5
index_hwm=$(kb "$WHARF_PID" VmHWM)
after_index=$(kb "$WHARF_PID" VmRSS)
# The build's own peak: VmHWM cannot be reset, so sample VmRSS while it runs.
( while kill -0 "$WHARF_PID" 2>/dev/null; do kb "$WHARF_PID" VmRSS; sleep 0.02; done ) >"$work/rss" &
sampler=$!
t0=$(date +%s.%N)
curl -sf "http://127.0.0.1:$port/c1/squash/bench/many/v1" -o /dev/null
t1=$(date +%s.%N)
sleep 0.5
kill "$sampler" 2>/dev/null || true
build_peak=$(sort -n "$work/rss" | tail -1)
after=$(kb "$WHARF_PID" VmRSS)
mkdir "$work/x"
tar_peak=$(python3 - "$layer" "$work/x" <<'PY'
import resource, subprocess, sys
subprocess.run(["tar", "-xzf", sys.argv[1], "-C", sys.argv[2]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)
paths=$((N * 13 + N / 1000 * 4))
target=$(( (64 * 1024 * 1024 + 96 * N + paths) / 1024 ))
printf '%-44s %12s\n' "entries" "$N"
printf '%-44s %9d KiB\n' "wharf idle RSS" "$idle"
printf '%-44s %9d KiB  (%d B/entry)\n' "wharf peak RSS, push-time index" "$index_hwm" $(( (index_hwm - idle) * 1024 / N ))
printf '%-44s %9d KiB\n' "wharf RSS after the index" "$after_index"
printf '%-44s %9d KiB  (%d B/entry)\n' "wharf peak RSS, uncached squash build" "$build_peak" $(( (build_peak - idle) * 1024 / N ))
printf '%-44s %9d KiB\n' "wharf RSS after the build" "$after"
printf '%-44s %9s s\n' "build time" "$(python3 -c "print(f'{$t1-$t0:.2f}')")"
printf '%-44s %9d KiB\n' "reference: GNU tar -xzf peak RSS" "$tar_peak"
printf '%-44s %9d KiB\n' "target: 64 MiB + 96 B/entry + path bytes" "$target"
