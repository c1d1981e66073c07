# bench/registry-pgs3.sh — `bash bench/registry.sh --backend pg+s3`: the same
# benchmark on PostgreSQL 15 + Ceph RADOS Gateway instead of SQLite + the
# filesystem. Sourced by bench/registry.sh after its helpers and test data
# (push_blob, seed, run_wrk, push_time, ...); not run alone.
#
# All on 127.0.0.1, on free ports, stopped by PID at exit:
#   - PostgreSQL 15 and RGW (1 mon, 1 MemStore OSD, radosgw), started by
#     bench/pgs3.sh with tests/lib/pg_start.sh and tests/lib/ceph_start.sh;
#   - wharf twice, metadata on PostgreSQL (a schema each), blobs on RGW (a
#     bucket each): storage.s3.redirect proxy (wharf streams blob GETs) and
#     presigned (a 307 to a presigned GET URL on RGW);
#   - distribution 2.8 twice with its s3 driver on RGW (a bucket each):
#     storage.redirect.disable true (it streams blob GETs) and the default
#     (a 307 to a presigned URL);
#   - "RGW bare", the ceiling: curl --aws-sigv4 PUT/GET of the same bytes
#     straight to RGW (a bucket of its own).
#
# Figures, side by side:
#   1. GET /v2/ and 2. manifest GET by tag, requests/s (wrk -c50, as with fs);
#   3. 10 MiB blob GET with wrk -c4, MB/s: wrk follows no redirect, so only
#      the two proxying servers; the bare column is wrk -c4 on the presigned
#      RGW URL wharf redirects to (RGW's ceiling for that load);
#   4. 10 MiB blob GET with curl -L, MB/s: $GETS GETs one after another in one
#      curl process (keep-alive; a redirect is followed to RGW, on a second
#      kept-alive connection), over the sum of curl's time_total; $ROUNDS
#      rounds, the five taking turns; bare: the same with curl --aws-sigv4;
#   5. monolithic 10 MiB push (POST + PUT ?digest=, push_time), $PUSHES each,
#      taking turns; bare: a SigV4 PUT of the same file;
#   6. a 1 GiB layer pushed in 32 MiB chunks (POST, 32 PATCHes with
#      Content-Range, PUT ?digest= without a body), MB/s over the summed curl
#      times; bare: one SigV4 PUT of the whole GiB;
#   7. that 1 GiB blob GET with curl -L ($BIG_GETS times: the median), then
#      its digest checked by one more GET. (RGW reads a multipart object, as
#      the registries make, faster than the bare single-PUT object: beyond
#      1x RGW here is RGW's doing, not a registry's.)
# Then whether the targets are met: manifest GET >= 5x distribution; the
# chunked 1 GiB push >= 0.7x the bare PUT and >= 1.5x distribution; blob GET
# in proxy mode >= 0.8x the bare GET. wharf proxy is paired with distribution
# proxy, wharf presigned with distribution redirect ("a/b" in the ratio column).
#
# Space: RGW's MemStore holds BENCH_MEMSTORE_BYTES in RAM (default 4 GiB, not
# the tests' 2 GiB: distribution commits a chunked upload by a multipart copy
# that RGW makes by copying the data, so its 1 GiB push holds 2 GiB until the
# upload is deleted; wharf's server-side copy shares the data: 1 GiB), and RGW
# frees a deleted object's space only in its garbage collection (after 2 h
# unless asked). So after the 10 MiB pushes their blobs are deleted from every
# bucket, and each 1 GiB blob is deleted right after its own GETs, each time
# followed by `radosgw-admin gc process --include-all`: one 1 GiB blob (and
# distribution's upload) at a time. The deletes go straight to the buckets
# under the servers (their metadata still names the blobs; nothing reads them
# afterwards); anything big a registry left in its bucket besides is reported.
# The MemStore's use after each 1 GiB push is printed (osd_used_mib).

. "$HERE/pgs3.sh"

if [ "$QUICK" = 1 ]; then GETS=5; ROUNDS=2; BIG_GETS=1; else GETS=20; ROUNDS=3; BIG_GETS=3; fi
BIG_CHUNK=$((32 * MIB)); BIG_CHUNKS=32   # 1 GiB in 32 MiB chunks (wharf's part size is 16 MiB: 2 parts a chunk)
KEYS=(whp whs dip dir)                   # the registries; "bare" is RGW itself
declare -A SRV_NAME=([whp]="wharf proxy" [whs]="wharf presigned" [dip]="distribution proxy" [dir]="distribution redirect" [bare]="RGW bare")
declare -A SRV_BUCKET=([whp]=wharf-proxy [whs]=wharf-presigned [dip]=dist-proxy [dir]=dist-redirect [bare]=bare)
declare -A SRV_URL=() SRV_PID=() SRV_LOG=()

