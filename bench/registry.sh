#!/usr/bin/env bash
# bench/registry.sh — wharf vs CNCF distribution 2.8 (Debian's
# docker-registry) vs nginx (the ceiling), side by side on loopback.
# A benchmark, not a test: it prints figures and whether each of its
# targets is met; it exits non-zero only when something could not be run.
#
#   bash bench/registry.sh [--quick] [--keep] [--ignore-sigpipe] [--backend fs|pg+s3]
#
#   --quick           smoke run: 3 s wrk runs, 5 pushes, -d5s load test
#   --keep            keep the scratch directory (logs, configs, wrk output)
#   --backend pg+s3   instead of the embedded stores (fs: SQLite + filesystem,
#                     the default), on PostgreSQL 15 + Ceph RADOS Gateway
#                     started here: wharf with redirect proxy and presigned,
#                     distribution's s3 driver with redirects off and on, and
#                     bare SigV4 PUT/GET to RGW with curl (the ceiling); see
#                     bench/registry-pgs3.sh
#   --ignore-sigpipe  start wharf with SIGPIPE already ignored (inherited
#                     through exec): a stand-in for wharf ignoring it itself,
#                     for builds that die of SIGPIPE when a client resets a
#                     connection during a sendfile blob GET; said in the output
#
# Environment: WHARF_BIN, DOCKER_REGISTRY_BIN, NGINX_BIN override binaries;
# BENCH_DIR picks the parent of the scratch directory (default $TMPDIR or /tmp);
# with --backend pg+s3, BENCH_MEMSTORE_BYTES sizes RGW's in-memory store and
# DIST_S3_CHUNKSIZE distribution's s3 part size (its default: 10 MiB).
#
# Every server listens on 127.0.0.1 on a free port, runs with request
# logging off, and is stopped by its PID on exit. Nothing is killed by name.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
WHARF_BIN=${WHARF_BIN:-$ROOT/build/wharf}
DIST_BIN=${DOCKER_REGISTRY_BIN:-/usr/bin/docker-registry}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

QUICK=0
KEEP=0
NOPIPE=0
BACKEND=fs
while [ $# -gt 0 ]; do
  a=$1; shift
  case $a in
    --quick) QUICK=1 ;;
    --keep) KEEP=1 ;;
    --ignore-sigpipe) NOPIPE=1 ;;
    --backend) [ $# -gt 0 ] || { echo "--backend needs fs or pg+s3" >&2; exit 2; }; BACKEND=$1; shift ;;
    --backend=*) BACKEND=${a#--backend=} ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $a (try --help)" >&2; exit 2 ;;
  esac
done
case $BACKEND in fs|pg+s3) ;; *) echo "unknown backend: $BACKEND (fs or pg+s3)" >&2; exit 2 ;; esac

if [ "$QUICK" = 1 ]; then
  DUR=3; WARM=1; PUSHES=5; LOAD_DUR=5
else
  DUR=10; WARM=2; PUSHES=20; LOAD_DUR=30
fi
THREADS=2          # wrk -t2 everywhere: 2-core machine
C_SMALL=50         # connections for small requests (/v2/, manifest, small file)
C_BLOB=4           # connections for the 10 MiB blob GET
C_LOAD=1000        # the many-clients load test
MIB=$((1024 * 1024))

# ---------------------------------------------------------------- tools
need=()
for t in wrk curl python3 sha256sum; do command -v "$t" >/dev/null || need+=("$t"); done
[ -x "$DIST_BIN" ] || need+=("$DIST_BIN")
if [ "$BACKEND" = fs ]; then
  [ -x "$NGINX_BIN" ] || need+=("$NGINX_BIN")
