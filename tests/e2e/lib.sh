# shellcheck shell=bash
# Shared helpers for wharf's end-to-end tests with real registry clients.
#
# Source it from a test script:
#     . "$(dirname "$0")/lib.sh"
#     e2e_begin SUITE "$@"          # parses REGISTRY_ADDR, makes a scratch dir, sets traps
#     e2e_test NAME FUNCTION ARGS   # runs one check in a subshell, records PASS/FAIL
#     e2e_end                       # prints the suite summary, exits non-zero on any FAIL
#
# Everything this file starts listens on 127.0.0.1 or a unix socket inside the
# scratch dir, is recorded by PID, and is stopped by PID on exit. Nothing is
# ever killed by name.
#
# Environment:
#   REGISTRY_ADDR   registry under test (host:port), if not given as $1
#   E2E_NS          repository namespace prefix (default e2e/<timestamp>-<pid>)
#   E2E_RESULTS     file the PASS/FAIL lines are appended to (run.sh sets it)
#   E2E_TMPDIR      where scratch dirs are made (default /tmp)
#   E2E_VERBOSE=1   stream each test's output instead of showing it only on failure
#   E2E_KEEP=1      keep the scratch dir after the run

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_MAGIC=WHARF-E2E-OK
E2E_OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
E2E_OCI_INDEX=application/vnd.oci.image.index.v1+json
E2E_OCI_CONFIG=application/vnd.oci.image.config.v1+json
E2E_OCI_LAYER_GZ=application/vnd.oci.image.layer.v1.tar+gzip
E2E_DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
E2E_DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json

# ---------------------------------------------------------------- output

e2e_log()  { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
e2e_die()  { printf '[e2e] FATAL: %s\n' "$*" >&2; exit 2; }

# x CMD ARGS: echo the command (into the test log), then run it.
x() { printf '+ %s\n' "$*" >&2; "$@"; }

# ---------------------------------------------------------------- assertions
# All of these print "ASSERTION FAILED: ..." and exit 1 (ending the current test).

fail() { printf 'ASSERTION FAILED: %s\n' "$*" >&2; exit 1; }

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() {
  [ "$1" == "$2" ] || fail "$3: expected [$1], got [$2]"
  printf 'ok: %s = [%s]\n' "$3" "$1" >&2
}

# assert_ne A B WHAT
assert_ne() {
  [ "$1" != "$2" ] || fail "$3: expected something other than [$1]"
  printf 'ok: %s != [%s]\n' "$3" "$1" >&2
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
  case "$1" in
    *"$2"*) printf 'ok: %s contains [%s]\n' "$3" "$2" >&2 ;;
    *) fail "$3: [$2] not found in: $(printf '%s' "$1" | head -c 2000)" ;;
  esac
}

# assert_match STRING ERE WHAT
assert_match() {
  [[ "$1" =~ $2 ]] || fail "$3: [$1] does not match /$2/"
  printf 'ok: %s matches /%s/\n' "$3" "$2" >&2
}

# assert_file_eq FILE_A FILE_B WHAT   (byte for byte)
assert_file_eq() {
  [ -f "$1" ] || fail "$3: $1 does not exist"
  [ -f "$2" ] || fail "$3: $2 does not exist"
  cmp -s "$1" "$2" || fail "$3: $1 and $2 differ ($(stat -c%s "$1") vs $(stat -c%s "$2") bytes, sha256 $(sha256sum <"$1" | cut -c1-12) vs $(sha256sum <"$2" | cut -c1-12))"
  printf 'ok: %s (%s bytes identical)\n' "$3" "$(stat -c%s "$1")" >&2
}

# assert_digest FILE sha256:HEX WHAT
assert_digest() {
  local got
  got="sha256:$(sha256sum <"$1" | cut -d' ' -f1)"
  assert_eq "$2" "$got" "$3"
}

# assert_fails WHAT CMD ARGS: the command must exit non-zero.
assert_fails() {
  local what=$1; shift
  printf '+ (expect failure) %s\n' "$*" >&2
  if "$@" >&2; then fail "$what: command unexpectedly succeeded: $*"; fi
  printf 'ok: %s (failed as expected)\n' "$what" >&2
}

# ---------------------------------------------------------------- small utilities

# sha256 of a file as "sha256:HEX"
e2e_digest_of() { printf 'sha256:%s' "$(sha256sum <"$1" | cut -d' ' -f1)"; }