# ---------------------------------------------------------------- PostgreSQL + RGW
echo "starting PostgreSQL 15 and Ceph RGW (MemStore $(( ${BENCH_MEMSTORE_BYTES:-4294967296} / MIB )) MiB) ..." >&2
pgs3_up "$W" || die "PostgreSQL or RGW did not start (logs in $W: use --keep)"
for k in "${KEYS[@]}" bare; do s3_bucket "${SRV_BUCKET[$k]}" || die "cannot create bucket ${SRV_BUCKET[$k]} on $S3"; done
RGW_PID=$(cat "$CEPH_BASE/run/client.rgw.a.pid"); PNAME[$RGW_PID]=radosgw; PLOG[$RGW_PID]=$CEPH_BASE/log/client.rgw.a.log
RGW_PIDS="$RGW_PID $(cat "$CEPH_BASE"/run/osd.*.pid 2>/dev/null | tr '\n' ' ')"
rgw_ticks() { local p t=0; for p in $RGW_PIDS; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

# ---------------------------------------------------------------- registries
# new_port: a free port none of the registries has been given yet, in NEW_PORT
PORTS=" "
new_port() { NEW_PORT=$(free_port); while [[ $PORTS == *" $NEW_PORT "* ]]; do NEW_PORT=$(free_port); done; PORTS+="$NEW_PORT "; }

# wharf: as with fs (request logging off, no per-client cap), metadata in a
# schema of its own on the PostgreSQL, blobs in a bucket of its own on RGW
start_wharf_s3() { # KEY REDIRECT
  local k=$1 port bucket=${SRV_BUCKET[$1]} pid
  new_port; port=$NEW_PORT; mkdir -p "$W/$k"
  cat >"$W/$k/config.yml" <<EOF
log: {requests: false}
limits: {max_connections_per_client: 0}
metadata: {driver: postgres, postgres: {dsn: "$PG_DSN", schema: ${bucket//-/_}}}
storage: {driver: s3, s3: {endpoint: "$S3", bucket: $bucket, access_key: testak, secret_key: testsk, redirect: $2}}
EOF
  (
    [ "$NOPIPE" = 1 ] && trap '' PIPE
    exec "$W/bin/wharf" serve --no-auth --listen "127.0.0.1:$port" --data-dir "$W/$k/data" \
      --config "$W/$k/config.yml" >"$W/$k/log" 2>&1
  ) &
  pid=$!; PIDS+=("$pid"); PNAME[$pid]="${SRV_NAME[$k]}"; PLOG[$pid]=$W/$k/log
  SRV_PID[$k]=$pid; SRV_URL[$k]=http://127.0.0.1:$port; SRV_LOG[$k]=$W/$k/log
}
# distribution: the fs run's configuration with the s3 driver instead of
# filesystem (driver defaults: 10 MiB parts, DIST_S3_CHUNKSIZE to change it),
# redirects off (storage.redirect.disable) or on (its default). Run without
# AWS_CA_BUNDLE: its AWS SDK refuses to start with a custom CA bundle on its
# transport ("LoadCustomCABundleError"), and the endpoint is plain http.
start_dist_s3() { # KEY DISABLE_REDIRECT(true|false)
  local k=$1 port pid
  new_port; port=$NEW_PORT; mkdir -p "$W/$k"
  dist_s3_config "${SRV_BUCKET[$k]}" "$port" "$2" >"$W/$k/config.yml"
  env -u AWS_CA_BUNDLE "$DIST_BIN" serve "$W/$k/config.yml" >"$W/$k/log" 2>&1 &
  pid=$!; PIDS+=("$pid"); PNAME[$pid]="${SRV_NAME[$k]}"; PLOG[$pid]=$W/$k/log
  SRV_PID[$k]=$pid; SRV_URL[$k]=http://127.0.0.1:$port; SRV_LOG[$k]=$W/$k/log
}
start_wharf_s3 whp proxy
start_wharf_s3 whs presigned
start_dist_s3 dip true
start_dist_s3 dir false
for k in "${KEYS[@]}"; do
  # wharf on PostgreSQL + RGW migrates its schema and checks its bucket at
  # start: give it up to 30 s (wait_http: 10 s a try)
  for try in 1 2 3; do
    if [ $try = 3 ]; then wait_http "${SRV_URL[$k]}/v2/" "${SRV_PID[$k]}" "${SRV_NAME[$k]}" "${SRV_LOG[$k]}"; break; fi
    (wait_http "${SRV_URL[$k]}/v2/" "${SRV_PID[$k]}" "${SRV_NAME[$k]}" "${SRV_LOG[$k]}") 2>/dev/null && break
  done
done
sleep 1
declare -A RSS_IDLE=()
for k in "${KEYS[@]}"; do RSS_IDLE[$k]=$(rss_kb "${SRV_PID[$k]}"); done

# ---------------------------------------------------------------- header
echo "== wharf registry benchmark, --backend pg+s3 $( [ "$QUICK" = 1 ] && echo '(--quick: smoke figures only)')"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
echo "wharf:    $WHARF_BIN (sha256 $WHARF_SHA…, git $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')), $(grep -o '[0-9]* threads' "${SRV_LOG[whp]}" | head -1)"
echo "          proxy: pid ${SRV_PID[whp]}, ${SRV_URL[whp]}; presigned: pid ${SRV_PID[whs]}, ${SRV_URL[whs]}"
echo "distrib.: $("$DIST_BIN" --version 2>&1 | awk '{print $2, $3}'), s3 driver (parts ${DIST_S3_CHUNKSIZE:-10485760} B)"
echo "          proxy (redirect disabled): pid ${SRV_PID[dip]}, ${SRV_URL[dip]}; redirect: pid ${SRV_PID[dir]}, ${SRV_URL[dir]}"
echo "postgres: $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), $PG_DSN (tests/lib/pg_start.sh: fsync off)"
echo "rgw:      ceph $(ceph --version | awk '{print $3}'), $S3 (tests/lib/ceph_start.sh: 1 mon, 1 OSD on MemStore $(( ${BENCH_MEMSTORE_BYTES:-4294967296} / MIB )) MiB, radosgw; pids $RGW_PIDS)"
echo "wrk:      $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t$THREADS; ${DUR}s per run after a ${WARM}s warm-up; curl $(curl --version | head -1 | awk '{print $2}')"
echo "logging:  request logging OFF in both registries (wharf log.requests=false;"
echo "          distribution log.accesslog.disabled=true, log.level=error)"
if [ "$NOPIPE" = 1 ]; then
  echo "NOTE:     --ignore-sigpipe: wharf was started with SIGPIPE ignored"
fi
echo

# ---------------------------------------------------------------- seeding
for k in "${KEYS[@]}"; do seed "${SRV_URL[$k]}" "${SRV_NAME[$k]}"; done
s3 -f -o /dev/null -T "$W/data/layer10m" "$S3/bare/layer10m" || die "RGW: bare PUT of the 10 MiB layer"
# each answers a blob GET as configured: 200 (streamed) or 307 to RGW
PRESIGNED=""
for k in "${KEYS[@]}"; do
  got=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${SRV_URL[$k]}$BLOB10_PATH")
  case $k:$got in
    whp:"200 "|dip:"200 ") ;;
    whs:"307 $S3/"*|dir:"307 $S3/"*) [ "$k" = whs ] && PRESIGNED=${got#307 } ;;
    *) die "${SRV_NAME[$k]}: blob GET answered \"$got\"" ;;
  esac
done
echo "seeded the four registries with $REPO:$TAG (OCI manifest $MAN_DIG: config + 10 MiB + 1 MiB layers);"
echo "blob GETs: wharf proxy and distribution proxy answer 200, wharf presigned and distribution redirect 307 to RGW"
echo

# ---------------------------------------------------------------- helpers
ROWS=()
prow() { ROWS+=("$(printf '%-36s|%12s|%12s|%12s|%12s|%12s|%-17s|%s' "$@")"); }
# pair A1 B1 A2 B2: "A1/B1 ratio / A2/B2 ratio"
pair() { echo "$(ratio "$1" "$2")/$(ratio "$3" "$4")x"; }
# verdict2 R1 R2 TARGET: MET when both ratios reach it
verdict2() { [ "$(verdict "$1" '>=' "$3")" = MET ] && [ "$(verdict "$2" '>=' "$3")" = MET ] && echo MET || echo "NOT MET"; }
# sum of seconds (awk, 6 places)
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a + b }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / 1e6 / s; else print "n/a" }'; }   # BYTES SECONDS
# location BASE HEADER-FILE: the Location of the last answer, absolute
location() {
  local loc; loc=$(awk 'tolower($1) == "location:" {print $2}' "$2" | tr -d '\r' | tail -1)
  case $loc in http*) echo "$loc" ;; *) echo "$1$loc" ;; esac
}
# blob_key KEY DIGEST: where the registry keeps a blob in its bucket
blob_key() {
  local hex=${2#sha256:}
  case $1 in wh*) echo "blobs/sha256/$hex" ;; di*) echo "docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data" ;; esac
}
# drop_blob KEY DIGEST: delete a committed blob's object (it must be there)
drop_blob() {
  local key; key=$(blob_key "$1" "$2")
  s3 -f -I -o /dev/null "$S3/${SRV_BUCKET[$1]}/$key" || die "${SRV_NAME[$1]}: no object $key in bucket ${SRV_BUCKET[$1]}"
  s3 -f -X DELETE -o /dev/null "$S3/${SRV_BUCKET[$1]}/$key" || die "${SRV_NAME[$1]}: cannot delete $key"
}
# curl_gets KEY URL N SIZE: N GETs of URL in one curl process (-L; SigV4 for
# bare), each must be a 200 of SIZE bytes; prints the summed time_total
curl_gets() {
  local k=$1 url=$2 n=$3 size=$4 args=() out
  for _ in $(seq "$n"); do args+=(-o /dev/null "$url"); done
  if [ "$k" = bare ]; then
    out=$(s3 -w '%{http_code} %{size_download} %{time_total}\n' "${args[@]}") || true
  else
    out=$(curl -s -L -w '%{http_code} %{size_download} %{time_total}\n' "${args[@]}") || true
  fi
  awk -v n="$n" -v size="$size" '{ if ($1 != 200 || $2 != size) bad++; t += $3; c++ }
    END { if (bad || c != n) exit 1; printf "%.6f", t }' <<<"$out" ||
    die "${SRV_NAME[$k]}: GET $url: $(sort <<<"$out" | uniq -c | head -3 | tr '\n' ';')"
}