else
  [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
  for t in ceph-mon ceph-osd radosgw radosgw-admin; do command -v "$t" >/dev/null || need+=("$t"); done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "missing: ${need[*]}; installing the test packages (scripts/install-deps.sh test)" >&2
  bash "$ROOT/scripts/install-deps.sh" test
fi
if [ ! -x "$WHARF_BIN" ]; then
  echo "no $WHARF_BIN; building (scripts/build.sh)" >&2
  (cd "$ROOT" && bash scripts/build.sh)
fi

# wrk -c1000 needs more than 1024 descriptors; servers started from here
# inherit the raised limit too (wharf also raises its own at start).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
if [ "$(ulimit -n)" -lt $((C_LOAD + 100)) ]; then
  echo "warning: open-file limit $(ulimit -n) is too low for wrk -c$C_LOAD" >&2
fi

# ---------------------------------------------------------------- scratch + cleanup
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/wharf-bench.XXXXXX")
PIDS=()
declare -A PNAME=() PLOG=()   # a started server's name and log, by PID (for alive)
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || continue
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # --backend pg+s3: RGW and PostgreSQL, after the registries (by their PIDs)
  if declare -F pgs3_down >/dev/null; then pgs3_down; fi
  if [ "$KEEP" = 1 ]; then
    echo "scratch directory kept: $W"
  else
    rm -rf "$W"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench: $*" >&2; exit 1; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # URL PID NAME LOG
  for _ in $(seq 200); do
    kill -0 "$2" 2>/dev/null || { tail -20 "$4" >&2; die "$3 exited during start"; }
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.05
  done
  tail -20 "$4" >&2
  die "$3 did not answer at $1"
}
# RSS in kB of a PID plus its direct children (nginx workers)
rss_kb() {
  local total=0 p v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# CPU time (clock ticks, user+system) of a PID plus its direct children
cpu_ticks() {
  local total=0 p v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)
# alive PID WHAT: die with the server's exit status and log if it is gone
alive() {
  kill -0 "$1" 2>/dev/null && return 0
  local rc=0 name=${PNAME[$1]:-server} log=${PLOG[$1]:-/dev/null}
  wait "$1" || rc=$?
  tail -20 "$log" >&2
  if [[ $name == wharf* ]] && [ "$rc" = 141 ]; then
    echo "bench: wharf was killed by SIGPIPE: it does not ignore SIGPIPE, and sendfile(2) to a" >&2
    echo "       client that reset the connection (wrk closing at the end of a run) raises it." >&2
    echo "       Rerun with --ignore-sigpipe to get figures until wharf ignores SIGPIPE itself." >&2
  fi
  die "$name (pid $1) died during $2, exit status $rc$( [ "$rc" -gt 128 ] && echo " (signal $((rc - 128)))")"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }   # kB -> MiB

# ---------------------------------------------------------------- test data
mkdir -p "$W/data" "$W/push" "$W/www" "$W/bin"
# run a copy of the binary, so that a rebuild during the run cannot touch it
cp "$WHARF_BIN" "$W/bin/wharf"
WHARF_SHA=$(sha256sum "$WHARF_BIN" | cut -c1-12)
head -c 10485760 /dev/urandom >"$W/data/layer10m"
head -c 1048576 /dev/urandom >"$W/data/layer1m"
sha() { sha256sum "$1" | cut -d' ' -f1; }
L10_DIG=sha256:$(sha "$W/data/layer10m")
L1_DIG=sha256:$(sha "$W/data/layer1m")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s","%s"]}}' \
  "$L10_DIG" "$L1_DIG" >"$W/data/config"
CFG_DIG=sha256:$(sha "$W/data/config")
MT=application/vnd.oci.image.manifest.v1+json
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
  "$MT" "$CFG_DIG" "$(stat -c %s "$W/data/config")" "$L10_DIG" 10485760 "$L1_DIG" 1048576 >"$W/data/manifest"
MAN_DIG=sha256:$(sha "$W/data/manifest")
REPO=bench/app
TAG=v1
MAN_PATH=/v2/$REPO/manifests/$TAG
BLOB10_PATH=/v2/$REPO/blobs/$L10_DIG
BLOB1_PATH=/v2/$REPO/blobs/$L1_DIG

# distinct random blobs for the push test (the same files go to both
# registries, which are separate; each registry sees each digest once)
for i in $(seq 0 "$PUSHES"); do   # 0 is the untimed warm-up push
  head -c 10485760 /dev/urandom >"$W/push/$i"
  echo "sha256:$(sha "$W/push/$i")" >"$W/push/$i.digest"
done

# nginx serves the very same 10 MiB layer bytes and a small file holding
# the same body as GET /v2/ ("{}")
cp "$W/data/layer10m" "$W/www/blob10m"
printf '{}' >"$W/www/small.json"
# nginx workers run as an unprivileged user when started as root
chmod 755 "$W" "$W/www"; chmod 644 "$W/www/"*

# ---------------------------------------------------------------- helpers (both backends)
# push_blob BASE REPO FILE DIGEST: POST then PUT ?digest= with the body
push_blob() {
  local base=$1 repo=$2 file=$3 dig=$4 hdr loc sep code
  hdr=$W/hdr.$$
  code=$(curl -s -o /dev/null -D "$hdr" -w '%{http_code}' -X POST "$base/v2/$repo/blobs/uploads/")
  [ "$code" = 202 ] || die "POST upload to $base: $code"
  loc=$(awk 'tolower($1) == "location:" {print $2}' "$hdr" | tr -d '\r')
  case $loc in http*) ;; *) loc=$base$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -T "$file" "$loc${sep}digest=$dig")
  [ "$code" = 201 ] || die "PUT upload to $base: $code"
}
seed() { # BASE NAME
  local base=$1 code got
  push_blob "$base" "$REPO" "$W/data/config" "$CFG_DIG"
  push_blob "$base" "$REPO" "$W/data/layer10m" "$L10_DIG"
  push_blob "$base" "$REPO" "$W/data/layer1m" "$L1_DIG"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT" \
    --data-binary "@$W/data/manifest" "$base$MAN_PATH")
  [ "$code" = 201 ] || die "$2: manifest PUT: $code"
  # check what the benchmark will fetch
  got=$(curl -s -D - -o "$W/got" -H "Accept: $MT" "$base$MAN_PATH" | awk 'tolower($1)=="docker-content-digest:" {print $2}' | tr -d '\r')
  [ "$got" = "$MAN_DIG" ] && cmp -s "$W/got" "$W/data/manifest" || die "$2: manifest GET by tag does not return the pushed manifest"
  # (-L: with --backend pg+s3 a registry may redirect blob GETs to the object store)
  curl -sL -o "$W/got" "$base$BLOB10_PATH"; cmp -s "$W/got" "$W/data/layer10m" || die "$2: 10 MiB blob GET differs"
  curl -sL -o "$W/got" "$base$BLOB1_PATH"; cmp -s "$W/got" "$W/data/layer1m" || die "$2: 1 MiB blob GET differs"
  rm -f "$W/got"
}
# field LINE KEY
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<" $1"; }
# run_wrk OUTVAR PID CONNS URL [extra wrk args...]: warm-up, measured run.
# Sets OUTVAR to the WRK_RESULT line with " cpu_pct=N" appended (CPU used by
# the server process(es) during the measured run, 100 = one core).
run_wrk() {
  local var=$1 pid=$2 conns=$3 url=$4 c0 c1 out line
  shift 4
  wrk -t"$THREADS" -c"$conns" -d"${WARM}s" "$@" -s "$HERE/wrk-report.lua" "$url" >/dev/null 2>&1 || true
  out=$W/wrk.$(date +%s%N)
  c0=$(cpu_ticks "$pid")
  wrk -t"$THREADS" -c"$conns" -d"${DUR}s" "$@" -s "$HERE/wrk-report.lua" "$url" >"$out" 2>&1 || true
  c1=$(cpu_ticks "$pid")
  alive "$pid" "$url"
  line=$(grep '^WRK_RESULT' "$out" | tail -1 || true)
  [ -n "$line" ] || { cat "$out" >&2; die "wrk produced no result for $url"; }
  line="$line cpu_pct=$(( (c1 - c0) * 100 / HZ / DUR ))"
  printf -v "$var" '%s' "$line"
  echo "  $url (-c$conns): $line" >>"$W/details"
}
rps() { awk -v r="$(field "$1" requests)" -v d="$(field "$1" duration_us)" 'BEGIN { printf "%.0f", r / (d / 1e6) }'; }
mbps() { awk -v b="$(field "$1" bytes)" -v d="$(field "$1" duration_us)" 'BEGIN { printf "%.0f", b / 1e6 / (d / 1e6) }'; }
errs() { echo $(( $(field "$1" connect) + $(field "$1" read) + $(field "$1" write) + $(field "$1" status) + $(field "$1" timeout) )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { # RATIO OP TARGET
  awk -v r="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? (r >= t) : (r < t); print ok ? "MET" : "NOT MET" }'
}

ERRNOTE=""
check_errs() { # NAME LINE
  local e; e=$(errs "$2")
  [ "$e" = 0 ] || ERRNOTE+="  ! $1: $e wrk errors/non-2xx ($2)"$'\n'
}

# push_time BASE NAME FILE: one monolithic push (POST, then PUT ?digest=
# with the body; the registry verifies the digest); prints the two curl
# request times summed, in seconds.
push_time() {
  local base=$1 name=$2 file=$3 hdr=$W/push.hdr out loc sep t
  out=$(curl -s -o /dev/null -D "$hdr" -w '%{http_code} %{time_total}' -X POST "$base/v2/bench/push/blobs/uploads/")
  [ "${out%% *}" = 202 ] || die "$name: push POST: $out"
  t=${out#* }
  loc=$(awk 'tolower($1) == "location:" {print $2}' "$hdr" | tr -d '\r')
  case $loc in http*) ;; *) loc=$base$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' -T "$file" "$loc${sep}digest=$(cat "$file.digest")")
  [ "${out%% *}" = 201 ] || die "$name: push PUT: $out"
  awk -v a="$t" -v b="${out#* }" 'BEGIN { printf "%.6f", a + b }'
}

# ---------------------------------------------------------------- --backend pg+s3
# its own servers, figures and report (bench/registry-pgs3.sh, with the helpers above)
if [ "$BACKEND" = pg+s3 ]; then
  . "$HERE/registry-pgs3.sh"
  exit 0
fi

# ---------------------------------------------------------------- servers
WH_PORT=$(free_port); DI_PORT=$(free_port); NG_PORT=$(free_port)
while [ "$DI_PORT" = "$WH_PORT" ]; do DI_PORT=$(free_port); done
while [ "$NG_PORT" = "$WH_PORT" ] || [ "$NG_PORT" = "$DI_PORT" ]; do NG_PORT=$(free_port); done

# wharf: defaults, request logging off, no per-client connection cap (wrk's
# 1000 connections all come from 127.0.0.1; distribution and nginx have no cap)
mkdir -p "$W/wharf"
cat >"$W/wharf/config.yml" <<EOF
log: {requests: false}
limits: {max_connections_per_client: 0}
EOF
(
  [ "$NOPIPE" = 1 ] && trap '' PIPE
  exec "$W/bin/wharf" serve --no-auth --listen "127.0.0.1:$WH_PORT" --data-dir "$W/wharf/data" \
    --config "$W/wharf/config.yml" >"$W/wharf/log" 2>&1
) &
WH_PID=$!; PIDS+=("$WH_PID"); PNAME[$WH_PID]=wharf; PLOG[$WH_PID]=$W/wharf/log

# distribution: Debian's default config (inmemory blob-descriptor cache,
# filesystem storage) minus auth and the storage health check, access log off
mkdir -p "$W/dist/data"
cat >"$W/dist/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $W/dist/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$DI_PORT
  secret: wharf-bench-not-a-secret
EOF
"$DIST_BIN" serve "$W/dist/config.yml" >"$W/dist/log" 2>&1 &
DI_PID=$!; PIDS+=("$DI_PID"); PNAME[$DI_PID]=distribution; PLOG[$DI_PID]=$W/dist/log

# nginx: the ceiling — sendfile, access log off, one worker per core,
# keep-alive connections never recycled (as in both registries)
mkdir -p "$W/nginx/tmp"
cat >"$W/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
worker_rlimit_nofile 16384;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log error;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  types { application/json json; }
  default_type application/octet-stream;
  client_body_temp_path $W/nginx/tmp/body; proxy_temp_path $W/nginx/tmp/proxy;
  fastcgi_temp_path $W/nginx/tmp/fcgi; uwsgi_temp_path $W/nginx/tmp/uwsgi; scgi_temp_path $W/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NG_PORT;
    root $W/www;
  }
}
EOF
"$NGINX_BIN" -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" >"$W/nginx/log" 2>&1 &
NG_PID=$!; PIDS+=("$NG_PID"); PNAME[$NG_PID]=nginx; PLOG[$NG_PID]=$W/nginx/error.log

