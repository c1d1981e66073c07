#!/usr/bin/env bash
# One writer per upload session across replicas: two wharf processes on the
# same PostgreSQL schema and S3 bucket (a replica each, no load balancer: the
# test picks the replica). While a PATCH streams into replica A, a PATCH of
# the same session on replica B is refused with BLOB_UPLOAD_INVALID (B's
# status GET still answers). Replica A is then killed with -9 in the middle of
# its PATCH: at once, replica B takes the session over from its status
# (Range: the bytes A had stored), the push completes there and the blob's
# digest is right. Needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT
# (scripts/test.sh's pg-s3 stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
WHARF_BIN=${WHARF_BIN:-build/wharf}
[ -n "${WHARF_TEST_PG_DSN:-}" ] && [ -n "${WHARF_TEST_S3_ENDPOINT:-}" ] || fail "needs WHARF_TEST_PG_DSN and WHARF_TEST_S3_ENDPOINT"
make_work upload-lock

# The shared backends: one schema and one bucket for both replicas.
cfg=$(WHARF_TEST_BACKEND=pg-s3 backend_config "$work/shared")
pa=$(free_port); pb=$(free_port)
start_wharf "$pa" "$work/a" "$work/a.log" --config "$cfg"; a_pid=$WHARF_PID; PIDS+=("$a_pid")
start_wharf "$pb" "$work/b" "$work/b.log" --config "$cfg"; PIDS+=("$WHARF_PID")
A=http://127.0.0.1:$pa B=http://127.0.0.1:$pb

head -c $((36 << 20)) /dev/urandom >"$work/blob"
digest=sha256:$(sha256sum <"$work/blob" | cut -d' ' -f1)
head -c $((20 << 20)) "$work/blob" >"$work/first"              # a 16 MiB part and a 4 MiB tail
tail -c +$(((20 << 20) + 1)) "$work/blob" >"$work/rest"          # 16 MiB
path=$(curl -sf -D - -o /dev/null -X POST "$A/v2/lock/repo/blobs/uploads/" | tr -d '\r' |
  awk -F': ' 'tolower($1)=="location"{print $2}' | sed -E 's|^https?://[^/]+||')
[ -n "$path" ] || fail "POST on replica A gave no Location"
patch() {  # patch BASE FILE OFFSET [curl args...]: prints the status
  local base=$1 file=$2 off=$3
  shift 3
  curl -s -o "$work/patch.out" -w '%{http_code}' -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $off-$((off + $(stat -c %s "$file") - 1))" --data-binary @"$file" "$@" "$base$path"
}
range_end() {  # the upload's status on BASE: the last byte its Range names (-1 when none)
  local r
  r=$(curl -sf -D - -o /dev/null "$1$path" | tr -d '\r' | awk -F': ' 'tolower($1)=="range"{print $2}')
  [ -n "$r" ] && echo "${r#*-}" || echo -1
}
code=$(patch "$A" "$work/first" 0)
[ "$code" = 202 ] || fail "the first PATCH on replica A: $code $(cat "$work/patch.out")"
[ "$(range_end "$B")" = $(((20 << 20) - 1)) ] || fail "replica B's status does not show the 20 MiB replica A stored"

# A PATCH that streams into replica A for ~8 s.
( curl -s -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' --limit-rate 2M \
    -H "Content-Range: $((20 << 20))-$(((36 << 20) - 1))" --data-binary @"$work/rest" "$A$path" || true ) & slow=$!
sleep 1.5
code=$(patch "$B" "$work/rest" $((20 << 20)))
[ "$code" = 400 ] && grep -q BLOB_UPLOAD_INVALID "$work/patch.out" ||
  fail "a PATCH on replica B while replica A writes the session: $code $(cat "$work/patch.out") (expected 400 BLOB_UPLOAD_INVALID)"
grep -q 'another request is writing' "$work/patch.out" || fail "the refusal does not say why: $(cat "$work/patch.out")"
[ "$(range_end "$B")" = $(((20 << 20) - 1)) ] || fail "replica B's status changed while A's PATCH was unfinished"
echo "PASS a second writer on another replica is refused (400 BLOB_UPLOAD_INVALID) while the first streams; its status still answers"

# Replica A dies in the middle of its PATCH; replica B takes over at once.
kill -0 "$slow" 2>/dev/null || fail "replica A's PATCH ended before the kill (the test proves nothing)"
kill -9 "$a_pid"; wait "$a_pid" 2>/dev/null || true
end=$(range_end "$B")
[ "$end" = $(((20 << 20) - 1)) ] || fail "after the kill replica B's status says the upload ends at $end"
tail -c +$((end + 2)) "$work/blob" >"$work/resume"
code=$(patch "$B" "$work/resume" $((end + 1)))
[ "$code" = 202 ] || fail "replica B refused to continue the session right after replica A died: $code $(cat "$work/patch.out")"
case $path in *\?*) sep='&' ;; *) sep='?' ;; esac
code=$(curl -s -o "$work/put.out" -w '%{http_code}' -X PUT "$B$path${sep}digest=$digest")
[ "$code" = 201 ] || fail "PUT ?digest= on replica B: $code $(cat "$work/put.out")"
got=sha256:$(curl -sf "$B/v2/lock/repo/blobs/$digest" | sha256sum | cut -d' ' -f1)
[ "$got" = "$digest" ] || fail "the blob pushed across the two replicas hashes to $got, not $digest"
wait "$slow" 2>/dev/null || true
echo "PASS replica A killed -9 mid-PATCH: replica B continued the session at once from its status (byte $((end + 1))), the blob is whole"
