#!/usr/bin/env bash
# The Dockerfile's build stage as a script, so the tests can run the same
# commands where no Docker engine runs: installs the Debian build packages
# (the list scripts/dev.sh uses), builds luad in Release and installs it with
# the container config and the example workflow under PREFIX, then checks the
# installed binary runs and accepts its config.
#   usage: scripts/container-build.sh PREFIX   (BUILD_DIR overrides build-container)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:?usage: container-build.sh PREFIX}
BUILD=${BUILD_DIR:-build-container}

bash scripts/dev.sh deps
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target luad
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null

"$PREFIX/bin/luad" --version
"$PREFIX/bin/luad" check "$PREFIX/etc/luad/luad.toml"