# e2e_wait_for SECONDS WHAT CMD ARGS: poll CMD every 0.1 s until it succeeds.
e2e_wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      printf 'timed out after %ss waiting for %s\n' "$secs" "$what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# e2e_free_port: print a TCP port nobody listens on at 127.0.0.1.
e2e_free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# HTTP helpers against the registry under test (plain HTTP).
# e2e_http_status METHOD PATH [curl args]: print the status code.
e2e_http_status() {
  local m=$1 p=$2; shift 2
  if [ "$m" = HEAD ]; then set -- -I "$@"; else set -- -X "$m" "$@"; fi
  curl -s -o /dev/null -w '%{http_code}' "$@" "http://$REGISTRY$p"
}
# e2e_manifest_get REPO REF OUTFILE: fetch the raw manifest bytes, accepting every manifest type.
# Prints the Content-Type and Docker-Content-Digest as "TYPE DIGEST".
e2e_manifest_get() {
  local repo=$1 ref=$2 out=$3 hdr
  hdr=$(mktemp)
  curl -sS -f -o "$out" -D "$hdr" \
    -H "Accept: $E2E_OCI_MANIFEST" -H "Accept: $E2E_OCI_INDEX" \
    -H "Accept: $E2E_DOCKER_MANIFEST" -H "Accept: $E2E_DOCKER_LIST" \
    "http://$REGISTRY/v2/$repo/manifests/$ref" || { rm -f "$hdr"; return 1; }
  local ct dg
  ct=$(tr -d '\r' <"$hdr" | awk -F': ' 'tolower($1)=="content-type"{print $2}' | tail -1)
  dg=$(tr -d '\r' <"$hdr" | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}' | tail -1)
  rm -f "$hdr"
  printf '%s %s\n' "$ct" "$dg"
}

# e2e_check_layers REPO MANIFEST_FILE: the config's diff_ids are the ones we built, and each
# layer served by the registry decompresses to its diff_id
e2e_check_layers() {
  local repo=$1 m=$2 cfg i=0 l
  cfg=$(jq -r .config.digest "$m")
  x curl -sS -f -L -o "$E2E_WORK/cfg.json" "http://$REGISTRY/v2/$repo/blobs/$cfg"
  assert_digest "$E2E_WORK/cfg.json" "$cfg" "config blob"
  assert_eq "$IMG_AMD64_DIFFIDS" "$(jq -r '.rootfs.diff_ids | join(" ")' "$E2E_WORK/cfg.json")" "diff_ids in the pushed config"
  local -a diffids=($IMG_AMD64_DIFFIDS)
  for l in $(jq -r '.layers[].digest' "$m"); do
    x curl -sS -f -L -o "$E2E_WORK/layer" "http://$REGISTRY/v2/$repo/blobs/$l"
    assert_digest "$E2E_WORK/layer" "$l" "layer blob $i"
    assert_eq "${diffids[$i]}" "sha256:$(gzip -dc "$E2E_WORK/layer" | sha256sum | cut -d' ' -f1)" "layer $i uncompressed"
    i=$((i + 1))
  done
  assert_eq 3 "$i" "layer count"
}

# ---------------------------------------------------------------- daemons (by PID only)

# e2e_daemon_start NAME CMD ARGS: start CMD in the background, output to logs/NAME.log,
# and record its PID so e2e_daemon_stop / the exit trap can stop it.
e2e_daemon_start() {
  local name=$1; shift
  printf '+ [daemon %s] %s\n' "$name" "$*" >&2
  "$@" >"$E2E_WORK/logs/daemon-$name.log" 2>&1 </dev/null &
  local pid=$!
  printf '%s %s\n' "$pid" "$name" >>"$E2E_WORK/pids"
  printf 'started %s pid %s\n' "$name" "$pid" >&2
}

e2e_daemon_pid() { awk -v n="$1" '$2==n{p=$1} END{print p}' "$E2E_WORK/pids"; }

