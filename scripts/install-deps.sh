#!/usr/bin/env bash
# Installs wharf's Debian packages. Idempotent and quick when everything is
# present (one dpkg-query). Usage: scripts/install-deps.sh [build|test]
#   build: compiler, CMake and the libraries wharf links against
#   test:  build + the real clients and servers the test suite drives
set -euo pipefail
profile=${1:-build}

BUILD_PKGS=(build-essential cmake pkg-config git ca-certificates curl
  libboost1.81-dev libssl-dev libsqlite3-dev nlohmann-json3-dev libyaml-cpp-dev
  libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev libisal-dev libzstd-dev zlib1g-dev
  libsodium-dev libjwt-dev libpq-dev libcurl4-openssl-dev libpugixml-dev)
TEST_PKGS=(postgresql-15 ceph-mon ceph-osd radosgw python3 python3-jwt python3-cryptography openssl jq clang libclang-rt-14-dev zstd attr skopeo umoci libarchive-tools docker-registry wrk nginx-light
  podman buildah runc docker.io busybox-static uidmap iproute2 procps chromium)

pkgs=("${BUILD_PKGS[@]}")
[ "$profile" = test ] && pkgs+=("${TEST_PKGS[@]}")
# The UI tests run playwright-core (npm) under Node.js; take Debian's node and
# npm only when no node is installed (a NodeSource node brings its own npm).
[ "$profile" = test ] && ! command -v node >/dev/null && pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
