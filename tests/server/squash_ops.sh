#!/usr/bin/env bash
# Operating squashed downloads: priming (CLI while the server runs, the POST
# endpoint, auto-prime on push by config), the offline `wharf squash`, limits
# answered with a 4xx naming the limit (and no cache entry), LRU eviction and
# restarts, the build queue, and how builds and their readers behave when
# they overlap (sharing, slow, hanging-up and failing clients, the commit,
# HEAD), with builds held at named points by WHARF_PAUSE_AT (core/crash.h).
# With WHARF_TEST_BACKEND=pg-s3 (tests/lib/common.sh) on PostgreSQL + RGW.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
make_work squashops
bash "$here/../lib/make-oci-image.sh" "$work/img" v1 >/dev/null
bash "$here/../lib/make-oci-image.sh" "$work/img2" v1 >/dev/null
bash "$here/../lib/make-oci-image.sh" "$work/img3" v1 >/dev/null  # cache entries are per image: each case its own
bash "$here/../lib/make-oci-image.sh" "$work/img4" v1 >/dev/null
bash "$here/../lib/make-oci-image.sh" "$work/img5" v1 >/dev/null
push() { skopeo copy -q --dest-tls-verify=false "oci:$1:v1" "docker://127.0.0.1:$port/$2"; }
metric() {
  local text
  text=$(curl -sS "http://127.0.0.1:$port/metrics") || fail "no /metrics from wharf on port $port (is it running?)"
  awk -v n="$1" '$1==n{print $2}' <<<"$text" | tail -1
}
cached() { curl -sfI "http://127.0.0.1:$port/c1/squash/$1" | tr -d '\r' | grep -qi '^accept-ranges: bytes'; }

port=$(free_port)
cat >"$work/cfg.yaml" <<EOC
squash:
  auto_prime: {namespaces: [auto], repositories: [solo/repo]}
  cache_max_bytes: 150000
EOC
start_wharf "$port" "$work/data" "$work/wharf.log" --config "$work/cfg.yaml"; PIDS=("$WHARF_PID")

# --- prime from the CLI, against the running server's data
push "$work/img" ns/cli:v1
cached ns/cli/v1 && fail "cached before priming"
"$WHARF_BIN" squash prime ns/cli:v1 --data-dir "$work/data" --config "$(backend_config "$work/data" "$work/cfg.yaml")" \
  >"$work/prime.out"
grep -q '^primed ns/cli:v1' "$work/prime.out" || fail "prime CLI said: $(cat "$work/prime.out")"
cached ns/cli/v1 || fail "the server does not see the entry the CLI primed"
curl -sf "http://127.0.0.1:$port/c1/squash/ns/cli/v1" -o "$work/cli.tar"
[ -z "$(metric wharf_squash_builds_total)" ] || fail "the server built what the CLI primed"
[ "$(metric wharf_squash_cache_hits_total)" = 1 ] || fail "the download after priming was not a cache hit"
echo "PASS wharf squash prime NAME:TAG while the server runs"

