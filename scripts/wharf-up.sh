#!/usr/bin/env bash
# Builds wharf and runs it on its embedded default (SQLite + filesystem under
# ./wharf-data), listening on 127.0.0.1:5000 unless WHARF_LISTEN says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
listen=${WHARF_LISTEN:-127.0.0.1:5000}
data=${WHARF_DATA_DIR:-./wharf-data}
echo "==> wharf on http://$listen  (data in $data)"
echo "==> no accounts yet: the registry is open, no login needed. Try:"
echo "      skopeo copy --dest-tls-verify=false oci:DIR:tag docker://$listen/ns/repo:tag"
exec ./build/wharf serve --listen "$listen" --data-dir "$data"