WH=http://127.0.0.1:$WH_PORT
DI=http://127.0.0.1:$DI_PORT
NG=http://127.0.0.1:$NG_PORT
wait_http "$WH/v2/" "$WH_PID" wharf "$W/wharf/log"
wait_http "$DI/v2/" "$DI_PID" distribution "$W/dist/log"
wait_http "$NG/small.json" "$NG_PID" nginx "$W/nginx/error.log"
sleep 1
RSS_IDLE_WH=$(rss_kb "$WH_PID"); RSS_IDLE_DI=$(rss_kb "$DI_PID"); RSS_IDLE_NG=$(rss_kb "$NG_PID")

# ---------------------------------------------------------------- header
echo "== wharf registry benchmark $( [ "$QUICK" = 1 ] && echo '(--quick: smoke figures only)')"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
echo "wharf:    $WHARF_BIN (sha256 $WHARF_SHA…, git $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')), $(grep -o '[0-9]* threads' "$W/wharf/log" | head -1), pid $WH_PID, $WH"
echo "distrib.: $("$DIST_BIN" --version 2>&1 | awk '{print $2, $3}'), pid $DI_PID, $DI"
echo "nginx:    $("$NGINX_BIN" -v 2>&1 | cut -d/ -f2) ($(ps -o pid= --ppid "$NG_PID" | wc -l) workers), pid $NG_PID, $NG"
echo "wrk:      $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t$THREADS; ${DUR}s per run after a ${WARM}s warm-up; open-file limit $(ulimit -n)"
echo "logging:  request logging OFF in both registries (wharf log.requests=false;"
echo "          distribution log.accesslog.disabled=true, log.level=error); nginx access_log off"
if [ "$NOPIPE" = 1 ]; then
  echo "NOTE:     --ignore-sigpipe: wharf was started with SIGPIPE ignored (SigIgn $(awk '/^SigIgn/ {print $2}' "/proc/$WH_PID/status"))"