# scrape WHAT: wharf proxy's /metrics into $W/metrics.WHAT; backend_cost A B N
# WHAT: its backend requests between two scrapes, per operation, to the details
scrape() { curl -fs "${SRV_URL[whp]}/metrics" >"$W/metrics.$1" || die "wharf proxy: /metrics"; }
backend_cost() {
  echo "  wharf proxy backend requests per $4: $(python3 "$HERE/metrics_delta.py" --backend "$W/metrics.$1" "$W/metrics.$2" "$3")" >>"$W/details"
}

# ---------------------------------------------------------------- 1-3: wrk
echo "-- 1. GET /v2/ (-c$C_SMALL)"
for k in "${KEYS[@]}"; do run_wrk "R1_$k" "${SRV_PID[$k]}" "$C_SMALL" "${SRV_URL[$k]}/v2/"; done
echo "-- 2. manifest GET by tag (-c$C_SMALL, Accept: $MT)"
for k in "${KEYS[@]}"; do run_wrk "R2_$k" "${SRV_PID[$k]}" "$C_SMALL" "${SRV_URL[$k]}$MAN_PATH" -H "Accept: $MT"; done
echo "-- 3. 10 MiB blob GET, wrk -c$C_BLOB: the proxying servers, and RGW at the presigned URL wharf redirects to"
for k in whp dip; do run_wrk "R3_$k" "${SRV_PID[$k]}" "$C_BLOB" "${SRV_URL[$k]}$BLOB10_PATH"; done
# a fresh presigned URL (valid presign_ttl_seconds, 300 s by default)
PRESIGNED=$(curl -s -o /dev/null -w '%{redirect_url}' "${SRV_URL[whs]}$BLOB10_PATH")
run_wrk R3_bare "$RGW_PID" "$C_BLOB" "$PRESIGNED"
for v in R1_whp R1_whs R1_dip R1_dir R2_whp R2_whs R2_dip R2_dir R3_whp R3_dip R3_bare; do check_errs "$v" "${!v}"; done
declare -A F1=() F2=()
for k in "${KEYS[@]}"; do v=R1_$k; F1[$k]=$(rps "${!v}"); v=R2_$k; F2[$k]=$(rps "${!v}"); done
F3P=$(mbps "$R3_whp"); F3D=$(mbps "$R3_dip"); F3B=$(mbps "$R3_bare")
prow "1. GET /v2/ req/s" "${F1[whp]}" "${F1[whs]}" "${F1[dip]}" "${F1[dir]}" "-" \
  "$(pair "${F1[whp]}" "${F1[dip]}" "${F1[whs]}" "${F1[dir]}") dis" "(reported)"