# --- the offline squash gives the same layer bytes as the served download
"$WHARF_BIN" squash --from "oci:$work/img:v1" --to "$work/offline.tar"
layer() { tar -xOf "$1" "$(tar -xOf "$1" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Layers"][0])')"; }
cmp <(layer "$work/offline.tar") <(layer "$work/cli.tar") || fail "offline layer.tar differs from the served one"
"$WHARF_BIN" squash --from "docker-archive:$work/offline.tar" >"$work/again.tar"
cmp <(layer "$work/offline.tar") <(layer "$work/again.tar") || fail "squashing a squashed archive changed the layer"
echo "PASS wharf squash --from oci:/docker-archive: equals the served layer"
# --to a device or fifo is written in place (--to /dev/null once renamed a
# regular file over /dev/null); a fifo stands in for the device here.
mkfifo "$work/out.fifo"
cat "$work/out.fifo" >"$work/from-fifo.tar" & catpid=$!
"$WHARF_BIN" squash --from "oci:$work/img:v1" --to "$work/out.fifo"
[ -p "$work/out.fifo" ] || { kill $catpid; fail "wharf squash --to FIFO replaced the fifo"; }
wait $catpid
[ ! -e "$work/out.fifo.partial" ] || fail "wharf squash --to FIFO left a .partial file"
cmp "$work/from-fifo.tar" "$work/offline.tar" || fail "the archive written into a fifo differs"
echo "PASS wharf squash --to a fifo writes into it and leaves it a fifo"
# On a terminal (script(1) gives it one) the offline squash draws a progress
# bar: bytes done of the total, the rate and an ETA; into a file, nothing.
script -qec "'$WHARF_BIN' squash --from 'oci:$work/img:v1' --to '$work/tty.tar'" /dev/null >"$work/tty.out"
tr '\r' '\n' <"$work/tty.out" | grep -qE '^\[#+ *\] +[0-9.]+/ +[0-9.]+ MiB +[0-9.]+ MiB/s ETA +[0-9]+s' ||
  fail "no progress bar on a terminal: $(head -c 300 "$work/tty.out")"
cmp "$work/tty.tar" "$work/offline.tar" || fail "the archive written with a progress bar differs"
"$WHARF_BIN" squash --from "oci:$work/img:v1" --to "$work/notty.tar" 2>"$work/notty.err"
[ ! -s "$work/notty.err" ] || fail "a progress bar without a terminal: $(head -c 300 "$work/notty.err")"
echo "PASS wharf squash draws a progress bar (bytes, rate, ETA) on a terminal and none otherwise"
sleep 0.05  # the entries below are used later than this one

# --- POST prime endpoint and auto-prime on push
push "$work/img2" ns/post:v1
code=$(curl -s -o "$work/prime.json" -w '%{http_code}' -X POST "http://127.0.0.1:$port/c1/squash/ns/post/v1/prime")
[ "$code" = 202 ] || fail "POST prime gave $code"
for _ in $(seq 50); do cached ns/post/v1 && break; sleep 0.1; done
cached ns/post/v1 || fail "POST prime did not cache"
# Each image pushed here is new to the server (an image primed before would be cached already).
cached auto/repo/v1 && fail "auto/repo:v1 cached before its push"
push "$work/img4" auto/repo:v1
for _ in $(seq 50); do cached auto/repo/v1 && break; sleep 0.1; done
cached auto/repo/v1 || fail "a push to an auto-prime namespace was not primed"
push "$work/img5" solo/repo:v1
for _ in $(seq 50); do cached solo/repo/v1 && break; sleep 0.1; done
cached solo/repo/v1 || fail "a push to an auto-prime repository was not primed"
[ "$(metric wharf_squash_auto_primes_total)" = 2 ] || fail "auto primes: $(metric wharf_squash_auto_primes_total), expected 2"
push "$work/img3" other/repo:v1
push "$work/img3" solo/other:v1
sleep 0.5
cached other/repo/v1 && fail "a namespace without auto-prime was primed"
cached solo/other/v1 && fail "a repository not listed for auto-prime was primed"
[ "$(metric wharf_squash_auto_primes_total)" = 2 ] || fail "auto primes after pushes elsewhere: $(metric wharf_squash_auto_primes_total)"
echo "PASS POST .../prime and squash.auto_prime on push (by namespace and by repository)"

# --- LRU eviction: cache_max_bytes holds one ~110 KB entry at a time
cached ns/cli/v1 && fail "the least recently used entry was not evicted"
echo "PASS the cache is bounded by squash.cache_max_bytes (least recently used evicted)"
stop_pid "$WHARF_PID"

