#!/usr/bin/env bash
# bench/before-after.sh — runs one benchmark script alternately with two
# wharf binaries (old, new, old, new, ...), RUNS times each, keeping every
# output in OUT_DIR/<old|new>-<n>.txt, for before/after figures of a change
# (medians of the runs in BENCHMARKS.md).
#
#   bash bench/before-after.sh OLD_BIN NEW_BIN bench/registry.sh [RUNS=3] [OUT_DIR]
set -euo pipefail
old=$1 new=$2 bench=$3 runs=${4:-3}
out=${5:-$(mktemp -d /tmp/wharf-before-after.XXXXXX)}
mkdir -p "$out"
for i in $(seq "$runs"); do
  for which in old new; do
    bin=$old; [ "$which" = new ] && bin=$new
    echo "== $(date +%T) $bench run $i with the $which binary ($bin)"
    WHARF_BIN=$bin bash "$bench" >"$out/$which-$i.txt" 2>&1 || echo "   (exit $?: see $out/$which-$i.txt)"
  done
done
echo "outputs in $out"

# Medians side by side: every table row of the benchmark's output
# ("label | number | ..." or columns apart by two or more spaces; its first
# number: wharf's figure), old vs new. Only the medians: run it with a
# fresh OUT_DIR, or RUNS=0 to summarize an OUT_DIR again.
python3 - "$out" "$runs" <<'PY'
import re, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def figures(path):
    rows = {}
    for line in open(path, errors="replace"):
        if line.startswith("-"):
            continue
        # "label | 123 | ..." (bench/registry.sh) or "label   123   456 ..." (bench/squash.sh)
        cells = [c.strip() for c in (line.split("|") if "|" in line else re.split(r"\s{2,}", line.rstrip()))]
        if len(cells) < 2:
            continue
        label = cells[0]
        for c in cells[1:]:
            m = re.fullmatch(r"[-+]?\d+(\.\d+)?", c)
            if m:
                rows.setdefault(label, float(c))
                break
    return rows
runs_of = {w: [figures("%s/%s-%d.txt" % (out, w, i)) for i in range(1, runs + 1)] for w in ("old", "new")}
labels = [l for l in runs_of["old"][0] if all(l in r for w in runs_of for r in runs_of[w])]
print("%-44s %12s %12s %8s" % ("figure (median of %d)" % runs, "old", "new", "new/old"))
for l in labels:
    o = statistics.median(r[l] for r in runs_of["old"])
    n = statistics.median(r[l] for r in runs_of["new"])
    print("%-44s %12g %12g %8s" % (l[:44], o, n, ("%.3f" % (n / o)) if o else "-"))
PY
