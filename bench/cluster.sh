#!/usr/bin/env bash
# bench/cluster.sh — wharf scaled out, side by side in one invocation:
#   wharf, one replica behind nginx;
#   wharf, two replicas behind nginx (cluster: sections, one PostgreSQL
#     schema, one bucket);
#   CNCF distribution 2.8 run the same way: two docker-registry replicas with
#     the s3 driver on the same RGW, sharing http.secret, behind the same nginx
#     configuration (tests/lib/nginx-two-replicas.conf).
# PostgreSQL 15 and Ceph RGW (MemStore) are started here (bench/pgs3.sh); all on
# 127.0.0.1, free ports, stopped by PID. One set-up runs at a time.
#
# Figures per set-up, through nginx:
#   pull:  manifest GET by tag, requests/s (wrk, -c32, $SECS s), and a 1 MiB
#          blob GET, requests/s (wrk -c8);
#   push:  4 clients at once, each pushing $PUSHES blobs of 16 MiB (POST, then
#          PUT ?digest= with the body), MB/s over the wall time;
#   squash (wharf only): a cold squash of an image with a 128 MiB layer — on
#          one replica: the builder's time to first byte and total; on two:
#          the builder asked first and the other replica 0.3 s later (it
#          relays the builder's stream): each one's first byte and total.
# And the CPU each process used in each phase (user + system seconds from
# /proc: the replicas, nginx with its workers, PostgreSQL with its backends,
# radosgw, the OSD). Two cores cannot show linear scaling: the figures say
# where the CPU goes.
#
# Usage: bash bench/cluster.sh [--quick]    (--quick: shorter runs, smoke only)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/common.sh
. tests/lib/cluster.sh
. bench/pgs3.sh
WHARF_BIN=${WHARF_BIN:-$ROOT/build/wharf}
DIST_BIN=${DOCKER_REGISTRY_BIN:-/usr/bin/docker-registry}
QUICK=0; [ "${1:-}" = --quick ] && QUICK=1
if [ $QUICK = 1 ]; then SECS=3; PUSHES=2; else SECS=10; PUSHES=6; fi
for t in wrk nginx skopeo "$DIST_BIN"; do command -v "$t" >/dev/null || { echo "bench/cluster.sh: needs $t" >&2; exit 2; }; done

W=$(mktemp -d /tmp/wharf-bench-cluster.XXXXXX); chmod 755 "$W"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done
  pgs3_down >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
pgs3_up "$W" || exit 1
export WHARF_TEST_PG_DSN=$PG_DSN WHARF_TEST_S3_ENDPOINT=$S3

# ---- test data
MT='application/vnd.oci.image.manifest.v1+json'
BIG_MB=128 bash tests/lib/make-oci-image.sh "$W/sq1" v1 >/dev/null  # one cold squash per set-up
BIG_MB=128 bash tests/lib/make-oci-image.sh "$W/sq2" v1 >/dev/null
bash tests/lib/make-oci-image.sh "$W/small" v1 >/dev/null
head -c $((1 << 20)) /dev/urandom >"$W/blob1m"
D1M=sha256:$(sha256sum "$W/blob1m" | cut -d' ' -f1)
for c in 1 2 3 4; do
  for i in $(seq "$PUSHES"); do head -c $((16 << 20)) /dev/urandom >"$W/push.$c.$i"; done
done

# ---- CPU accounting: user+system seconds of a process and its children
tck=$(getconf CLK_TCK)
cpu_ticks() {  # cpu_ticks PID...: utime+stime ticks of each PID and its direct children
  local p c sum=0
  for p in "$@"; do
    for c in $p $(ps -o pid= --ppid "$p" 2>/dev/null); do
      [ -r "/proc/$c/stat" ] && sum=$((sum + $(awk '{print $14 + $15}' "/proc/$c/stat")))
    done
  done
  echo $sum
}
declare -A GROUP=()  # name -> PIDs
snap() { local g; for g in "${!GROUP[@]}"; do echo "$g $(cpu_ticks ${GROUP[$g]})"; done | sort; }
cpu_report() {  # cpu_report BEFORE AFTER: "name 1.23s, ..."
  join "$1" "$2" | awk -v t="$tck" '{d=($3-$2)/t; if (d >= 0.005) printf "%s %.2fs, ", $1, d}' | sed 's/, $//'
}

