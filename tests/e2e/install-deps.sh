#!/bin/bash
# Install the real registry clients the end-to-end tests use, from Debian packages.
# Idempotent and quick when everything is already present (no apt-get update then).
# Usage: tests/e2e/install-deps.sh        (as root, Debian 12)
set -euo pipefail

PKGS=(
  skopeo podman buildah runc        # containers/image clients + OCI runtime
  docker.io                         # dockerd, containerd, ctr, docker CLI
  umoci                             # OCI layout unpacker (reference rootfs)
  busybox-static                    # static /bin/busybox for the runnable test image
  jq curl                           # JSON and HTTP in the scripts
  tar gzip coreutils                # image building: tar + gzip + sha256sum
  libarchive-tools                  # bsdtar (inspecting archives)
  uidmap iptables                   # podman/docker expect these on PATH
  docker-registry                   # CNCF distribution 2.8: the reference (run-reference.sh)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the lists first (fast path); update only if that fails.
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "install-deps: done"