fi
echo "storage:  all three on $(df -T "$W" | awk 'NR==2 {print $2}') under $W"
echo

seed "$WH" wharf
seed "$DI" distribution
curl -s -o "$W/got" "$NG/blob10m"; cmp -s "$W/got" "$W/data/layer10m" || die "nginx: blob differs"; rm -f "$W/got"
echo "seeded both registries with $REPO:$TAG (OCI manifest $MAN_DIG: config + 10 MiB + 1 MiB layers)"
echo

ROWS=()
row() { ROWS+=("$(printf '%-34s|%12s|%12s|%12s|%-18s|%s' "$@")"); }

echo "-- 1. GET /v2/ vs nginx small static file (-c$C_SMALL)"
run_wrk R1W "$WH_PID" "$C_SMALL" "$WH/v2/"
run_wrk R1D "$DI_PID" "$C_SMALL" "$DI/v2/"
run_wrk R1N "$NG_PID" "$C_SMALL" "$NG/small.json"
for v in R1W R1D R1N; do check_errs "$v" "${!v}"; done
F1W=$(rps "$R1W"); F1D=$(rps "$R1D"); F1N=$(rps "$R1N"); Q1=$(ratio "$F1W" "$F1N")
row "1. GET /v2/ req/s" "$F1W" "$F1D" "$F1N" "${Q1}x nginx" ">= 0.7x  $(verdict "$Q1" '>=' 0.7)"