pg_pid=$(head -1 "$PG_BASE/data/postmaster.pid")
rgw_pid=$(cat "$CEPH_BASE/run/client.rgw.a.pid")
osd_pid=$(cat "$CEPH_BASE/run/osd.0.pid")

# ---- the phases, the same for every set-up
results=()
phase_pull() {  # through $CLUSTER_ADDR
  local name=$1 b a out rps brps
  skopeo copy -q --dest-tls-verify=false oci:"$W/small":v1 "docker://$CLUSTER_ADDR/bench/app:v1" || return 1
  curl -sf -X POST "http://$CLUSTER_ADDR/v2/bench/app/blobs/uploads/" -D "$W/h" -o /dev/null
  local loc; loc=$(tr -d '\r' <"$W/h" | awk -F': ' 'tolower($1)=="location"{print $2}' | sed -E 's|^https?://[^/]+||')
  case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
  curl -sf -X PUT --data-binary @"$W/blob1m" -H 'Content-Type: application/octet-stream' \
    "http://$CLUSTER_ADDR${loc}digest=$D1M" -o /dev/null || return 1
  snap >"$W/c0"
  out=$(wrk -t2 -c32 -d${SECS}s -H "Accept: $MT" "http://$CLUSTER_ADDR/v2/bench/app/manifests/v1" 2>&1)
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  grep -q 'Non-2xx' <<<"$out" && rps="$rps (errors: $(awk '/Non-2xx/{print $NF}' <<<"$out"))"
  snap >"$W/c1"
  out=$(wrk -t2 -c8 -d${SECS}s "http://$CLUSTER_ADDR/v2/bench/app/blobs/$D1M" 2>&1)
  brps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  grep -q 'Non-2xx' <<<"$out" && brps="$brps (errors)"
  snap >"$W/c2"
  results+=("$name|manifest GET by tag, req/s|$rps|$(cpu_report "$W/c0" "$W/c1")")
  results+=("$name|1 MiB blob GET, req/s|$brps|$(cpu_report "$W/c1" "$W/c2")")
}
push_one() {  # push_one FILE REPO
  local d loc
  d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$CLUSTER_ADDR/v2/$2/blobs/uploads/" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="location"{print $2}' | sed -E 's|^https?://[^/]+||')
  case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
  curl -sf -X PUT --data-binary @"$1" -H 'Content-Type: application/octet-stream' \
    "http://$CLUSTER_ADDR${loc}digest=$d" -o /dev/null
}
phase_push() {
  local name=$1 t0 t1 c i fails=0
  snap >"$W/c0"
  t0=$(date +%s.%N)
  local pids=()
  for c in 1 2 3 4; do
    ( for i in $(seq "$PUSHES"); do push_one "$W/push.$c.$i" "bench/push$c" || echo x >>"$W/push.fail"; done ) &
    pids+=($!)
  done
  wait "${pids[@]}"  # (a bare wait would wait for the servers too)
  t1=$(date +%s.%N)
  snap >"$W/c1"
  [ -f "$W/push.fail" ] && fails=$(wc -l <"$W/push.fail") && rm -f "$W/push.fail"
  local mbps; mbps=$(python3 -c "print(round(4*$PUSHES*16*1.048576/($t1-$t0), 1))")
  [ "$fails" != 0 ] && mbps="$mbps ($fails failed)"
  results+=("$name|push, 4 clients x $PUSHES x 16 MiB, MB/s|$mbps|$(cpu_report "$W/c0" "$W/c1")")
}
ttfb() {  # ttfb URL OUT: "first-byte total" seconds of a GET, in OUT
  curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "$1" >"$2" || echo "failed failed" >"$2"
}
phase_squash() {  # phase_squash NAME IMAGE_DIR REPLICAS
  local name=$1 img=$2 n=$3 a b tag=x$3
  skopeo copy -q --dest-tls-verify=false oci:"$img":v1 "docker://$CLUSTER_ADDR/bench/sq:$tag" || return 1
  snap >"$W/c0"
  ttfb "http://$REPLICA_A/c1/squash/bench/sq/$tag" "$W/ta" &
  a=$!
  if [ "$n" = 2 ]; then
    sleep 0.3
    ttfb "http://$REPLICA_B/c1/squash/bench/sq/$tag" "$W/tb" &
    b=$!
    wait "$b"
  fi
  wait "$a"
  snap >"$W/c1"
  local fa ta fb tb
  read -r fa ta <"$W/ta"
  results+=("$name|cold squash (128 MiB layer) on the builder: first byte / total, s|$fa / $ta|$(cpu_report "$W/c0" "$W/c1")")
  if [ "$n" = 2 ]; then
    read -r fb tb <"$W/tb"
    results+=("$name|same image on the other replica 0.3 s later (relayed): first byte / total, s|$fb / $tb|")
  fi
}
stop_setup() {
  local p
  for p in "$@"; do stop_pid "$p"; done
}

