#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for
# FUZZ_SECONDS (default 30) from a seed corpus of real layer shapes. Exit 0
# when no crash was found. Usage: tests/fuzz/run.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-30}}
out=${FUZZ_WORK:-/tmp/wharf-fuzz}
mkdir -p "$out/corpus"
# The fuzz target links the part libraries (wharf_squash and what it links),
# built by CMake with clang, the sanitizers and fuzzer coverage (WHARF_FUZZ).
cmake -S "$root" -B "$out/build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DWHARF_FUZZ=ON >/dev/null
cmake --build "$out/build" -j"$(nproc)" --target wharf_layer_fuzz >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
bin="$out/build/wharf_layer_fuzz"
# Seeds: tars with long names, PAX, hardlinks and whiteouts, plain, gzip and zstd.
if [ -z "$(ls -A "$out/corpus")" ]; then
  s=$(mktemp -d)
  mkdir -p "$s/t/d/$(printf 'n%.0s' {1..120})"
  echo hi >"$s/t/d/f"; ln "$s/t/d/f" "$s/t/d/hl"; ln -s ../f "$s/t/d/sl"; : >"$s/t/d/.wh.gone"; : >"$s/t/.wh..wh..opq"
  tar -C "$s/t" --format=gnu -cf "$out/corpus/gnu.tar" .
  tar -C "$s/t" --format=pax -cf "$out/corpus/pax.tar" .
  gzip -c "$out/corpus/pax.tar" >"$out/corpus/pax.tar.gz"
  zstd -q -c "$out/corpus/gnu.tar" >"$out/corpus/gnu.tar.zst"
  rm -rf "$s"
fi
# A gzip layer of many deflate blocks, for the inflate checkpoint round trip.
if [ ! -s "$out/corpus/blocks.tar.gz" ]; then
  s=$(mktemp -d)
  seq 1 40000 | sed 's/$/ layer image wharf squash/' >"$s/f"
  tar -C "$s" -cf - f | gzip -c >"$out/corpus/blocks.tar.gz"
  rm -rf "$s"
fi
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 "$out/corpus" 2>&1 | tail -5