# --- least recently used, not oldest: three entries of ~213 KB each (a ~112 KB
# layer.tar and its ~101 KB gzip piece, both counted) where two fit
port=$(free_port)
printf 'squash:\n  cache_max_bytes: 500000\n' >"$work/lru.yaml"
start_wharf "$port" "$work/data-lru" "$work/wharf-lru.log" --config "$work/lru.yaml"; PIDS=("$WHARF_PID")
push "$work/img" lru/a:v1; push "$work/img2" lru/b:v1; push "$work/img3" lru/c:v1
gz_ready() { curl -sfI -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/c1/squash/$1" | tr -d '\r' | grep -qi '^content-length'; }
for r in a b; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/c1/squash/lru/$r/v1"
  for _ in $(seq 50); do gz_ready "lru/$r/v1" && break; sleep 0.1; done
done
cached lru/a/v1 && cached lru/b/v1 || fail "two entries did not fit in cache_max_bytes"
curl -sf -o /dev/null "http://127.0.0.1:$port/c1/squash/lru/a/v1"  # a is now used more recently than b
curl -sf -o /dev/null "http://127.0.0.1:$port/c1/squash/lru/c/v1"
for _ in $(seq 50); do cached lru/b/v1 || break; sleep 0.1; done
cached lru/b/v1 && fail "the least recently used entry (b) was not evicted"
cached lru/a/v1 || fail "the entry used after b (a) was evicted"
cached lru/c/v1 || fail "the entry just built (c) was evicted"
[ "$(metric wharf_squash_evictions_total)" = 1 ] || fail "evictions: $(metric wharf_squash_evictions_total), expected 1"
echo "PASS eviction takes the least recently used entry, counting layers and gzip pieces"
stop_pid "$WHARF_PID"

# --- the cache survives a restart; squash.repo_host names the host in RepoTags
printf 'squash:\n  cache_max_bytes: 500000\n  repo_host: registry.example.com\n' >"$work/lru2.yaml"
start_wharf "$port" "$work/data-lru" "$work/wharf-lru.log" --config "$work/lru2.yaml"; PIDS=("$WHARF_PID")
curl -sf "http://127.0.0.1:$port/c1/squash/lru/a/v1" -o "$work/a.tar"
[ -z "$(metric wharf_squash_builds_total)" ] || fail "an entry cached before the restart was built again"
[ "$(metric wharf_squash_cache_hits_total)" = 1 ] || fail "no cache hit after the restart"
[ "$(tar -xOf "$work/a.tar" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"])')" = "['registry.example.com/lru/a:v1']" ] ||
  fail "RepoTags with squash.repo_host: $(tar -xOf "$work/a.tar" manifest.json)"
echo "PASS the cache survives a restart; squash.repo_host sets the host in RepoTags"

# --- what is not a runnable image gets a 4xx JSON error naming why, and nothing is built
blob_put() {  # FILE -> digest; uploads it to lru/art
  local d; d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  curl -sf -X POST --data-binary @"$1" -H 'Content-Type: application/octet-stream' \
    "http://127.0.0.1:$port/v2/lru/art/blobs/uploads/?digest=$d" -o /dev/null || fail "blob upload failed"
  echo "$d"
}
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$work/empty-cfg.json"
printf 'some data' >"$work/data.bin"
printf '{}' >"$work/art-cfg.json"
ec=$(blob_put "$work/empty-cfg.json"); db=$(blob_put "$work/data.bin"); ac=$(blob_put "$work/art-cfg.json")
man() {  # TAG CONFIG_TYPE CONFIG_DIGEST CONFIG_SIZE LAYERS_JSON
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"$2\",\"digest\":\"$3\",\"size\":$4},\"layers\":$5}" \
    "http://127.0.0.1:$port/v2/lru/art/manifests/$1" -o /dev/null || fail "manifest $1 refused"
}
layer='[{"mediaType":"application/vnd.example.data","digest":"'$db'","size":9}]'
man artifact application/vnd.example.config+json "$ac" 2 "$layer"
man nolayers application/vnd.oci.image.config.v1+json "$ec" "$(stat -c%s "$work/empty-cfg.json")" '[]'
man datalayer application/vnd.oci.image.config.v1+json "$ec" "$(stat -c%s "$work/empty-cfg.json")" "$layer"
for t in artifact:artifact nolayers:'no layers' datalayer:'not a tar layer'; do
  code=$(curl -s -o "$work/art.json" -w '%{http_code}' "http://127.0.0.1:$port/c1/squash/lru/art/${t%%:*}")
  case "$code" in 4??) ;; *) fail "squash of ${t%%:*} gave $code" ;; esac
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["errors"][0]; assert sys.argv[2] in e["message"], e' "$work/art.json" "${t#*:}" ||
    fail "the error for ${t%%:*} does not say '${t#*:}': $(cat "$work/art.json")"