Q2P=$(ratio "${F2[whp]}" "${F2[dip]}"); Q2S=$(ratio "${F2[whs]}" "${F2[dir]}")
prow "2. manifest GET by tag req/s" "${F2[whp]}" "${F2[whs]}" "${F2[dip]}" "${F2[dir]}" "-" \
  "${Q2P}/${Q2S}x dis" ">= 5x dis.  $(verdict2 "$Q2P" "$Q2S" 5)"
Q3=$(ratio "$F3P" "$F3B")
prow "3. 10 MiB blob GET MB/s, wrk -c$C_BLOB" "$F3P" "-" "$F3D" "-" "$F3B" "${Q3}x RGW" ">= 0.8x RGW $(verdict "$Q3" '>=' 0.8)"

# ---------------------------------------------------------------- 4: curl -L GETs
echo "-- 4. 10 MiB blob GET, curl -L: $ROUNDS rounds of $GETS GETs in one curl process each, taking turns"
ORDER=("${KEYS[@]}" bare)
declare -A T4=()
for k in "${ORDER[@]}"; do T4[$k]=0; done
scrape get0
for r in $(seq 1 "$ROUNDS"); do
  for j in $(seq 0 $((${#ORDER[@]} - 1))); do
    k=${ORDER[$(( (j + r) % ${#ORDER[@]} ))]}
    if [ "$k" = bare ]; then url=$S3/bare/layer10m; else url=${SRV_URL[$k]}$BLOB10_PATH; fi
    t=$(curl_gets "$k" "$url" "$GETS" 10485760)
    T4[$k]=$(add "${T4[$k]}" "$t")
  done
done
scrape get1; backend_cost get0 get1 $((ROUNDS * GETS)) "10 MiB blob GET (curl)"
declare -A F4=()
for k in "${ORDER[@]}"; do
  F4[$k]=$(mbs $((ROUNDS * GETS * 10485760)) "${T4[$k]}")
  echo "  ${SRV_NAME[$k]}: $((ROUNDS * GETS)) x 10 MiB GET (curl -L), curl time ${T4[$k]}s" >>"$W/details"
done
Q4P=$(ratio "${F4[whp]}" "${F4[bare]}"); Q4S=$(ratio "${F4[whs]}" "${F4[bare]}")
prow "4. 10 MiB blob GET MB/s, curl -L" "${F4[whp]}" "${F4[whs]}" "${F4[dip]}" "${F4[dir]}" "${F4[bare]}" \
  "${Q4P}/${Q4S}x RGW" ">= 0.8x RGW $(verdict "$Q4P" '>=' 0.8) (proxy)"

# ---------------------------------------------------------------- 5: 10 MiB pushes
echo "-- 5. monolithic 10 MiB push, POST + PUT ?digest= ($PUSHES pushes to each, taking turns; bare: SigV4 PUT)"
bare_put() { # FILE KEY: one SigV4 PUT; prints its time_total
  local out; out=$(s3 -o /dev/null -w '%{http_code} %{time_total}' -T "$1" "$S3/bare/$2") || true
  [ "${out%% *}" = 200 ] || die "RGW bare PUT $2: $out"
  echo "${out#* }"
}
declare -A T5=() W5=() C5=()
for k in "${ORDER[@]}"; do
  T5[$k]=0; W5[$k]=0; C5[$k]=0
  if [ "$k" = bare ]; then bare_put "$W/push/0" push-0 >/dev/null; else push_time "${SRV_URL[$k]}" "${SRV_NAME[$k]}" "$W/push/0" >/dev/null; fi
done
scrape push0
for i in $(seq 1 "$PUSHES"); do
  for j in $(seq 0 $((${#ORDER[@]} - 1))); do
    k=${ORDER[$(( (j + i) % ${#ORDER[@]} ))]}
    if [ "$k" = bare ]; then pid=""; c0=0; else pid=${SRV_PID[$k]}; c0=$(cpu_ticks "$pid"); fi
    t0=$(date +%s%N)
    if [ "$k" = bare ]; then t=$(bare_put "$W/push/$i" "push-$i"); else t=$(push_time "${SRV_URL[$k]}" "${SRV_NAME[$k]}" "$W/push/$i"); fi
    t1=$(date +%s%N)
    [ -z "$pid" ] || C5[$k]=$(( ${C5[$k]} + $(cpu_ticks "$pid") - c0 ))
    T5[$k]=$(add "${T5[$k]}" "$t"); W5[$k]=$(( ${W5[$k]} + t1 - t0 ))
  done
done
scrape push1; backend_cost push0 push1 "$PUSHES" "10 MiB push (POST + PUT)"
# every pushed blob is there, whole; then their objects go (space, see the top)
for k in "${KEYS[@]}"; do
  alive "${SRV_PID[$k]}" "the 10 MiB pushes"
  for i in $(seq 0 "$PUSHES"); do
    got=$(curl -sL -o /dev/null -w '%{http_code} %{size_download}' "${SRV_URL[$k]}/v2/bench/push/blobs/$(cat "$W/push/$i.digest")")
    [ "$got" = "200 10485760" ] || die "${SRV_NAME[$k]}: pushed blob $i not readable: $got"
    drop_blob "$k" "$(cat "$W/push/$i.digest")"
  done
  echo "  ${SRV_NAME[$k]} push: $PUSHES x 10 MiB, curl request time ${T5[$k]}s, wall $(( ${W5[$k]} / 1000000 )) ms, server CPU $(( ${C5[$k]} * 100 * 1000000000 / HZ / ${W5[$k]} ))%" >>"$W/details"
done
for i in $(seq 0 "$PUSHES"); do s3 -f -X DELETE -o /dev/null "$S3/bare/push-$i" || die "RGW: cannot delete bare/push-$i"; done
echo "  bare push: $PUSHES x 10 MiB SigV4 PUT, curl time ${T5[bare]}s, wall $(( ${W5[bare]} / 1000000 )) ms" >>"$W/details"
echo "  RGW MemStore used before/after deleting the 10 MiB pushes and its gc: $(osd_used_mib) MiB / $(rgw_gc; osd_used_mib) MiB" >>"$W/details"
declare -A F5=()
for k in "${ORDER[@]}"; do F5[$k]=$(mbs $((PUSHES * 10485760)) "${T5[$k]}"); done
prow "5. 10 MiB push MB/s" "${F5[whp]}" "${F5[whs]}" "${F5[dip]}" "${F5[dir]}" "${F5[bare]}" \
  "$(pair "${F5[whp]}" "${F5[dip]}" "${F5[whs]}" "${F5[dir]}") dis" "(reported)"
prow "   vs the bare PUT" "" "" "" "" "" "$(pair "${F5[whp]}" "${F5[bare]}" "${F5[whs]}" "${F5[bare]}") RGW" "(reported)"

# ---------------------------------------------------------------- 6-7: 1 GiB
echo "-- 6./7. 1 GiB layer: pushed in $BIG_CHUNKS chunks of $((BIG_CHUNK / MIB)) MiB (bare: one SigV4 PUT), then GET with curl -L, one server after another"
mkdir -p "$W/big"
for i in $(seq -w 1 "$BIG_CHUNKS"); do head -c "$BIG_CHUNK" /dev/urandom >"$W/big/c.$i"; done
cat "$W"/big/c.* >"$W/big/all"
BIG_SIZE=$((BIG_CHUNK * BIG_CHUNKS))
BIG_DIG=sha256:$(sha "$W/big/all")
# big_push BASE NAME: POST, a PATCH per chunk (Content-Range, Location
# followed), PUT ?digest= without a body; prints the summed curl time_total
big_push() {
  local base=$1 name=$2 hdr=$W/big.hdr out loc sep t off=0 len c
  out=$(curl -s -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' -X POST "$base/v2/bench/big/blobs/uploads/")
  [ "${out%% *}" = 202 ] || die "$name: chunked push POST: $out"
  t=${out#* }
  for c in "$W"/big/c.*; do
    len=$(stat -c %s "$c"); loc=$(location "$base" "$hdr")
    out=$(curl -s -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' -X PATCH -H 'Expect:' \
      -H 'Content-Type: application/octet-stream' -H "Content-Range: $off-$((off + len - 1))" -T "$c" "$loc")
    [ "${out%% *}" = 202 ] || die "$name: PATCH of bytes $off-$((off + len - 1)): $out"
    t=$(add "$t" "${out#* }"); off=$((off + len))
  done
  loc=$(location "$base" "$hdr")
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary '' "$loc${sep}digest=$BIG_DIG")
  [ "${out%% *}" = 201 ] || die "$name: chunked push PUT ?digest=: $out"
  add "$t" "${out#* }"
}
declare -A T6=() T7=() USED=()
NOTES=""
for k in bare "${KEYS[@]}"; do
  pid=${SRV_PID[$k]:-}; c0=0; c1=0
  [ -z "$pid" ] || c0=$(cpu_ticks "$pid"); r0=$(rgw_ticks)
  [ "$k" != whp ] || scrape big0
  t0=$(date +%s%N)
  if [ "$k" = bare ]; then T6[$k]=$(bare_put "$W/big/all" big); else T6[$k]=$(big_push "${SRV_URL[$k]}" "${SRV_NAME[$k]}"); fi
  t1=$(date +%s%N); r1=$(rgw_ticks); [ -z "$pid" ] || c1=$(cpu_ticks "$pid")
  [ "$k" != whp ] || { scrape big1; backend_cost big0 big1 1 "1 GiB push in $BIG_CHUNKS chunks"; }
  USED[$k]=$(osd_used_mib)
  echo "  ${SRV_NAME[$k]} 1 GiB push: curl time ${T6[$k]}s, wall $(( (t1 - t0) / 1000000 )) ms, registry CPU $(( (c1 - c0) * 100 * 1000000000 / HZ / (t1 - t0) ))%, radosgw+osd CPU $(( (r1 - r0) * 100 * 1000000000 / HZ / (t1 - t0) ))%, MemStore used after ${USED[$k]} MiB" >>"$W/details"
  if [ "$k" = bare ]; then
    url=$S3/bare/big
  else
    alive "${SRV_PID[$k]}" "the 1 GiB push"
    url=${SRV_URL[$k]}/v2/bench/big/blobs/$BIG_DIG
  fi
  ts=()
  for _ in $(seq "$BIG_GETS"); do t=$(curl_gets "$k" "$url" 1 "$BIG_SIZE"); ts+=("$t"); done
  T7[$k]=$(printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  if [ "$k" = bare ]; then
    got=sha256:$(s3 "$url" | sha256sum | cut -d' ' -f1)
    s3 -f -X DELETE -o /dev/null "$url" || die "RGW: cannot delete bare/big"
  else
    got=sha256:$(curl -sL "$url" | sha256sum | cut -d' ' -f1)
    alive "${SRV_PID[$k]}" "the 1 GiB GET"
    drop_blob "$k" "$BIG_DIG"
    # anything big left behind (upload objects, unfinished multipart uploads) is a leak: report and remove it
    n=$(s3_empty "${SRV_BUCKET[$k]}" $((64 * MIB))) || die "cannot list bucket ${SRV_BUCKET[$k]}"
    [ "$n" = 0 ] || NOTES+="  ! ${SRV_NAME[$k]}: after its 1 GiB push, $n object(s) >= 64 MiB or unfinished multipart upload(s) were left in its bucket"$'\n'
  fi
  [ "$got" = "$BIG_DIG" ] || die "${SRV_NAME[$k]}: the 1 GiB blob GET returned $got, pushed $BIG_DIG"
  rgw_gc
  echo "  ${SRV_NAME[$k]} 1 GiB GET (curl -L): ${ts[*]} s; digest checked; MemStore used after deleting it and gc: $(osd_used_mib) MiB" >>"$W/details"
done
declare -A F6=() F7=()
for k in "${ORDER[@]}"; do F6[$k]=$(mbs "$BIG_SIZE" "${T6[$k]}"); F7[$k]=$(mbs "$BIG_SIZE" "${T7[$k]}"); done
Q6DP=$(ratio "${F6[whp]}" "${F6[dip]}"); Q6DS=$(ratio "${F6[whs]}" "${F6[dir]}")
Q6BP=$(ratio "${F6[whp]}" "${F6[bare]}"); Q6BS=$(ratio "${F6[whs]}" "${F6[bare]}")
prow "6. 1 GiB push, 32 MiB chunks, MB/s" "${F6[whp]}" "${F6[whs]}" "${F6[dip]}" "${F6[dir]}" "${F6[bare]}" \
  "${Q6DP}/${Q6DS}x dis" ">= 1.5x dis. $(verdict2 "$Q6DP" "$Q6DS" 1.5)"
prow "   vs the bare 1 GiB PUT" "" "" "" "" "" "${Q6BP}/${Q6BS}x RGW" ">= 0.7x RGW $(verdict2 "$Q6BP" "$Q6BS" 0.7)"
Q7P=$(ratio "${F7[whp]}" "${F7[bare]}"); Q7S=$(ratio "${F7[whs]}" "${F7[bare]}")
prow "7. 1 GiB blob GET MB/s, curl -L" "${F7[whp]}" "${F7[whs]}" "${F7[dip]}" "${F7[dir]}" "${F7[bare]}" \
  "${Q7P}/${Q7S}x RGW" ">= 0.8x RGW $(verdict "$Q7P" '>=' 0.8) (proxy)"

sleep 1
declare -A RSS_AFTER=()
for k in "${KEYS[@]}"; do RSS_AFTER[$k]=$(rss_kb "${SRV_PID[$k]}"); done
prow "8. idle RSS after start, MiB" "$(mb "${RSS_IDLE[whp]}")" "$(mb "${RSS_IDLE[whs]}")" "$(mb "${RSS_IDLE[dip]}")" "$(mb "${RSS_IDLE[dir]}")" "-" "" ""
prow "   RSS after figures 1-7, MiB" "$(mb "${RSS_AFTER[whp]}")" "$(mb "${RSS_AFTER[whs]}")" "$(mb "${RSS_AFTER[dip]}")" "$(mb "${RSS_AFTER[dir]}")" "-" "" ""

# ---------------------------------------------------------------- report
echo
echo "== figures, PostgreSQL + RGW (ratio a/b: wharf proxy vs distribution proxy / wharf presigned vs distribution"
echo "   redirect, or each wharf vs RGW bare; dis = distribution, RGW = the bare curl SigV4 figure)"
printf '%-36s|%12s|%12s|%12s|%12s|%12s|%-17s|%s\n' "figure" "wharf proxy" "wharf presig" "distr. proxy" "distr. redir" "RGW bare" "ratio" "target"
printf '%s\n' "------------------------------------+------------+------------+------------+------------+------------+-----------------+----------------"
printf '%s\n' "${ROWS[@]}"
echo
echo "how: 1-2 wrk -t$THREADS -c$C_SMALL; 3 wrk -c$C_BLOB (it follows no redirect; RGW bare: wrk on the presigned URL wharf gives);"
echo "     4 curl -L, $((ROUNDS * GETS)) sequential GETs each over one kept-alive connection (two when redirected), bare:"
echo "     curl --aws-sigv4; 5 curl POST + PUT, $PUSHES each taking turns; 6 curl POST + $BIG_CHUNKS PATCH + PUT (bare: one"
echo "     PUT); 7 curl -L, the median of $BIG_GETS; 4-7 MB/s over the summed curl time_total (10^6 bytes)"
echo "RGW MemStore used right after each 1 GiB push, MiB: bare ${USED[bare]}, wharf proxy ${USED[whp]}, wharf presigned ${USED[whs]},"
echo "     distribution proxy ${USED[dip]}, distribution redirect ${USED[dir]} (each after the previous one was deleted and collected)"
echo
echo "server CPU during the measured wrk runs (100% = one core):"
printf '   %-20s wharf proxy %5s  presigned %5s  distribution proxy %5s  redirect %5s\n' \
  "GET /v2/" "$(field "$R1_whp" cpu_pct)%" "$(field "$R1_whs" cpu_pct)%" "$(field "$R1_dip" cpu_pct)%" "$(field "$R1_dir" cpu_pct)%" \
  "manifest GET" "$(field "$R2_whp" cpu_pct)%" "$(field "$R2_whs" cpu_pct)%" "$(field "$R2_dip" cpu_pct)%" "$(field "$R2_dir" cpu_pct)%" \
  "10 MiB blob GET" "$(field "$R3_whp" cpu_pct)%" "-" "$(field "$R3_dip" cpu_pct)%" "-"
echo "latency p99 (ms): /v2/ $(( $(field "$R1_whp" p99_us) / 1000 ))/$(( $(field "$R1_whs" p99_us) / 1000 ))/$(( $(field "$R1_dip" p99_us) / 1000 ))/$(( $(field "$R1_dir" p99_us) / 1000 )), manifest $(( $(field "$R2_whp" p99_us) / 1000 ))/$(( $(field "$R2_whs" p99_us) / 1000 ))/$(( $(field "$R2_dip" p99_us) / 1000 ))/$(( $(field "$R2_dir" p99_us) / 1000 )), blob $(( $(field "$R3_whp" p99_us) / 1000 ))/-/$(( $(field "$R3_dip" p99_us) / 1000 )) (wharf proxy/presigned/distribution proxy/redirect)"
if [ -n "$ERRNOTE" ]; then
  echo
  echo "errors during the wrk runs (figures above are suspect):"
  printf '%s' "$ERRNOTE"
else
  echo "no wrk errors and no status >= 400 in any wrk run"
fi
if [ -n "$NOTES" ]; then
  echo
  printf '%s' "$NOTES"
fi
for k in "${KEYS[@]}"; do
  # (wharf's start-up warning that --no-auth leaves the registry open is expected)
  bad=$(grep -iE 'error|warn|fail|panic' "${SRV_LOG[$k]}" | grep -v 'NO AUTHENTICATION' || true)
  if [ -n "$bad" ]; then
    echo "  ! ${SRV_NAME[$k]} logged $(wc -l <<<"$bad") error/warning line(s), e.g.: $(head -1 <<<"$bad" | cut -c1-200)"
  fi
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$KEEP" = 1 ]; then
  echo "details (wrk lines, push and GET times, CPU, MemStore use): $W/details"
else
  echo
  echo "details:"
  sed 's/^/ /' "$W/details"
fi
