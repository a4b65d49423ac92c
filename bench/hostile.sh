#!/usr/bin/env bash
# The hostile corpus as a measurement: a Release build, then the corpus runner
# (tests/hostile/corpus_test.cpp) once, printing what docs/security.md quotes:
# the canary's lateness (p50/p99/max, and the worst per script), kill
# latencies (p50/p99/max), the daemon's RSS peak and ping round trips.
#   bench/hostile.sh [BUILD_DIR]     (default build-release)
# Exits with the test's status: a failed bound shows as an ERROR line.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-release}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" --target luad luad_tests >/dev/null
"./$dir/luad_tests" -tc='hostile: the corpus*' 2>&1 |
  sed -n '/MESSAGE:\|ERROR:\|values:\|logged:\|^  corpus\|^  [a-z_]*\.lua:\|Status:/p'
exit "${PIPESTATUS[0]}"
