#!/usr/bin/env bash
# Squash benchmark (a script, not a test): builds realistic images from this
# machine's own files (a 1.1 GB single-layer image and a 5-layer image that
# adds, replaces, deletes and opaque-whiteouts), pushes them to wharf, and
# prints wharf's figures beside the references measured in the same run:
#   - uncached squash of the 1-layer image vs `igzip -d` of its layer to /dev/null,
#     with the layer index built at push time and without (index_on_push off);
#   - uncached squash of the 5-layer image vs `igzip -d` of its layers one after another;
#   - vs what a user does without wharf: skopeo copy to an OCI layout,
#     umoci raw unpack, tar of the tree;
#   - cached squash served vs nginx serving the same file;
#   - first-byte latency of an uncached 1 GiB squash, and peak RSS of the server;
#   - with --backend pg+s3, besides: the 1-layer image on a wharf whose metadata
#     is on PostgreSQL 15 and whose blobs and squash cache are on Ceph RGW
#     (both started here by bench/pgs3.sh, as scripts/test.sh does; stopped by
#     PID): its uncached squash (index built at push) and its cached squash
#     served (redirect: proxy), beside the filesystem figures.
# Usage: bench/squash.sh [--quick] [--backend fs|pg+s3]
#   (--quick: smaller images, for smoke runs; fs, the default: the figures above only)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$root/tests/lib/common.sh"
quick=0; backend=fs
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --backend) backend=${2:-}; shift ;;
    --backend=*) backend=${1#--backend=} ;;
    *) echo "usage: bench/squash.sh [--quick] [--backend fs|pg+s3]"; exit 2 ;;
  esac
  shift
done
case $backend in fs|pg+s3) ;; *) echo "unknown backend: $backend (fs or pg+s3)"; exit 2 ;; esac
for t in igzip skopeo umoci nginx curl; do command -v $t >/dev/null || { echo "needs $t (apt-get install isal skopeo umoci nginx-light curl)"; exit 2; }; done
[ -x "$WHARF_BIN" ] || bash "$root/scripts/build.sh"

cache=/var/tmp/wharf-bench-images; [ $quick = 1 ] && cache+=-quick
work=$(mktemp -d /tmp/wharf-bench-squash.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done
  if declare -F pgs3_down >/dev/null; then pgs3_down; fi  # --backend pg+s3: RGW, PostgreSQL (by PID)
  rm -rf "$work"
}
trap cleanup EXIT

