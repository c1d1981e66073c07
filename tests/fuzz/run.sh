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
src=(src/core/digest.cc src/core/metrics.cc src/squash/layer_decoder.cc src/squash/tar.cc src/squash/layer_index.cc src/squash/plan.cc src/squash/build.cc src/squash/index_codec.cc)
bin="$out/layer_fuzz"
if [ ! -x "$bin" ] || [ -n "$(find "$root/src/squash" "$here/layer_fuzz.cc" -newer "$bin" -print -quit)" ]; then
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src" "$here/layer_fuzz.cc" "${src[@]/#/$root/}" \
    $(pkg-config --cflags --libs libisal libzstd) -lcrypto -lpthread -o "$bin"
fi
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