echo "-- 2. manifest GET by tag (-c$C_SMALL, Accept: $MT)"
run_wrk R2W "$WH_PID" "$C_SMALL" "$WH$MAN_PATH" -H "Accept: $MT"
run_wrk R2D "$DI_PID" "$C_SMALL" "$DI$MAN_PATH" -H "Accept: $MT"
for v in R2W R2D; do check_errs "$v" "${!v}"; done
F2W=$(rps "$R2W"); F2D=$(rps "$R2D"); Q2=$(ratio "$F2W" "$F2D")
row "2. manifest GET by tag req/s" "$F2W" "$F2D" "-" "${Q2}x distrib." ">= 5x    $(verdict "$Q2" '>=' 5)"

echo "-- 3. 10 MiB blob GET (-c$C_BLOB)"
run_wrk R3W "$WH_PID" "$C_BLOB" "$WH$BLOB10_PATH"
run_wrk R3D "$DI_PID" "$C_BLOB" "$DI$BLOB10_PATH"
run_wrk R3N "$NG_PID" "$C_BLOB" "$NG/blob10m"
for v in R3W R3D R3N; do check_errs "$v" "${!v}"; done
F3W=$(mbps "$R3W"); F3D=$(mbps "$R3D"); F3N=$(mbps "$R3N"); Q3=$(ratio "$F3W" "$F3N")
row "3. 10 MiB blob GET MB/s" "$F3W" "$F3D" "$F3N" "${Q3}x nginx" ">= 0.9x  $(verdict "$Q3" '>=' 0.9)"