_e2e_alive() {
  local st
  [ -r "/proc/$1/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _e2e_stop_pid PID NAME [TIMEOUT]: SIGTERM, wait, then SIGKILL.
_e2e_stop_pid() {
  local pid=$1 name=$2 t=${3:-20} i
  _e2e_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    _e2e_alive "$pid" || break
    sleep 0.1
  done
  if _e2e_alive "$pid"; then
    e2e_log "$name (pid $pid) ignored SIGTERM for ${t}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  wait "$pid" 2>/dev/null || true
}

# e2e_daemon_stop NAME
e2e_daemon_stop() {
  local pid
  pid=$(e2e_daemon_pid "$1")
  [ -n "$pid" ] || return 0
  _e2e_stop_pid "$pid" "$1"
  sed -i "/^$pid $1\$/d" "$E2E_WORK/pids"
}

# e2e_daemon_alive NAME
e2e_daemon_alive() {
  local pid
  pid=$(e2e_daemon_pid "$1")
  [ -n "$pid" ] && _e2e_alive "$pid"
}

# Processes whose command line names our scratch dir (containerd shims, conmon, ...),
# which detach from the daemons that started them. Listed by PID, never by name.
_e2e_stray_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case "$cmd" in *"$E2E_WORK/"*) echo "$p" ;; esac
  done
}

