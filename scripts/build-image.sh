#!/usr/bin/env bash
# Builds wharf as an OCI image from scratch (buildah): the binary, the shared
# libraries it links (as ldd lists them, with the dynamic loader), the CA
# certificates (an https S3 endpoint or PostgreSQL over TLS) and an empty
# /tmp — no shell, no package manager. Entrypoint: wharf; the default
# command `serve --config /etc/wharf/wharf.yaml`.
#
# Usage: scripts/build-image.sh IMAGE_NAME [WHARF_BINARY]
#   e.g. scripts/build-image.sh localhost/wharf:dev      (binary: build/wharf)
# The image lands in the local containers storage (podman images); push it
# with `buildah push IMAGE docker://HOST/REPO:TAG`. Runs as root (buildah's
# rootful storage; `buildah unshare` for rootless).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/build-image.sh IMAGE_NAME [WHARF_BINARY]}
bin=${2:-build/wharf}
[ -x "$bin" ] || { echo "build-image.sh: no wharf binary at $bin (run scripts/build.sh)" >&2; exit 2; }
command -v buildah >/dev/null || { echo "build-image.sh: needs buildah (apt-get install buildah)" >&2; exit 2; }

root=$(mktemp -d /tmp/wharf-image.XXXXXX)
trap 'rm -rf "$root"' EXIT
install -D -m 755 "$bin" "$root/usr/local/bin/wharf"
strip --strip-debug "$root/usr/local/bin/wharf"  # the debug info is most of the binary's size
# Every library the binary loads, at the path the loader looks for it.
ldd "$bin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u | while read -r lib; do
  install -D -m 755 "$(readlink -f "$lib")" "$root$lib"  # the loader must be executable
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
printf 'wharf:x:65532:65532:wharf:/var/lib/wharf:/nonexistent\n' >"$root/etc/passwd"
printf 'wharf:x:65532:\n' >"$root/etc/group"
install -d -m 1777 "$root/tmp"
install -d -m 755 "$root/etc/wharf"
install -d -o 65532 -g 65532 -m 700 "$root/var/lib/wharf"

ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
buildah copy --quiet "$ctr" "$root" / >/dev/null
buildah config --entrypoint '["/usr/local/bin/wharf"]' --cmd 'serve --config /etc/wharf/wharf.yaml' \
  --workingdir /var/lib/wharf --env WHARF_KEY_DIR=/etc/wharf/keys --port 5000 \
  --label org.opencontainers.image.title=wharf \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" "$ctr"
buildah commit --quiet --format oci "$ctr" "$name" >/dev/null
echo "built $name ($(du -sh "$root" | cut -f1) unpacked: wharf and $(find "$root" -name '*.so*' | wc -l) libraries)"