# ---------------------------------------------------------------- pushes
# push_pair: $PUSHES fresh random 10 MiB blobs pushed to wharf and to
# distribution in turn (blob i to one, then to the other, the first server
# alternating), so a machine that slows down mid-run slows both alike. Sets
# F4W/F4D (MB/s over the summed curl request times), F4Wwall/F4Dwall (MB/s
# over each server's share of the wall clock, curl start-up included) and
# C4W/C4D (server CPU %, over that share).
push_pair() {
  local i t t0 t1 c0 c1 order s
  declare -A sum=([wharf]=0 [distribution]=0) wall=([wharf]=0 [distribution]=0) cpu=([wharf]=0 [distribution]=0)
  declare -A base=([wharf]=$WH [distribution]=$DI) pid=([wharf]=$WH_PID [distribution]=$DI_PID)
  for s in wharf distribution; do push_time "${base[$s]}" "$s" "$W/push/0" >/dev/null; done   # warm-up
  for i in $(seq 1 "$PUSHES"); do
    if (( i % 2 )); then order="wharf distribution"; else order="distribution wharf"; fi
    for s in $order; do
      c0=$(cpu_ticks "${pid[$s]}"); t0=$(date +%s%N)
      t=$(push_time "${base[$s]}" "$s" "$W/push/$i")
      t1=$(date +%s%N); c1=$(cpu_ticks "${pid[$s]}")
      sum[$s]=$(awk -v a="${sum[$s]}" -v b="$t" 'BEGIN { printf "%.6f", a + b }')
      wall[$s]=$(( ${wall[$s]} + t1 - t0 )); cpu[$s]=$(( ${cpu[$s]} + c1 - c0 ))
    done
  done
  # every pushed blob is there, whole, in both
  for s in wharf distribution; do
    for i in $(seq 1 "$PUSHES"); do
      t=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "${base[$s]}/v2/bench/push/blobs/$(cat "$W/push/$i.digest")")
      [ "$t" = "200 10485760" ] || die "$s: pushed blob $i not readable: $t"
    done
    echo "  $s push: $PUSHES x 10 MiB, curl request time ${sum[$s]}s, wall $(( ${wall[$s]} / 1000000 )) ms, server CPU $(( ${cpu[$s]} * 100 * 1000000000 / HZ / ${wall[$s]} ))%" >>"$W/details"
  done
  F4W=$(awk -v n="$PUSHES" -v s="${sum[wharf]}" 'BEGIN { printf "%.0f", n * 10485760 / 1e6 / s }')
  F4D=$(awk -v n="$PUSHES" -v s="${sum[distribution]}" 'BEGIN { printf "%.0f", n * 10485760 / 1e6 / s }')
  F4Wwall=$(awk -v n="$PUSHES" -v ns="${wall[wharf]}" 'BEGIN { printf "%.0f", n * 10485760 / 1e6 / (ns / 1e9) }')
  F4Dwall=$(awk -v n="$PUSHES" -v ns="${wall[distribution]}" 'BEGIN { printf "%.0f", n * 10485760 / 1e6 / (ns / 1e9) }')
  C4W=$(( ${cpu[wharf]} * 100 * 1000000000 / HZ / ${wall[wharf]} ))
  C4D=$(( ${cpu[distribution]} * 100 * 1000000000 / HZ / ${wall[distribution]} ))
}
echo "-- 4. monolithic 10 MiB push, POST + PUT ?digest= ($PUSHES pushes to each, taking turns, curl)"
push_pair
Q4=$(ratio "$F4W" "$F4D")
row "4. 10 MiB push MB/s" "$F4W" "$F4D" "-" "${Q4}x distrib." ">= 3x    $(verdict "$Q4" '>=' 3)"
row "   (wall clock incl. curl start)" "$F4Wwall" "$F4Dwall" "-" "$(ratio "$F4Wwall" "$F4Dwall")x distrib." ""