_e2e_cleanup() {
  local rc=$? pid name
  trap - EXIT INT TERM
  [ -n "${E2E_WORK:-}" ] && [ -d "$E2E_WORK" ] || exit "$rc"
  # stop recorded daemons, newest first
  if [ -f "$E2E_WORK/pids" ]; then
    while read -r pid name; do
      [ -n "$pid" ] && _e2e_stop_pid "$pid" "$name" 15
    done < <(tac "$E2E_WORK/pids")
  fi
  for pid in $(_e2e_stray_pids); do
    e2e_log "stopping leftover pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | head -c 200)"
    _e2e_stop_pid "$pid" "leftover" 5
  done
  # unmount whatever the daemons left mounted under the scratch dir, deepest first
  local m
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$E2E_WORK/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || e2e_log "could not unmount $m"
  done
  if [ -f "$E2E_WORK/extra-dirs" ]; then
    while read -r m; do
      [ -d "$m" ] && rm -rf --one-file-system "$m"
    done <"$E2E_WORK/extra-dirs"
  fi
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    e2e_log "keeping scratch dir $E2E_WORK"
  else
    if [ "${_E2E_FAILS:-0}" -gt 0 ] && [ -d "$E2E_WORK/logs" ]; then
      local keep
      keep=$(mktemp -d "${E2E_TMPDIR:-/tmp}/wharf-e2e-$E2E_SUITE-logs.XXXXXX")
      cp -a "$E2E_WORK/logs/." "$keep/"
      e2e_log "logs of the failed run kept in $keep"
    fi
    rm -rf --one-file-system "$E2E_WORK" 2>/dev/null || e2e_log "could not fully remove $E2E_WORK"
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- suite / test bookkeeping

# e2e_make_work SUITE: make the scratch dir E2E_WORK (all lower case: podman names images
# pulled from an oci: layout after its path, and references must be lower case).
e2e_make_work() {
  local base=${E2E_TMPDIR:-/tmp}
  E2E_WORK="$base/wharf-e2e-$1-$$-$RANDOM"
  mkdir -m 700 "$E2E_WORK" || e2e_die "cannot make $E2E_WORK"
  mkdir -p "$E2E_WORK/logs"
  : >"$E2E_WORK/pids"
}

# e2e_begin SUITE [REGISTRY_ADDR]
e2e_begin() {
  E2E_SUITE=$1
  REGISTRY=${2:-${REGISTRY_ADDR:-}}
  [ -n "$REGISTRY" ] || e2e_die "usage: $0 REGISTRY_ADDR (e.g. 127.0.0.1:5000), or set REGISTRY_ADDR"
  [ "$(id -u)" = 0 ] || e2e_die "the end-to-end tests run as root"
  export REGISTRY
  E2E_NS=${E2E_NS:-e2e/$(date +%Y%m%d%H%M%S)-$$}
  e2e_make_work "$E2E_SUITE"
  _E2E_PASSES=0 _E2E_FAILS=0 _E2E_T0=$EPOCHREALTIME
  trap _e2e_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  e2e_log "suite $E2E_SUITE: registry $REGISTRY, namespace $E2E_NS, scratch $E2E_WORK"
  if ! curl -s -o /dev/null -m 5 "http://$REGISTRY/v2/"; then
    e2e_die "no registry answers at http://$REGISTRY/v2/"
  fi
}

# e2e_record PASS|FAIL NAME SECONDS
e2e_record() {
  printf '%s %-44s %6ss\n' "$1" "$E2E_SUITE/$2" "$3"
  if [ -n "${E2E_RESULTS:-}" ]; then
    printf '%s\t%s/%s\t%s\n' "$1" "$E2E_SUITE" "$2" "$3" >>"$E2E_RESULTS"
  fi
  if [ "$1" = PASS ]; then _E2E_PASSES=$((_E2E_PASSES + 1)); else _E2E_FAILS=$((_E2E_FAILS + 1)); fi
}

# ERR trap inside a test: the failing command and where it was called from.
_e2e_err() {
  local rc=$1 i
  printf '!! failed (exit %s): %s  [%s:%s in %s]\n' "$rc" "$BASH_COMMAND" \
    "${BASH_SOURCE[1]##*/}" "${BASH_LINENO[0]}" "${FUNCNAME[1]:-main}" >&2
  for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
    [ "${FUNCNAME[i + 1]}" = e2e_test ] && break
    printf '   called from %s:%s in %s\n' "${BASH_SOURCE[i + 1]##*/}" "${BASH_LINENO[i]}" "${FUNCNAME[i + 1]}" >&2
  done
}

# e2e_test NAME FUNCTION [ARGS]: run FUNCTION in a subshell with errexit; any failing
# command or assertion fails the test. Its output goes to logs/NAME.log and is shown
# (last 60 lines) when it fails.
e2e_test() {
  local name=$1; shift
  local log="$E2E_WORK/logs/${name//\//_}.log" t0=$EPOCHREALTIME rc secs
  set +e
  if [ "${E2E_VERBOSE:-0}" = 1 ]; then
    (
      set -eE -o pipefail
      trap '_e2e_err $?' ERR
      "$@"
    ) 2>&1 | tee "$log" >&2
    rc=${PIPESTATUS[0]}
  else
    (
      set -eE -o pipefail
      trap '_e2e_err $?' ERR
      "$@"
    ) >"$log" 2>&1
    rc=$?
  fi
  set -e
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  if [ "$rc" = 0 ]; then
    e2e_record PASS "$name" "$secs"
  else
    e2e_record FAIL "$name" "$secs"
    if [ "${E2E_VERBOSE:-0}" != 1 ]; then
      echo "---- $E2E_SUITE/$name failed (exit $rc); last lines of its log:"
      tail -n 60 "$log" | sed 's/^/    | /'
      echo "----"
    fi
  fi
  return 0
}

# e2e_step NAME FUNCTION [ARGS]: like e2e_test, but runs FUNCTION in the current shell
# (so it can start daemons and export variables) and without errexit: FUNCTION must
# return non-zero itself on failure. Returns FUNCTION's status.
e2e_step() {
  local name=$1; shift
  local log="$E2E_WORK/logs/${name//\//_}.log" t0=$EPOCHREALTIME rc secs
  set +e
  "$@" >"$log" 2>&1
  rc=$?
  set -e
  [ "${E2E_VERBOSE:-0}" = 1 ] && cat "$log" >&2
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  if [ "$rc" = 0 ]; then
    e2e_record PASS "$name" "$secs"
  else
    e2e_record FAIL "$name" "$secs"
    echo "---- $E2E_SUITE/$name failed (exit $rc); last lines of its log:"
    tail -n 60 "$log" | sed 's/^/    | /'
    echo "----"
  fi
  return "$rc"
}

# e2e_end: summary line for the suite; exit status 0 only if every test passed.
e2e_end() {
  local secs
  secs=$(awk -v a="$_E2E_T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  echo "$E2E_SUITE: $_E2E_PASSES passed, $_E2E_FAILS failed (${secs}s)"
  [ "$_E2E_FAILS" -eq 0 ]
  exit $?
}

# ---------------------------------------------------------------- test images (offline)

_E2E_TARFLAGS=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)

# _e2e_add_layer LAYOUT SRCDIR NAME: tar+gzip SRCDIR into a blob; sets
#   L_DIGEST (sha256:..) L_SIZE L_DIFFID (sha256:.. of the uncompressed tar)
_e2e_add_layer() {
  local out=$1 src=$2 name=$3 tmp
  tmp="$out/.build"
  tar -C "$src" "${_E2E_TARFLAGS[@]}" -cf "$tmp/$name.tar" .
  L_DIFFID=$(e2e_digest_of "$tmp/$name.tar")
  gzip -n -6 -c "$tmp/$name.tar" >"$tmp/$name.tar.gz"
  L_DIGEST=$(e2e_digest_of "$tmp/$name.tar.gz")
  L_SIZE=$(stat -c%s "$tmp/$name.tar.gz")
  mv "$tmp/$name.tar.gz" "$out/blobs/sha256/${L_DIGEST#sha256:}"
  rm -f "$tmp/$name.tar"
}

# _e2e_add_blob LAYOUT FILE: copies FILE into the layout; sets B_DIGEST B_SIZE
_e2e_add_blob() {
  B_DIGEST=$(e2e_digest_of "$2")
  B_SIZE=$(stat -c%s "$2")
  cp "$2" "$1/blobs/sha256/${B_DIGEST#sha256:}"
}

# e2e_build_images OUTDIR
# Builds, with tar + gzip + sha256sum only, an OCI image layout at OUTDIR with tags
#   amd64  runnable linux/amd64 image, 3 layers:
#            1: static busybox (/bin/busybox, /bin/sh), /etc/hello.txt=v1, /dir/keep,
#               /dir/sub/file1, /e2e/check.sh (the entrypoint)
#            2: /etc/hello.txt=v2, whiteout /dir/.wh.keep, opaque whiteout
#               /dir/sub/.wh..wh..opq, /dir/sub/file2
#            3: /data/rand.bin (random, so every build is new), a hardlink and a symlink,
#               /e2e/id (this build's id)
#          Its entrypoint checks that the layers were applied (whiteouts honoured) and
#          prints "WHARF-E2E-OK <build id> amd64"; anything else prints WHARF-E2E-BAD.
#   arm64  linux/arm64/v8 image (not runnable here): layer 2 above (shared blob) + its own
#   multi  OCI image index with the two above (platforms linux/amd64, linux/arm64/v8)
# and sets (also written to OUTDIR/images.env):
#   IMG_ID IMG_AMD64 IMG_ARM64 IMG_INDEX (manifest digests), IMG_AMD64_CONFIG,
#   IMG_AMD64_LAYERS IMG_ARM64_LAYERS (space-separated digests), IMG_AMD64_DIFFIDS
e2e_build_images() {
  local out=$1 w
  rm -rf "$out"
  mkdir -p "$out/blobs/sha256" "$out/.build"
  w="$out/.build"
  [ -x /bin/busybox ] || { echo "/bin/busybox missing: run tests/e2e/install-deps.sh (busybox-static)" >&2; return 1; }
  # ldd (libc-bin, on every Debian) exits 1 for a static binary: keep its status out of pipefail
  { ldd /bin/busybox 2>&1 || true; } | grep -q 'not a dynamic' ||
    { echo "/bin/busybox is not static: install busybox-static" >&2; return 1; }

  IMG_ID="$(date +%s)-$$-$RANDOM"

  # layer 1
  mkdir -p "$w/l1/bin" "$w/l1/etc" "$w/l1/dir/sub" "$w/l1/e2e" "$w/l1/tmp"
  cp /bin/busybox "$w/l1/bin/busybox"
  ln -s busybox "$w/l1/bin/sh"
  echo hello-v1 >"$w/l1/etc/hello.txt"
  echo keep >"$w/l1/dir/keep"
  echo old >"$w/l1/dir/sub/file1"
  chmod 1777 "$w/l1/tmp"
  cat >"$w/l1/e2e/check.sh" <<'CHECK'
bad() { echo "WHARF-E2E-BAD: $*"; exit 1; }
[ "$(cat /etc/hello.txt)" = hello-v2 ] || bad "layer 2 did not replace /etc/hello.txt"
[ ! -e /dir/keep ] || bad "whiteout /dir/.wh.keep not applied"
[ ! -e /dir/sub/file1 ] || bad "opaque whiteout of /dir/sub not applied"
[ "$(cat /dir/sub/file2)" = new ] || bad "/dir/sub/file2 missing"
[ "$(readlink /data/link)" = ../etc/hello.txt ] || bad "symlink /data/link wrong"
[ "$(busybox stat -c %i /data/rand.bin)" = "$(busybox stat -c %i /data/rand-hardlink.bin)" ] || bad "hardlink not preserved"
[ "$(busybox sha256sum /data/rand.bin | busybox cut -c1-64)" = "$(cat /data/rand.sha256)" ] || bad "/data/rand.bin corrupted"
echo "WHARF-E2E-OK $(cat /e2e/id) $(busybox uname -m)"
CHECK
  # layer 2
  mkdir -p "$w/l2/etc" "$w/l2/dir/sub"
  echo hello-v2 >"$w/l2/etc/hello.txt"
  : >"$w/l2/dir/.wh.keep"
  : >"$w/l2/dir/sub/.wh..wh..opq"
  echo new >"$w/l2/dir/sub/file2"
  # layer 3
  mkdir -p "$w/l3/data" "$w/l3/e2e"
  head -c 300000 /dev/urandom >"$w/l3/data/rand.bin"
  sha256sum <"$w/l3/data/rand.bin" | cut -c1-64 >"$w/l3/data/rand.sha256"
  ln "$w/l3/data/rand.bin" "$w/l3/data/rand-hardlink.bin"
  ln -s ../etc/hello.txt "$w/l3/data/link"
  echo "$IMG_ID" >"$w/l3/e2e/id"
  # arm64's own layer
  mkdir -p "$w/a1/etc"
  echo "arm64 $IMG_ID" >"$w/a1/etc/arch.txt"

  local ld=() ls=() lf=() n
  for n in l1 l2 l3 a1; do
    _e2e_add_layer "$out" "$w/$n" "$n"
    ld+=("$L_DIGEST"); ls+=("$L_SIZE"); lf+=("$L_DIFFID")
  done

  local created=1970-01-01T00:00:00Z
  # amd64 config + manifest
  printf '{"created":"%s","architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sh","/e2e/check.sh"],"Labels":{"org.wharf.e2e.id":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s","%s","%s"]},"history":[{"created":"%s","created_by":"e2e layer 1: busybox"},{"created":"%s","created_by":"e2e layer 2: whiteouts"},{"created":"%s","created_by":"e2e layer 3: data"}]}' \
    "$created" "$IMG_ID" "${lf[0]}" "${lf[1]}" "${lf[2]}" "$created" "$created" "$created" >"$w/cfg-amd64.json"
  _e2e_add_blob "$out" "$w/cfg-amd64.json"
  IMG_AMD64_CONFIG=$B_DIGEST
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s},{"mediaType":"%s","digest":"%s","size":%s},{"mediaType":"%s","digest":"%s","size":%s}],"annotations":{"org.wharf.e2e.id":"%s"}}' \
    "$E2E_OCI_MANIFEST" "$E2E_OCI_CONFIG" "$B_DIGEST" "$B_SIZE" \
    "$E2E_OCI_LAYER_GZ" "${ld[0]}" "${ls[0]}" "$E2E_OCI_LAYER_GZ" "${ld[1]}" "${ls[1]}" "$E2E_OCI_LAYER_GZ" "${ld[2]}" "${ls[2]}" \
    "$IMG_ID" >"$w/man-amd64.json"
  _e2e_add_blob "$out" "$w/man-amd64.json"
  IMG_AMD64=$B_DIGEST; local amd64_size=$B_SIZE
  IMG_AMD64_LAYERS="${ld[0]} ${ld[1]} ${ld[2]}"
  IMG_AMD64_DIFFIDS="${lf[0]} ${lf[1]} ${lf[2]}"

  # arm64 config + manifest (shares layer 2's blob with amd64)
  printf '{"created":"%s","architecture":"arm64","variant":"v8","os":"linux","config":{"Env":["PATH=/bin","A=1"],"Cmd":["/bin/sh"],"Entrypoint":["/bin/env"],"WorkingDir":"/srv","User":"1000:1000","ExposedPorts":{"8080/tcp":{}},"Volumes":{"/data":{}},"Labels":{"org.wharf.e2e":"arm64"},"StopSignal":"SIGINT","Healthcheck":{"Test":["CMD","true"],"Interval":30000000000}},"rootfs":{"type":"layers","diff_ids":["%s","%s"]},"history":[{"created":"%s","created_by":"e2e layer 2: whiteouts"},{"created":"%s","created_by":"e2e arm64 layer"}]}' \
    "$created" "${lf[1]}" "${lf[3]}" "$created" "$created" >"$w/cfg-arm64.json"
  _e2e_add_blob "$out" "$w/cfg-arm64.json"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s},{"mediaType":"%s","digest":"%s","size":%s}]}' \
    "$E2E_OCI_MANIFEST" "$E2E_OCI_CONFIG" "$B_DIGEST" "$B_SIZE" \
    "$E2E_OCI_LAYER_GZ" "${ld[1]}" "${ls[1]}" "$E2E_OCI_LAYER_GZ" "${ld[3]}" "${ls[3]}" >"$w/man-arm64.json"
  _e2e_add_blob "$out" "$w/man-arm64.json"
  IMG_ARM64=$B_DIGEST; local arm64_size=$B_SIZE
  IMG_ARM64_LAYERS="${ld[1]} ${ld[3]}"

  # the multi-platform index
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}],"annotations":{"org.wharf.e2e.id":"%s"}}' \
    "$E2E_OCI_INDEX" "$E2E_OCI_MANIFEST" "$IMG_AMD64" "$amd64_size" "$E2E_OCI_MANIFEST" "$IMG_ARM64" "$arm64_size" "$IMG_ID" >"$w/index.json"
  _e2e_add_blob "$out" "$w/index.json"
  IMG_INDEX=$B_DIGEST; local index_size=$B_SIZE

  printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"amd64"}},{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"arm64"}},{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}' \
    "$E2E_OCI_INDEX" "$E2E_OCI_MANIFEST" "$IMG_AMD64" "$amd64_size" "$E2E_OCI_MANIFEST" "$IMG_ARM64" "$arm64_size" \
    "$E2E_OCI_INDEX" "$IMG_INDEX" "$index_size" >"$out/index.json"
  rm -rf "$w"

  cat >"$out/images.env" <<ENV