secs() { python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
elapsed() { python3 -c "print(f'{$2-$1:.3f}')"; }
mbps() { python3 -c "print(f'{$1/1e6/$2:.0f}')"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# ---- images (cached between runs) ---------------------------------------------
# layout DIR TAG LAYER.tar.gz... : an OCI layout with gzip layers
make_layout() {
  local dir=$1 tag=$2; shift 2
  mkdir -p "$dir/blobs/sha256"
  local layers="" diffs="" hist="" l d s id
  for l in "$@"; do
    d=$(sha256sum "$l" | cut -d' ' -f1); s=$(stat -c%s "$l")
    id=$(igzip -dc "$l" | sha256sum | cut -d' ' -f1)
    cp "$l" "$dir/blobs/sha256/$d"
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$s}"
    diffs+="${diffs:+,}\"sha256:$id\""
    hist+="${hist:+,}{\"created_by\":\"$(basename "$l")\"}"
  done
  local cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/bin\"],\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]},\"history\":[$hist]}"
  printf '%s' "$cfg" >"$dir/config"; local cd; cd=$(sha256sum "$dir/config" | cut -d' ' -f1); mv "$dir/config" "$dir/blobs/sha256/$cd"
  local man="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":${#cfg}},\"layers\":[$layers]}"
  printf '%s' "$man" >"$dir/m"; local md; md=$(sha256sum "$dir/m" | cut -d' ' -f1); mv "$dir/m" "$dir/blobs/sha256/$md"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' "$md" "${#man}" "$tag" >"$dir/index.json"
}
tgz() { local out=$1; shift; tar --numeric-owner -cf - "$@" 2>/dev/null | igzip -1 -c >"$out"; }

if [ ! -f "$cache/done" ]; then
  rm -rf "$cache"; mkdir -p "$cache/l"
  echo "building benchmark images in $cache (once)..." >&2
  if [ $quick = 1 ]; then one=(/usr/lib/python3.11); five=(/usr/lib/python3 /usr/lib/gcc/x86_64-linux-gnu/12/plugin /usr/share/doc /usr/lib/python3.11 /usr/share/zoneinfo)
  else one=(/usr/lib/x86_64-linux-gnu); five=(/usr/lib/llvm-14 /usr/lib/gcc /usr/lib/jvm /usr/lib/python3.11 /usr/lib/postgresql); fi
  tgz "$cache/l/one.tgz" -C / "${one[@]#/}"
  # five layers: three bases, then one that replaces and deletes, then one that opaque-whiteouts
  tgz "$cache/l/f1.tgz" -C / "${five[0]#/}"
  tgz "$cache/l/f2.tgz" -C / "${five[1]#/}"
  tgz "$cache/l/f3.tgz" -C / "${five[2]#/}"
  m="$cache/mod"; mkdir -p "$m/${five[1]#/}" "$m/${five[0]#/}"
  cp -a "/${five[3]#/}" "$m/${five[3]#/}" 2>/dev/null || true
  first=$(find "/${five[0]#/}" -type f -size +100k | head -20 || true)
  for f in $first; do mkdir -p "$m$(dirname "$f")"; head -c 200000 /dev/urandom >"$m$f"; done  # replaced files
  sub=$(find "/${five[1]#/}" -mindepth 1 -maxdepth 1 | sort | head -1 || true); : >"$m$(dirname "$sub")/.wh.$(basename "$sub")"
  tar --numeric-owner -C "$m" -cf - . | igzip -1 -c >"$cache/l/f4.tgz"
  o="$cache/opq"; osub=$(find "/${five[2]#/}" -mindepth 1 -maxdepth 1 -type d -print -quit); mkdir -p "$o$osub"
  : >"$o$osub/.wh..wh..opq"; echo new >"$o$osub/only-this"
  cp -a "/${five[4]#/}" "$o/${five[4]#/}" 2>/dev/null || { mkdir -p "$o$(dirname "${five[4]}")"; cp -a "${five[4]}" "$o${five[4]}"; }
  tar --numeric-owner -C "$o" -cf - . | igzip -1 -c >"$cache/l/f5.tgz"
  rm -rf "$m" "$o"
  make_layout "$cache/one" v1 "$cache/l/one.tgz"
  make_layout "$cache/five" v1 "$cache/l/f1.tgz" "$cache/l/f2.tgz" "$cache/l/f3.tgz" "$cache/l/f4.tgz" "$cache/l/f5.tgz"
  touch "$cache/done"
fi
one_layer=$(ls "$cache/l/one.tgz"); five_layers=("$cache"/l/f{1,2,3,4,5}.tgz)
usize() { igzip -dc "$@" | wc -c; }
one_bytes=$(usize "$one_layer")

# ---- servers ------------------------------------------------------------------------
port=$(free_port); port2=$(free_port)
printf 'log: {requests: false}\n' >"$work/on.yaml"
printf 'log: {requests: false}\nsquash: {index_on_push: false}\n' >"$work/off.yaml"
start_wharf "$port" "$work/data" "$work/wharf.log" --config "$work/on.yaml"; PIDS+=("$WHARF_PID"); wpid=$WHARF_PID
idle_rss=$(awk '/VmRSS/{print $2}' /proc/$wpid/status)
start_wharf "$port2" "$work/data2" "$work/wharf2.log" --config "$work/off.yaml"; PIDS+=("$WHARF_PID"); wpid2=$WHARF_PID
push() { skopeo copy -q --dest-tls-verify=false "oci:$1:v1" "docker://127.0.0.1:$2/$3:v1"; }
push "$cache/one" "$port" bench/one; push "$cache/five" "$port" bench/five
push "$cache/one" "$port2" bench/one; push "$cache/five" "$port2" bench/five
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1==n{print $2}' | tail -1; }
for _ in $(seq 600); do [ "$(metric "$port" wharf_squash_background_indexes_total)" = 2 ] && break; sleep 0.2; done

# ---- measurements --------------------------------------------------------------------
t0=$(secs); for l in "${five_layers[@]}"; do igzip -dc "$l" >/dev/null; done; t1=$(secs); igzip_five=$(elapsed "$t0" "$t1")
# The machine's ceiling for any design that keeps its output: writing that many
# bytes into a fresh file (page cache; on some VMs new pages are costly).
t0=$(secs); head -c "$one_bytes" /dev/zero | dd of="$work/ddw" bs=1M 2>/dev/null; t1=$(secs); dd_one=$(elapsed "$t0" "$t1"); rm -f "$work/ddw"
# Let the kernel finish with that file (writeback, freeing its pages) before
# the next figure: measured right after, the first squash shared the machine
# with it (0.79-0.81x igzip in the script against 0.88x alone).
sync; sleep 2
five_bytes=$(usize "${five_layers[@]}")

squash_time() {  # PORT REPO [TAG] -> "seconds first_byte_seconds bytes"
  local tag=${3:-v1}
  curl -sf -o /dev/null -w '%{time_total} %{time_starttransfer} %{size_download}\n' "http://127.0.0.1:$1/c1/squash/$2/$tag"
  # After a build the server compresses the layer's gzip piece: let it finish
  # so the next measurement has the machine to itself.
  for _ in $(seq 600); do
    curl -sfI -H 'Accept-Encoding: gzip' "http://127.0.0.1:$1/c1/squash/$2/$tag" | grep -qi '^content-length' && break
    sleep 0.1
  done
}
# The 1-layer figure, three times: each round an uncached squash of its own
# variant of the image (bench/variants.py: same layer, one label more in the
# config, so its own cache entry; the layer index is shared), right after an
# `igzip -d` of the layer, so both sides see the same machine; the median
# of each is reported and every round is listed.
variants=$(python3 "$here/variants.py" "http://127.0.0.1:$port" bench/one v1 3)
sleep 2; sync
one_rounds=""; igzip_rounds=(); idx_rounds=()
for v in $variants; do
  t0=$(secs); igzip -dc "$one_layer" >/dev/null; t1=$(secs); igzip_rounds+=("$(elapsed "$t0" "$t1")")
  read -r t fb out <<<"$(squash_time "$port" "bench/one" "$v")"
  idx_rounds+=("$t"); one_rounds+="${one_rounds:+, }$(ratio "${igzip_rounds[-1]}" "$t")x"
  [ -n "${one_idx_fb:-}" ] || { one_idx_fb=$fb; one_out=$out; }
  sync; sleep 1
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
one_idx=$(median "${idx_rounds[@]}"); igzip_one=$(median "${igzip_rounds[@]}")
one_rss=$(awk '/VmHWM/{print $2}' /proc/$wpid/status)
# What the 1-layer image's per-path index is: its entries, and the bytes of
# the persisted index and of its saved inflate states (blobs in the store).
read -r idx_entries idx_bytes idx_states <<<"$(python3 - "$work/data" "sha256:$(sha256sum "$one_layer" | cut -d' ' -f1)" <<'PY2'
import os, sqlite3, sys
data, layer = sys.argv[1], sys.argv[2]
def size(d):
    if not d: return 0
    h = d.split(":")[1]
    return os.path.getsize(os.path.join(data, "blobs", "sha256", h[:2], h))
r = sqlite3.connect("file:%s/wharf.db?mode=ro" % data, uri=True).execute(
    "SELECT entries, index_digest, states_digest FROM layer_index WHERE layer_digest = ?", (layer,)).fetchone()
print(r[0], size(r[1]), size(r[2]))
PY2
)"
read -r one_noidx one_noidx_fb _ <<<"$(squash_time "$port2" bench/one)"
read -r five_idx five_idx_fb _ <<<"$(squash_time "$port" bench/five)"
read -r five_noidx _ _ <<<"$(squash_time "$port2" bench/five)"

# As users meet it, each beside an igzip -d of the same
# layer measured the same way:
# - the layer no longer in the page cache: the caches are dropped before the
#   igzip of wharf's own blob file and again before an uncached squash of a
#   fresh variant (its index is persisted, so only the layer is read);
# - the squash asked for the moment the push completes, on a fresh server
#   (index_on_push on: the push-time index is still running, the build joins
#   it); its reference is the igzip from disk (a push writes around the page
#   cache, so the layer is not in memory either).
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
one_blob="$work/data/blobs/sha256/$(sha256sum "$one_layer" | cut -c1-2)/$(sha256sum "$one_layer" | cut -d' ' -f1)"
cold_variant=$(python3 "$here/variants.py" "http://127.0.0.1:$port" bench/one v1 1)
drop_caches; t0=$(secs); igzip -dc "$one_blob" >/dev/null; t1=$(secs); igzip_cold=$(elapsed "$t0" "$t1")
drop_caches; read -r one_cold _ _ <<<"$(squash_time "$port" bench/one "$cold_variant")"
port3=$(free_port)
start_wharf "$port3" "$work/data3" "$work/wharf3.log" --config "$work/on.yaml"; PIDS+=("$WHARF_PID")
drop_caches
t0=$(secs); push "$cache/one" "$port3" bench/one
read -r one_fresh _ _ <<<"$(squash_time "$port3" bench/one)"; t1=$(secs)
one_fresh_total=$(elapsed "$t0" "$t1")  # push + squash, for the record
stop_pid "$WHARF_PID"

# What a user does without wharf.
t0=$(secs)
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/five:v1" "oci:$work/user:v1"
umoci raw unpack --image "$work/user:v1" "$work/user-rootfs" >/dev/null 2>&1
tar -C "$work/user-rootfs" -cf - . >/dev/null
t1=$(secs); user_five=$(elapsed "$t0" "$t1")
rm -rf "$work/user" "$work/user-rootfs"

# Cached serving vs nginx serving the same bytes.
curl -sf "http://127.0.0.1:$port/c1/squash/bench/one/v1" -o "$work/www-one.tar"
mkdir -p "$work/nginx/tmp" "$work/www"; mv "$work/www-one.tar" "$work/www/one.tar"
chmod 755 "$work"  # nginx workers run as www-data
nport=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOC
daemon off; worker_processes 2; pid nginx.pid; error_log error.log warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path tmp; proxy_temp_path tmp;
  fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
  server { listen 127.0.0.1:$nport; root $work/www; } }