# ---- wharf, one replica and two
for n in 1 2; do
  name="wharf x$n"
  s3_bucket "wharf$n" >/dev/null
  printf 'metadata: {driver: postgres, postgres: {dsn: "%s", schema: wharf%s}}\nstorage: {driver: s3, s3: {endpoint: "%s", bucket: wharf%s, access_key: testak, secret_key: testsk}}\nlog: {requests: false}\n' \
    "$PG_DSN" "$n" "$S3" "$n" >"$W/wharf$n.yaml"
  CLUSTER_SIZE=$n cluster_up "$W/wharf$n" "$W/wharf$n.yaml" || { echo "wharf x$n did not start" >&2; exit 1; }
  GROUP=([replica-A]=$REPLICA_A_PID [nginx]=$NGINX_PID [postgres]=$pg_pid [radosgw]=$rgw_pid [osd]=$osd_pid)
  [ "$n" = 2 ] && GROUP[replica-B]=$REPLICA_B_PID
  phase_pull "$name"
  phase_push "$name"
  phase_squash "$name" "$W/sq$n" "$n"
  stop_setup "$NGINX_PID" "$REPLICA_A_PID" ${REPLICA_B_PID:+"$REPLICA_B_PID"}
  unset REPLICA_B_PID
done

# ---- distribution 2.8, two replicas
name="distribution x2"
s3_bucket dist >/dev/null
dist_up() {  # dist_up KEY PORT
  mkdir -p "$W/dist/$1"
  dist_s3_config dist "$2" true >"$W/dist/$1/config.yml"  # one bucket and http.secret for both
  env -u AWS_CA_BUNDLE "$DIST_BIN" serve "$W/dist/$1/config.yml" >"$W/dist/$1/log" 2>&1 &
  PIDS+=($!)
  eval "DIST_$1_PID=$!"
  wait_http "http://127.0.0.1:$2/v2/" 100
}
pa=$(free_port); pb=$(free_port)
dist_up A "$pa" && dist_up B "$pb" || { echo "distribution did not start" >&2; exit 1; }
REPLICA_A=127.0.0.1:$pa REPLICA_B=127.0.0.1:$pb
CLUSTER_SIZE=2 nginx_up "$W/dist" || exit 1
GROUP=([replica-A]=$DIST_A_PID [replica-B]=$DIST_B_PID [nginx]=$NGINX_PID [postgres]=$pg_pid [radosgw]=$rgw_pid [osd]=$osd_pid)
phase_pull "$name"
phase_push "$name"
stop_setup "$NGINX_PID" "$DIST_A_PID" "$DIST_B_PID"

# ---- report
echo "== wharf scale-out benchmark $( [ $QUICK = 1 ] && echo '(--quick: smoke figures only)')"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wharf:    $WHARF_BIN (git $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
echo "distrib.: $("$DIST_BIN" --version 2>&1 | awk '{print $2, $3}') (s3 driver, redirect disabled: it streams blobs)"
echo "all behind nginx $(nginx -v 2>&1 | cut -d/ -f2) (tests/lib/nginx-two-replicas.conf); PostgreSQL 15 + RGW MemStore"
echo
printf '%-17s %-72s %-22s %s\n' "set-up" "figure" "value" "CPU used in the phase"
for r in "${results[@]}"; do
  IFS='|' read -r s f v c <<<"$r"
  printf '%-17s %-72s %-22s %s\n' "$s" "$f" "$v" "$c"
done
