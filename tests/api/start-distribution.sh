#!/usr/bin/env bash
# Start Debian's docker-registry 2.8 (CNCF distribution) as the reference
# server for the API suite:
#
#     tests/api/start-distribution.sh DIR PORT
#
# Writes DIR/config.yml (filesystem storage under DIR/data, deletes enabled,
# foreign-layer URLs allowed, listening on 127.0.0.1:PORT only), starts the registry in the background
# with its log in DIR/registry.log, writes its PID to DIR/pid and waits until
# GET /v2/ answers. Stop it with: kill "$(cat DIR/pid)".
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 DIR PORT" >&2
    exit 2
fi
dir=$1
port=$2
bin=${DOCKER_REGISTRY_BIN:-/usr/bin/docker-registry}

if [ ! -x "$bin" ]; then
    echo "$bin not found: apt-get install -y docker-registry" >&2
    exit 1
fi

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)

cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: wharf-api-suite-not-a-secret
# Accept foreign (non-distributable) layers as wharf does; by default
# distribution answers a manifest with a foreign layer with 500.
validation:
  manifests:
    urls:
      allow:
        - ^https?://
EOF

"$bin" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/pid"

for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "docker-registry exited; log follows" >&2
        cat "$dir/registry.log" >&2
        exit 1
    fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
        echo "docker-registry (pid $pid) listening on http://127.0.0.1:$port"
        exit 0
    fi
    sleep 0.1
done
echo "docker-registry did not answer on 127.0.0.1:$port within 10 s" >&2
kill "$pid" 2>/dev/null || true
exit 1