sleep 1
RSS_LOAD_WH=$(rss_kb "$WH_PID"); RSS_LOAD_DI=$(rss_kb "$DI_PID"); RSS_LOAD_NG=$(rss_kb "$NG_PID")
row "5. idle RSS after start, MiB" "$(mb "$RSS_IDLE_WH")" "$(mb "$RSS_IDLE_DI")" "$(mb "$RSS_IDLE_NG")" "wharf < 30 MiB" "< 30     $(awk -v k="$RSS_IDLE_WH" 'BEGIN { print (k < 30 * 1024) ? "MET" : "NOT MET" }')"
row "   RSS after figures 1-4, MiB" "$(mb "$RSS_LOAD_WH")" "$(mb "$RSS_LOAD_DI")" "$(mb "$RSS_LOAD_NG")" "" ""

# ---------------------------------------------------------------- load test
echo "-- 6. load test: wrk -t$THREADS -c$C_LOAD -d${LOAD_DUR}s, manifest + 1 MiB blob GETs alternating, against wharf"
curl -fs "$WH/metrics" >"$W/metrics.before" || die "wharf /metrics"
c0=$(cpu_ticks "$WH_PID")
wrk -t"$THREADS" -c"$C_LOAD" -d"${LOAD_DUR}s" -s "$HERE/wrk-mixed.lua" "$WH" \
  -- "$MAN_PATH" "$MT" "$BLOB1_PATH" >"$W/load.out" 2>&1 || true