EOC
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & PIDS+=($!)
wait_http "http://127.0.0.1:$nport/one.tar"
# Steady state: the entry's gzip piece is compressed in the background right
# after the build (it reads the whole cache file back); wait until it is there
# (a gzip HEAD with a Content-Length) so it does not share the cores with the runs.
for _ in $(seq 120); do
  curl -sfI -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/c1/squash/bench/one/v1" | grep -qi '^content-length' && break
  sleep 0.5
done
# Ten downloads from each, taking turns; the median of each (and the best).
cw=(); cn=()
for _ in $(seq 10); do
  cw+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/c1/squash/bench/one/v1")")
  cn+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$nport/one.tar")")
done
# ---- --backend pg+s3: the 1-layer image on PostgreSQL + RGW ---------------------------------
# A wharf with the metadata on PostgreSQL and the blobs and the squash cache
# in a bucket on RGW (redirect: proxy, so it serves the cached squash itself).
# Its uncached squash is the first of v1, once the push-time index is there,
# as the fs figure "index built at push" (the layer comes from RGW instead of
# the page cache); the cached squash, ten downloads, as beside nginx above.
# One squash cache entry only: RGW's MemStore holds everything in RAM.
if [ "$backend" = pg+s3 ]; then
  ROOT=$root; . "$here/pgs3.sh"
  chmod 755 "$work"  # PostgreSQL runs as user postgres
  pgs3_up "$work" || exit 1
  s3_bucket squash || { echo "cannot create bucket squash on $S3"; exit 1; }
  printf 'log: {requests: false}\nmetadata: {driver: postgres, postgres: {dsn: "%s", schema: squash}}\nstorage: {driver: s3, s3: {endpoint: "%s", bucket: squash, access_key: testak, secret_key: testsk, redirect: proxy}}\n' \
    "$PG_DSN" "$S3" >"$work/s3.yaml"
  port4=$(free_port)
  start_wharf "$port4" "$work/data4" "$work/wharf4.log" --config "$work/s3.yaml"; PIDS+=("$WHARF_PID"); wpid4=$WHARF_PID
  push "$cache/one" "$port4" bench/one
  for _ in $(seq 600); do [ "$(metric "$port4" wharf_squash_background_indexes_total)" = 1 ] && break; sleep 0.2; done
  [ "$(metric "$port4" wharf_squash_background_indexes_total)" = 1 ] || echo "warning: no push-time index on pg+s3 after 120 s" >&2
  sync; sleep 1
  t0=$(secs); igzip -dc "$one_layer" >/dev/null; t1=$(secs); igzip_s3=$(elapsed "$t0" "$t1")
  read -r s3_one s3_one_fb _ <<<"$(squash_time "$port4" bench/one)"
  cs=()
  for _ in $(seq 10); do cs+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port4/c1/squash/bench/one/v1")"); done
  s3_rss=$(awk '/VmHWM/{print $2}' /proc/$wpid4/status)
  # the same archive as the filesystem wharf's (its cached v1, served by nginx
  # above), but for manifest.json and repositories, which name the registry
  curl -sf "http://127.0.0.1:$port4/c1/squash/bench/one/v1" -o "$work/s3-one.tar"
  s3_same=$(python3 - "$work/s3-one.tar" "$work/www/one.tar" <<'PY'
import hashlib, sys, tarfile
def members(path):
    out = {}
    with tarfile.open(path) as t:
        for m in t:
            if m.name in ("manifest.json", "repositories"):
                continue
            f = t.extractfile(m)
            out[m.name] = (m.type, m.size, hashlib.sha256(f.read()).hexdigest() if f else m.linkname)
    return out
a, b = members(sys.argv[1]), members(sys.argv[2])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print("the same archive as on fs (but for the registry's name in manifest.json)" if not diff
      else "DIFFERENT from the fs archive in %d member(s), e.g. %s" % (len(diff), diff[0]))
PY
)
  rm -f "$work/s3-one.tar"
