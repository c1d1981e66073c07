#!/usr/bin/env bash
# Configures and builds wharf into build/ (Release with debug info).
# WHARF_WERROR=ON (the test command sets it): warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWHARF_WERROR="${WHARF_WERROR:-OFF}" >/dev/null
cmake --build build -j"$(nproc)"