c1=$(cpu_ticks "$WH_PID")
alive "$WH_PID" "the load test"
LOAD=$(grep '^WRK_RESULT' "$W/load.out" | tail -1 || true)
[ -n "$LOAD" ] || { cat "$W/load.out" >&2; die "load test: no wrk result"; }
LOAD_CPU=$(( (c1 - c0) * 100 / HZ / LOAD_DUR ))
sleep 1
curl -fs "$WH/metrics" >"$W/metrics.after" || die "wharf /metrics after the load test"
SRV=$(python3 "$HERE/metrics_delta.py" "$W/metrics.before" "$W/metrics.after")
echo "  load: $LOAD cpu_pct=$LOAD_CPU; wharf /metrics: $SRV" >>"$W/details"
RSS_AFTER_C1000=$(rss_kb "$WH_PID")
L_SOCK=$(( $(field "$LOAD" connect) + $(field "$LOAD" read) + $(field "$LOAD" write) + $(field "$LOAD" timeout) ))
L_BAD_WRK=$(field "$LOAD" status)
L_BAD_SRV=$(field "$SRV" non2xx)
L_OK=$([ "$L_SOCK" = 0 ] && [ "$L_BAD_WRK" = 0 ] && [ "$L_BAD_SRV" = 0 ] && echo MET || echo "NOT MET")

# ---------------------------------------------------------------- report
echo
echo "== figures (wharf / distribution / nginx; ratio = wharf vs the target's reference)"
printf '%-34s|%12s|%12s|%12s|%-18s|%s\n' "figure" "wharf" "distribution" "nginx" "ratio" "target"
printf '%s\n' "----------------------------------+------------+------------+------------+------------------+---------------"
printf '%s\n' "${ROWS[@]}"
echo
echo "6. wrk -t$THREADS -c$C_LOAD -d${LOAD_DUR}s mixed manifest + 1 MiB blob GETs against wharf:"
echo "   requests: $(field "$LOAD" requests) ($(rps "$LOAD") req/s, $(mbps "$LOAD") MB/s; p50 $(( $(field "$LOAD" p50_us) / 1000 )) ms, p99 $(( $(field "$LOAD" p99_us) / 1000 )) ms, max $(( $(field "$LOAD" max_us) / 1000 )) ms)"
echo "   socket errors: connect $(field "$LOAD" connect), read $(field "$LOAD" read), write $(field "$LOAD" write), timeout $(field "$LOAD" timeout) (wrk's 2 s)"
echo "   non-2xx: $L_BAD_WRK with status >= 400 seen by wrk; $L_BAD_SRV non-2xx of $(field "$SRV" total) counted by wharf's /metrics (by status: $(sed -n 's/.*by_status=//p' <<<"$SRV"))"
echo "   wharf CPU during the load test: ${LOAD_CPU}% (100% = one core)"
echo "   target zero errors and zero non-2xx: $L_OK"
echo "   wharf RSS after the load test: $(mb "$RSS_AFTER_C1000") MiB"
echo
echo "server CPU during the measured runs (100% = one core):"
printf '   %-26s wharf %5s  distribution %5s  nginx %5s\n' \
  "GET /v2/ (small file)" "$(field "$R1W" cpu_pct)%" "$(field "$R1D" cpu_pct)%" "$(field "$R1N" cpu_pct)%" \
  "manifest GET" "$(field "$R2W" cpu_pct)%" "$(field "$R2D" cpu_pct)%" "-" \
  "10 MiB blob GET" "$(field "$R3W" cpu_pct)%" "$(field "$R3D" cpu_pct)%" "$(field "$R3N" cpu_pct)%" \
  "10 MiB push" "$C4W%" "$C4D%" "-"
echo "latency p99 (ms): /v2/ $(( $(field "$R1W" p99_us) / 1000 ))/$(( $(field "$R1D" p99_us) / 1000 ))/$(( $(field "$R1N" p99_us) / 1000 )), manifest $(( $(field "$R2W" p99_us) / 1000 ))/$(( $(field "$R2D" p99_us) / 1000 )), blob $(( $(field "$R3W" p99_us) / 1000 ))/$(( $(field "$R3D" p99_us) / 1000 ))/$(( $(field "$R3N" p99_us) / 1000 )) (wharf/distribution/nginx)"
if [ -n "$ERRNOTE" ]; then
  echo
  echo "errors during the figure runs (figures above are suspect):"
  printf '%s' "$ERRNOTE"
else
  echo "no wrk errors and no status >= 400 in any figure run"
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$KEEP" = 1 ]; then
  echo "raw wrk lines: $W/details"
fi
