#!/bin/bash
# Start Debian's docker-registry 2.8 (CNCF distribution, the reference implementation)
# on 127.0.0.1 with a scratch filesystem store and delete enabled, run the whole
# end-to-end suite against it (tests/e2e/run.sh), stop it by PID.
# Usage: tests/e2e/run-reference.sh [run.sh options]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
E2E_SUITE=reference
e2e_make_work reference
trap _e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
command -v docker-registry >/dev/null || e2e_die "docker-registry not installed (apt-get install docker-registry)"
e2e_start_distribution "$E2E_WORK/registry"
e2e_log "docker-registry $(docker-registry --version | awk '{print $3}') listening on $DIST_ADDR"
set +e
"$E2E_DIR/run.sh" "$DIST_ADDR" "$@"
rc=$?
set -e
[ "$rc" = 0 ] || { echo "---- last lines of docker-registry's log:"; tail -n 20 "$E2E_WORK/logs/daemon-distribution.log"; _E2E_FAILS=1; }
exit "$rc"
