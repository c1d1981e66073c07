#!/usr/bin/env bash
# Builds wharf and runs it on its embedded default (SQLite + filesystem under
# ./wharf-data), listening on 127.0.0.1:5000 unless WHARF_LISTEN says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
listen=${WHARF_LISTEN:-127.0.0.1:5000}
data=${WHARF_DATA_DIR:-./wharf-data}
echo "==> wharf on http://$listen  (data in $data; keys in \${WHARF_KEY_DIR:-~/.config/wharf})"
echo "==> log in as superuser 'admin': its password is printed below on the first start"
echo "    (or set WHARF_ADMIN_PASSWORD before the first start; reset it later with"
echo "     echo NEWPASS | ./build/wharf user passwd admin --password-stdin --data-dir $data)"
echo "      docker login $listen -u admin"
echo "      skopeo copy --dest-creds admin:PASS --dest-tls-verify=false oci:DIR:tag docker://$listen/admin/repo:tag"
echo "      curl -fL -u admin:PASS http://$listen/c1/squash/admin/repo/tag | docker load"
exec ./build/wharf serve --listen "$listen" --data-dir "$data"