IMG_ID='$IMG_ID'
IMG_AMD64='$IMG_AMD64'
IMG_ARM64='$IMG_ARM64'
IMG_INDEX='$IMG_INDEX'
IMG_AMD64_CONFIG='$IMG_AMD64_CONFIG'
IMG_AMD64_LAYERS='$IMG_AMD64_LAYERS'
IMG_ARM64_LAYERS='$IMG_ARM64_LAYERS'
IMG_AMD64_DIFFIDS='$IMG_AMD64_DIFFIDS'
ENV
  e2e_log "built test images in $out: amd64 $IMG_AMD64, arm64 $IMG_ARM64, index $IMG_INDEX (id $IMG_ID)"
}

# e2e_blob LAYOUT DIGEST: path of a blob in an OCI layout
e2e_blob() { printf '%s/blobs/%s/%s' "$1" "${2%%:*}" "${2#*:}"; }

# e2e_docker_loadable_tar LAYOUT IMAGE_REF OUT.tar
# A tarball of the amd64 image that `docker load` accepts: an OCI layout (index.json
# naming IMAGE_REF) plus the legacy manifest.json, as `docker save` writes since 25.
e2e_docker_loadable_tar() {
  local layout=$1 ref=$2 out=$3 t cfg layers l
  t=$(mktemp -d "$E2E_WORK/dockertar.XXXXXX")
  mkdir -p "$t/blobs/sha256"
  cfg=$(jq -r .config.digest "$(e2e_blob "$layout" "$IMG_AMD64")")
  for l in "$IMG_AMD64" "$cfg" $IMG_AMD64_LAYERS; do
    cp "$(e2e_blob "$layout" "$l")" "$t/blobs/sha256/${l#sha256:}"
  done
  cp "$layout/oci-layout" "$t/oci-layout"
  jq -n --arg d "$IMG_AMD64" --argjson s "$(stat -c%s "$(e2e_blob "$layout" "$IMG_AMD64")")" --arg r "$ref" \
    --arg mt "$E2E_OCI_MANIFEST" --arg it "$E2E_OCI_INDEX" \
    '{schemaVersion:2,mediaType:$it,manifests:[{mediaType:$mt,digest:$d,size:$s,annotations:{"io.containerd.image.name":$r,"org.opencontainers.image.ref.name":($r|sub(".*:";""))}}]}' \
    >"$t/index.json"
  layers=$(for l in $IMG_AMD64_LAYERS; do printf '"blobs/sha256/%s",' "${l#sha256:}"; done)
  printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":[%s]}]' "${cfg#sha256:}" "$ref" "${layers%,}" >"$t/manifest.json"
  tar -C "$t" "${_E2E_TARFLAGS[@]}" -cf "$out" .
  rm -rf "$t"
}

# ---------------------------------------------------------------- client configuration

# e2e_policy_json: path of a signature policy accepting anything (our own copy).
e2e_policy_json() {
  local p="$E2E_WORK/policy.json"
  [ -f "$p" ] || printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$p"
  printf '%s' "$p"
}

# skopeo with our policy; plain HTTP is chosen per command with --*-tls-verify=false
e2e_skopeo() { x skopeo --policy "$(e2e_policy_json)" "$@"; }

# e2e_podman_setup DIR: write storage.conf, registries.conf, containers.conf for a
# podman/buildah confined to DIR, and export the variables pointing at them.
e2e_podman_setup() {
  local d=$1 runroot=$1/run
  # podman's `container cleanup` (run by conmon when a container exits) refuses a runroot
  # longer than 50 characters; podman run then waits 20 s for a cleanup that never comes.
  if [ ${#runroot} -gt 50 ]; then
    runroot=$(mktemp -d /tmp/e2e-run.XXXXXX)
    echo "$runroot" >>"$E2E_WORK/extra-dirs"
  fi
  mkdir -p "$d/root" "$runroot" "$d/tmp" "$d/etc"
  cat >"$d/etc/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/root"
runroot = "$runroot"
EOF
  cat >"$d/etc/registries.conf" <<EOF
unqualified-search-registries = []
[[registry]]
location = "$REGISTRY"
insecure = true
EOF
  cat >"$d/etc/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$d/tmp"
EOF
  export CONTAINERS_STORAGE_CONF="$d/etc/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$d/etc/registries.conf"
  export CONTAINERS_CONF="$d/etc/containers.conf"
  [ -f "$d/etc/auth.json" ] || echo '{}' >"$d/etc/auth.json"
  export REGISTRY_AUTH_FILE="$d/etc/auth.json"
  export TMPDIR="$d/tmp"
}

# e2e_docker_start DIR: start containerd and dockerd confined to DIR (unix sockets,
# no networking, no iptables), wait until `docker info` answers, and export
# DOCKER_HOST, DOCKER_CONFIG and CONTAINERD_ADDRESS.
e2e_docker_start() {
  local d=$1
  mkdir -p "$d/containerd/root" "$d/containerd/state" "$d/root" "$d/exec" "$d/cfg"
  cat >"$d/containerd/config.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  e2e_daemon_start containerd containerd --config "$d/containerd/config.toml"
  e2e_wait_for 30 "containerd socket" ctr --address "$d/containerd.sock" version ||
    { tail -30 "$E2E_WORK/logs/daemon-containerd.log" >&2; return 1; }
  e2e_daemon_start dockerd dockerd \
    --data-root "$d/root" --exec-root "$d/exec" \
    --host "unix://$d/docker.sock" --pidfile "$d/docker.pid" \
    --containerd "$d/containerd.sock" \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    --storage-driver overlay2
  export DOCKER_HOST="unix://$d/docker.sock" DOCKER_CONFIG="$d/cfg" CONTAINERD_ADDRESS="$d/containerd.sock"
  e2e_wait_for 60 "dockerd" docker info ||
    { tail -40 "$E2E_WORK/logs/daemon-dockerd.log" >&2; return 1; }
  docker version --format 'docker client {{.Client.Version}}, engine {{.Server.Version}}' >&2
}

e2e_docker_stop() {
  e2e_daemon_stop dockerd
  e2e_daemon_stop containerd
}

# ---------------------------------------------------------------- the reference registry

# e2e_start_distribution DIR [PORT]: start Debian's docker-registry (CNCF distribution
# 2.8) on 127.0.0.1 with filesystem storage under DIR and delete enabled.
# Sets DIST_ADDR. The caller must have done e2e_begin or set E2E_WORK itself.
e2e_start_distribution() {
  local d=$1 port=${2:-$(e2e_free_port)}
  mkdir -p "$d/data"
  cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  e2e_daemon_start distribution docker-registry serve "$d/config.yml"
  DIST_ADDR="127.0.0.1:$port"
  e2e_wait_for 20 "docker-registry on $DIST_ADDR" curl -sf "http://$DIST_ADDR/v2/" ||
    { tail -20 "$E2E_WORK/logs/daemon-distribution.log" >&2; return 1; }
}