fi

# ---- report --------------------------------------------------------------------------------
gb() { python3 -c "print(f'{$1/1e9:.2f} GB')"; }
echo
echo "wharf squash benchmark — $(date -u +%F), $(nproc) cores, $(uname -r); request logging off"
echo "1-layer image: $(gb "$one_bytes") uncompressed; 5-layer image: $(gb "$five_bytes") uncompressed; squashed 1-layer archive $(gb "$one_out")"
printf '\n%-58s %12s %12s %8s %s\n' "figure" "wharf" "reference" "ratio" "target"
row() { printf '%-58s %12s %12s %8s %s\n' "$@"; }
row "uncached squash 1 layer, index built at push (MB/s)" "$(mbps "$one_bytes" "$one_idx")" "$(mbps "$one_bytes" "$igzip_one")" "$(ratio "$igzip_one" "$one_idx")" ">= 0.8x igzip -d (median of 3)"
row "   each round, wharf vs the igzip -d just before it" "-" "-" "-" "$one_rounds"
row "writing a fresh file of that size, dd (MB/s)" "-" "$(mbps "$one_bytes" "$dd_one")" "-" "(the cache file's ceiling)"
row "uncached squash 1 layer, no index yet (MB/s)" "$(mbps "$one_bytes" "$one_noidx")" "$(mbps "$one_bytes" "$igzip_one")" "$(ratio "$igzip_one" "$one_noidx")" "(reported)"
row "uncached squash 1 layer, layer not in the page cache (MB/s)" "$(mbps "$one_bytes" "$one_cold")" "$(mbps "$one_bytes" "$igzip_cold")" "$(ratio "$igzip_cold" "$one_cold")" ">= 0.7x igzip -d from disk"
row "uncached squash 1 layer right after its push (s)" "$one_fresh" "$one_idx" "$(ratio "$one_fresh" "$one_idx")" "<= 1.5x the indexed case (ref column: indexed)"
row "   the same against igzip -d from disk (MB/s)" "$(mbps "$one_bytes" "$one_fresh")" "$(mbps "$one_bytes" "$igzip_cold")" "$(ratio "$igzip_cold" "$one_fresh")" "(push + squash: ${one_fresh_total} s)"
row "uncached squash 5 layers, indexes built at push (s)" "$five_idx" "$igzip_five" "$(ratio "$igzip_five" "$five_idx")" "> 1x igzip -d one after another"
row "uncached squash 5 layers, no index yet (s)" "$five_noidx" "$igzip_five" "$(ratio "$igzip_five" "$five_noidx")" "(reported)"
row "5 layers vs skopeo copy + umoci unpack + tar (s)" "$five_idx" "$user_five" "$(ratio "$user_five" "$five_idx")" ">= 5x"
cached_wharf=$(median "${cw[@]}"); cached_nginx=$(median "${cn[@]}")
best_wharf=$(printf '%s\n' "${cw[@]}" | sort -g | head -1); best_nginx=$(printf '%s\n' "${cn[@]}" | sort -g | head -1)
row "cached squash served, median of 10 (MB/s)" "$(mbps "$one_out" "$cached_wharf")" "$(mbps "$one_out" "$cached_nginx")" "$(ratio "$cached_nginx" "$cached_wharf")" ">= 0.9x nginx"
row "   best of the 10" "$(mbps "$one_out" "$best_wharf")" "$(mbps "$one_out" "$best_nginx")" "$(ratio "$best_nginx" "$best_wharf")" ""
row "first byte of uncached 1-layer squash, index at push (s)" "$one_idx_fb" "-" "-" "< 2 s"
row "first byte of uncached 1-layer squash, no index (s)" "$one_noidx_fb" "-" "-" "< 2 s"
row "peak RSS of wharf through the 1-layer squash (MB)" "$(( one_rss / 1024 ))" "-" "-" "< 64 MB + index + the push index backlog"
row "   its per-path index: entries / persisted KB / inflate states KB" "$idx_entries" "$(( idx_bytes / 1024 ))" "$(( idx_states / 1024 ))" "(the index part of the RSS line)"
row "idle RSS of wharf (MB)" "$(( idle_rss / 1024 ))" "-" "-" ""
if [ "$backend" = pg+s3 ]; then
  echo
  echo "on PostgreSQL 15 + Ceph RGW ($S3, MemStore; tests/lib/ceph_start.sh), the 1-layer image, redirect: proxy;"
  echo "its squash of v1 is $s3_same"
  row "uncached squash 1 layer, index built at push (MB/s)" "$(mbps "$one_bytes" "$s3_one")" "$(mbps "$one_bytes" "$igzip_s3")" "$(ratio "$igzip_s3" "$s3_one")" "fs: $(mbps "$one_bytes" "$one_idx") MB/s, $(ratio "$igzip_one" "$one_idx")x igzip -d"
  cached_s3=$(median "${cs[@]}"); best_s3=$(printf '%s\n' "${cs[@]}" | sort -g | head -1)
  row "cached squash served, median of 10 (MB/s)" "$(mbps "$one_out" "$cached_s3")" "$(mbps "$one_out" "$cached_nginx")" "$(ratio "$cached_nginx" "$cached_s3")" "fs: $(mbps "$one_out" "$cached_wharf") MB/s (ref: nginx, the same file)"
  row "   best of the 10" "$(mbps "$one_out" "$best_s3")" "$(mbps "$one_out" "$best_nginx")" "$(ratio "$best_nginx" "$best_s3")" "fs: $(mbps "$one_out" "$best_wharf") MB/s"
  row "first byte of uncached 1-layer squash, index at push (s)" "$s3_one_fb" "-" "-" "fs: $one_idx_fb s"
  row "peak RSS of wharf through the squash and its serving (MB)" "$(( s3_rss / 1024 ))" "-" "-" "fs: $(( one_rss / 1024 )) MB"
fi