done
[ -z "$(metric wharf_squash_builds_total)" ] || fail "something that is not an image started a build"
echo "PASS an artifact, an image without layers and one with a non-tar layer get a 4xx naming why"
stop_pid "$WHARF_PID"

# --- limits: a 4xx that names the limit, and nothing cached
port=$(free_port)
printf 'squash:\n  limits: {max_entries: 3}\n' >"$work/limits.yaml"
start_wharf "$port" "$work/data-limits" "$work/wharf-limits.log" --config "$work/limits.yaml"; PIDS=("$WHARF_PID")
push "$work/img" ns/big:v1
for i in 1 2; do
  code=$(curl -s -o "$work/limit.json" -w '%{http_code}' "http://127.0.0.1:$port/c1/squash/ns/big/v1")
  [ "$code" = 422 ] || fail "over max_entries gave $code (try $i)"
  grep -q 'max_entries' "$work/limit.json" || fail "the error does not name the limit: $(cat "$work/limit.json")"
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["errors"][0]; assert e["code"]=="LIMIT_EXCEEDED"' "$work/limit.json"
done
echo "PASS an image over squash.limits.max_entries gets 422 LIMIT_EXCEEDED naming the limit, twice (nothing cached)"
stop_pid "$WHARF_PID"

# --- at most N builds at a time; past the queue: 503 with Retry-After
port=$(free_port)
printf 'squash:\n  workers: 1\n  queue_max: 0\n  cache_max_bytes: 100000000000\n  limits: {max_uncompressed_bytes: 100000000000}\n' >"$work/queue.yaml"
start_wharf "$port" "$work/data-queue" "$work/wharf-queue.log" --config "$work/queue.yaml"; PIDS=("$WHARF_PID")
# A layer big enough that its build is still running when the second request
# comes: 1 GiB of zeros, zstd-compressed to almost nothing (a sparse file feeds tar).
mkdir -p "$work/bigimg/blobs/sha256" "$work/bigroot"
truncate -s 1G "$work/bigroot/zeros"
tar -C "$work/bigroot" -cf - zeros | tee >(sha256sum | cut -d' ' -f1 >"$work/big.diffid") | zstd -q -1 -T2 >"$work/big.tar.zst"
bd=$(sha256sum "$work/big.tar.zst" | cut -d' ' -f1); bs=$(stat -c%s "$work/big.tar.zst")
mv "$work/big.tar.zst" "$work/bigimg/blobs/sha256/$bd"
sleep 0.2
cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:'$(cat "$work/big.diffid")'"]}}'
printf '%s' "$cfg" >"$work/cfg.json"; cd_=$(sha256sum "$work/cfg.json" | cut -d' ' -f1); cp "$work/cfg.json" "$work/bigimg/blobs/sha256/$cd_"
man='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$cd_'","size":'${#cfg}'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:'$bd'","size":'$bs'}]}'
printf '%s' "$man" >"$work/man.json"; md=$(sha256sum "$work/man.json" | cut -d' ' -f1); cp "$work/man.json" "$work/bigimg/blobs/sha256/$md"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/bigimg/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' "$md" "${#man}" >"$work/bigimg/index.json"
push "$work/bigimg" ns/slow:v1
push "$work/img" ns/second:v1
# Pushes index their layers in the background on the one worker: let that finish first.
for _ in $(seq 300); do [ "$(metric wharf_squash_background_indexes_total)" = 2 ] && break; sleep 0.1; done
[ "$(metric wharf_squash_background_indexes_total)" = 2 ] || fail "background indexing after push did not happen"
curl -s -o /dev/null -w '%{http_code}' --limit-rate 50M "http://127.0.0.1:$port/c1/squash/ns/slow/v1" >"$work/slow.code" &
slow=$!
for _ in $(seq 50); do [ "$(metric wharf_squash_builds_total)" = 1 ] && break; sleep 0.05; done
code=$(curl -s -D "$work/503.h" -o "$work/503.json" -w '%{http_code}' "http://127.0.0.1:$port/c1/squash/ns/second/v1")
kill "$slow" 2>/dev/null || true; wait "$slow" 2>/dev/null || true
[ "$code" = 503 ] || fail "a build past the queue got $code, expected 503 (the first got $(cat "$work/slow.code"))"
tr -d '\r' <"$work/503.h" | grep -qi '^retry-after: ' || fail "503 without Retry-After"
# A client that honours Retry-After gets its build once the worker is free.
for _ in $(seq 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/c1/squash/ns/second/v1")
  [ "$code" = 503 ] || break
  sleep 0.5
done
[ "$code" = 200 ] || fail "once the worker is free the build runs (got $code)"
echo "PASS one worker and no queue: a second cold build gets 503 + Retry-After, and runs once the worker is free"

# --- concurrent requests for a cold 1 GiB image join one build (the e2e test's
# image is small enough to be built before its clients overlap; this one is not)
m=$(curl -sS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/ns/slow/manifests/v1")
m=$(python3 -c 'import json,sys; m=json.load(sys.stdin); m["annotations"]={"wharf.test":"shared"}; print(json.dumps(m))' \
  <<<"$m") || fail "the manifest of ns/slow:v1: $m ($(tail -3 "$work/wharf-queue.log"))"
code=$(curl -sS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$m" \
  "http://127.0.0.1:$port/v2/ns/slow/manifests/shared" -o "$work/shared.put" -w '%{http_code}')
[ "$code" = 201 ] || fail "PUT ns/slow:shared: $code $(cat "$work/shared.put") ($(tail -3 "$work/wharf-queue.log"))"
builds=$(metric wharf_squash_builds_total)
from_disk=$(metric 'wharf_squash_stream_bytes_total{from="disk"}')
for attempt in $(seq 60); do  # the one worker may still be busy with the previous build's gzip piece
  clients=()
  for i in 1 2 3 4; do
    # Client 4 reads at 200 MB/s, slower than the build: it falls behind
    # what the build keeps in memory and goes on from disk.
    rate=(); [ $i = 4 ] && rate=(--limit-rate 200M)
    ( set +e; curl -sf "${rate[@]}" "http://127.0.0.1:$port/c1/squash/ns/slow/shared" | sha256sum >"$work/sum$i"; echo "${PIPESTATUS[0]}" >"$work/rc$i" ) &
    clients+=($!)
  done
  # not a bare wait: wharf is a child of this shell too. The subshells run
  # with set +e: under the script's errexit and pipefail a refused attempt
  # (503 while the one worker is busy) ended its subshell before it wrote its
  # status, and wait's status then ended this script without a word
  wait "${clients[@]}"
  [ "$(cat "$work"/rc{1,2,3,4} | sort -u)" = 0 ] && break
  sleep 0.5
done
[ "$(cat "$work"/rc{1,2,3,4} | sort -u)" = 0 ] || fail "concurrent downloads of a cold image failed"
[ "$(metric wharf_squash_builds_total)" = $((builds + 1)) ] || fail "concurrent cold requests caused more than one build"
[ "$(cat "$work"/sum{1,2,3,4} | sort -u | wc -l)" = 1 ] || fail "concurrent clients got different bodies"
joined=$(metric wharf_squash_joined_builds_total)
[ "${joined:-0}" -ge 1 ] || fail "no request joined the build in flight (they did not overlap: the test proved nothing)"
[ "$(metric 'wharf_squash_stream_bytes_total{from="memory"}')" -gt 0 ] || fail "no reader was sent the build's bytes from memory"
[ "$(metric 'wharf_squash_stream_bytes_total{from="disk"}')" -gt "${from_disk:-0}" ] ||
  fail "the slow reader never read from disk (it did not fall behind: the test proved nothing)"
echo "PASS 4 concurrent requests for a cold 1 GiB image: one build, $joined joined it, identical bodies (one slow reader went on from disk)"

# --- a pull right after a push waits for the layer's background index instead
# of decoding the layer a second time (the 1 GiB layer takes about a second)
stop_pid "$WHARF_PID"
port=$(free_port)
start_wharf "$port" "$work/data-fresh" "$work/wharf-fresh.log"; PIDS=("$WHARF_PID")
push "$work/bigimg" ns/fresh:v1
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/c1/squash/ns/fresh/v1")
[ "$code" = 200 ] || fail "squash right after push: $code"
for _ in $(seq 100); do [ "$(metric wharf_squash_background_indexes_total)" = 1 ] && break; sleep 0.1; done
[ "$(metric wharf_squash_background_indexes_total)" = 1 ] || fail "the background index after the push did not finish"
[ "$(metric wharf_squash_layers_indexed_total)" = 1 ] ||
  fail "the layer was indexed $(metric wharf_squash_layers_indexed_total) times (the pull and the background index each decoded it)"
echo "PASS a squash right after the push waits for the background index: the layer is decoded for indexing once"

# --- a slow client slows neither the build nor a client that comes after it:
# one reading at 20 MB/s (a 1 GiB body: ~50 s) is still reading when the
# build is cached and a second client has its whole body
m=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/ns/fresh/manifests/v1" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); m["annotations"]={"wharf.test":"slowclient"}; print(json.dumps(m))')
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$m" \
  "http://127.0.0.1:$port/v2/ns/fresh/manifests/slow" -o /dev/null
curl -s --limit-rate 20M -o /dev/null "http://127.0.0.1:$port/c1/squash/ns/fresh/slow" & slowc=$!
for _ in $(seq 200); do cached ns/fresh/slow && break; sleep 0.1; done
cached ns/fresh/slow || fail "the build behind a slow client was not cached within 20 s"
got=$(curl -sf "http://127.0.0.1:$port/c1/squash/ns/fresh/slow" | wc -c)
kill -0 "$slowc" 2>/dev/null || fail "the slow client finished first (the test proves nothing)"
kill "$slowc"; wait "$slowc" 2>/dev/null || true
want=$(curl -sfI "http://127.0.0.1:$port/c1/squash/ns/fresh/slow" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')
[ "$got" = "$want" ] || fail "the client after the slow one got $got of $want bytes"
echo "PASS a client reading at 20 MB/s: the build is cached and another client served in full while it still reads"

# --- a build's readers get the whole body before its cache entry is committed,
# and a reader far behind goes on reading the layer while the commit renames it
# (WHARF_PAUSE_AT holds every build 3 s after the rename, before the entry is
# recorded: a slow disk)
stop_pid "$WHARF_PID"
port=$(free_port)
WHARF_PAUSE_AT=squash-layer-renamed:3000 start_wharf "$port" "$work/data-commit" "$work/wharf-commit.log"; PIDS=("$WHARF_PID")
push "$work/img" ns/small:v1
push "$work/bigimg" ns/commit:v1
for _ in $(seq 100); do [ "$(metric wharf_squash_background_indexes_total)" = 2 ] && break; sleep 0.1; done
# A small image, so its client is done within moments of the build (a 1 GiB
# body on a busy machine can take longer than the pause).
us="http://127.0.0.1:$port/c1/squash/ns/small/v1"
curl -sf "$us" -o "$work/small-first.tar"
cached ns/small/v1 && fail "the entry was cached before the paused commit ended (the test proves nothing)"
# A request arriving while the entry is committed waits for it and is served from the cache.
code=$(curl -s -o "$work/range.part" -w '%{http_code}' -H 'Range: bytes=0-99' "$us")
[ "$code" = 206 ] || fail "a Range request during the commit got $code, expected 206"
cached ns/small/v1 || fail "not cached after the commit"
cmp "$work/small-first.tar" <(curl -sf "$us") || fail "the body sent before the commit differs from the cached one"
cmp "$work/range.part" <(head -c 100 "$work/small-first.tar") || fail "the Range body differs"
# A reader at 250 MB/s on 1 GiB is still reading when the build ends, and
# across the 3 s after the rename.
u="http://127.0.0.1:$port/c1/squash/ns/commit/v1"
( set +e; curl -sf --limit-rate 250M "$u" | sha256sum >"$work/slow.sum"; echo "${PIPESTATUS[0]}" >"$work/slow.rc" ) & slow=$!
wait "$slow"
[ "$(cat "$work/slow.rc")" = 0 ] || fail "the reader behind the build failed while its layer was committed"
curl -sf "$u" | sha256sum >"$work/cached.sum"
cmp "$work/slow.sum" "$work/cached.sum" || fail "the body read across the commit differs from the cached one"
[ "$(metric 'wharf_squash_stream_bytes_total{from="disk"}')" -gt 0 ] || fail "the slow reader never read from disk (the test proves nothing)"
[ "$(metric wharf_squash_builds_total)" = 2 ] || fail "builds: $(metric wharf_squash_builds_total), expected 2"
echo "PASS a reader gets the whole body before the entry is committed; one far behind reads on across the commit's rename"

# --- HEAD of an uncached image plans on the squash service's planning thread,
# not on the thread serving connections: with one I/O thread and the planning held 2 s
# (WHARF_PAUSE_AT, a slow index), other requests are answered meanwhile
stop_pid "$WHARF_PID"
port=$(free_port)
printf 'threads: 1\nsquash: {index_on_push: false}\n' >"$work/head.yaml"
WHARF_PAUSE_AT=squash-index-image:2000 start_wharf "$port" "$work/data-head" "$work/wharf-head.log" --config "$work/head.yaml"; PIDS=("$WHARF_PID")
push "$work/img" ns/head:v1
curl -sfI "http://127.0.0.1:$port/c1/squash/ns/head/v1" | tr -d '\r' >"$work/head.h" & head_pid=$!
sleep 0.3
curl -sf -m 1 -o /dev/null "http://127.0.0.1:$port/v2/" || fail "GET /v2/ waited for a HEAD's planning"
kill -0 "$head_pid" 2>/dev/null || fail "the HEAD was answered before /v2/ (the test proves nothing)"
wait "$head_pid" || fail "HEAD of an uncached image failed"
len=$(awk -F': ' 'tolower($1)=="content-length"{print $2}' "$work/head.h")
[ -z "$(metric wharf_squash_builds_total)" ] || fail "a HEAD started a build"
got=$(curl -sf "http://127.0.0.1:$port/c1/squash/ns/head/v1" | wc -c)
[ "$len" = "$got" ] || fail "HEAD said Content-Length $len, the GET sent $got bytes"
echo "PASS HEAD of an uncached image: planned off the I/O thread (other requests answered meanwhile), no build, exact length"

# --- sharing, hanging up and failing, with each build held 1.5 s once its
# plan is made and the archive's first bytes are out (WHARF_PAUSE_AT), so
# the clients below are certain to overlap it
stop_pid "$WHARF_PID"
port=$(free_port)
WHARF_PAUSE_AT=squash-writing:1500 start_wharf "$port" "$work/data-held" "$work/wharf-held.log"; PIDS=("$WHARF_PID")
push "$work/img" held/shared:v1; push "$work/img2" held/gone:v1; push "$work/img3" held/bad:v1
for _ in $(seq 100); do [ "$(metric wharf_squash_background_indexes_total)" = 3 ] && break; sleep 0.1; done
# 20 clients at once: one build, 19 join it, 20 identical bodies.
clients=()
for i in $(seq 20); do
  ( set +e; curl -sf "http://127.0.0.1:$port/c1/squash/held/shared/v1" | sha256sum >"$work/s$i"; echo "${PIPESTATUS[0]}" >"$work/r$i" ) &
  clients+=($!)
done
wait "${clients[@]}"
[ "$(cat "$work"/r{1..20} | sort -u)" = 0 ] || fail "some of 20 concurrent clients failed"
[ "$(metric wharf_squash_builds_total)" = 1 ] || fail "20 concurrent clients caused $(metric wharf_squash_builds_total) builds"
[ "$(metric wharf_squash_joined_builds_total)" = 19 ] || fail "$(metric wharf_squash_joined_builds_total) of 19 clients joined the build"
[ "$(cat "$work"/s{1..20} | sort -u | wc -l)" = 1 ] || fail "20 concurrent clients got different bodies"
echo "PASS 20 clients at once on a cold image: one build, 19 joined it, identical bodies"
# A client that hangs up mid-build does not stop it: it completes and is cached.
curl -s -N "http://127.0.0.1:$port/c1/squash/held/gone/v1" -o "$work/gone.part" & gone=$!
sleep 0.5
kill "$gone"; wait "$gone" 2>/dev/null || true
[ -s "$work/gone.part" ] || fail "the client that hung up had no bytes yet (the test proves nothing)"
cached held/gone/v1 && fail "the entry was cached before the held build went on (the test proves nothing)"
for _ in $(seq 50); do cached held/gone/v1 && break; sleep 0.1; done
cached held/gone/v1 || fail "the build a client hung up on was not completed and cached"
[ "$(metric wharf_squash_builds_total)" = 2 ] || fail "builds after the hang-up: $(metric wharf_squash_builds_total)"
echo "PASS a client that hangs up mid-build: the build completes and is cached"
# A build that fails after bytes went out cuts every attached response short
# and caches nothing: a layer blob damaged on disk after it was indexed.
bad=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/held/bad/manifests/v1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"].split(":")[1])')
f="$work/data-held/blobs/sha256/${bad:0:2}/$bad"
if [ "${WHARF_TEST_BACKEND:-}" = pg-s3 ]; then  # the object, damaged the same way and written back
  f=$work/bad.s3
  s3_request GET "/$(backend_name "$work/data-held")/blobs/sha256/$bad" -o "$f"
fi
# the byte is inverted, never overwritten with a constant it may already hold
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(f.seek(0,2)//2); b=f.read(1); f.seek(-1,1); f.write(bytes([b[0]^0xff]))' "$f"
if [ "${WHARF_TEST_BACKEND:-}" = pg-s3 ]; then
  s3_request PUT "/$(backend_name "$work/data-held")/blobs/sha256/$bad" -T "$f" -o /dev/null
fi
clients=()
for i in 1 2 3; do
  ( rc=0; curl -sf "http://127.0.0.1:$port/c1/squash/held/bad/v1" -o "$work/bad$i.tar" || rc=$?; echo $rc >"$work/badrc$i" ) &
  clients+=($!)
done
wait "${clients[@]}"
for i in 1 2 3; do
  [ "$(cat "$work/badrc$i")" != 0 ] || fail "client $i of a failing build got a whole body"
  [ -s "$work/bad$i.tar" ] || fail "client $i got no bytes: the failure came before the body (the test proves nothing)"
done
[ "$(metric wharf_squash_build_failures_total)" = 1 ] || fail "build failures: $(metric wharf_squash_build_failures_total)"
cached held/bad/v1 && fail "a failed build left a cache entry"
echo "PASS a build failing mid-stream cuts all 3 attached responses short (curl -f fails) and caches nothing"
