#!/usr/bin/env bash
# The developer entry point: installs missing Debian packages, configures and
# builds with CMake, then runs the main job, the tests, a sanitizer build or
# the benchmarks. Used by the README's quick start and by .ci/run.
#   scripts/dev.sh run     build, start the daemon with configs/luad.toml in the
#                          foreground and submit examples/hello.lua to it
#   scripts/dev.sh test    build (warnings are errors) and run every test
#   scripts/dev.sh asan    tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/dev.sh tsan    tests under ThreadSanitizer
#   scripts/dev.sh fuzz    the libFuzzer targets in fuzz/ (clang-14, ASan+UBSan),
#                          each for FUZZ_SECONDS (default 30), as many at once as
#                          there are cores; fails on any crash
#   scripts/dev.sh bench   Release build, then luad_bench (with lua5.4, its cpu_peer)
#   scripts/dev.sh container   the image built with podman from the Dockerfile and
#                          run as a user would (scripts/container-test.sh)
#   scripts/dev.sh deps [PKG...]   only install what is missing of the build
#                          packages and PKG... (the Dockerfile and the container test)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ cmake make pkg-config liblua5.4-dev libboost1.81-dev libspdlog-dev
          libcli11-dev doctest-dev libssl-dev libsqlite3-dev libtomlplusplus-dev libpq-dev ca-certificates
          lua-check)
# Only the tests need these: the metrics tests run the real promtool and a
# real prometheus server; tests/postgres_server.* runs a real PostgreSQL 15
# (the image's build stage, `deps`, goes without).
TEST_PACKAGES=(prometheus postgresql-15)
# Only the fuzz step needs these (clang-14 and its libFuzzer runtime).
FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)
# Only the bench step needs these: cpu_peer runs the stock interpreter beside luad.
BENCH_PACKAGES=(lua5.4)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "# installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# What `run` shows once the daemon answers on the default config's socket.
demo() {
  local luad=./build/luad sock=configs/run/luad.sock i
  for i in $(seq 100); do
    "$luad" ping --socket "$sock" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$luad" ping --socket "$sock" >/dev/null 2>&1 || return 0  # serve failed: it said why
  echo "# luad serves on $sock (Ctrl-C stops it). From another shell, try:"
  echo "#   ./build/luad submit --wait examples/hello.lua you"
  echo "#   ./build/luad ps; ./build/luad logs PID; ./build/luad workflows; ./build/luad stats"
  echo "\$ luad submit --wait examples/hello.lua you"
  "$luad" submit --socket "$sock" --wait examples/hello.lua you || true
  echo "\$ luad ps"
  "$luad" ps --socket "$sock" || true
  echo "\$ luad workflows"
  "$luad" workflows --socket "$sock" || true
}

# TARGETS (default: all) limits what is built: the sanitizer builds need only
# luad and its tests, not the benchmarks.
build() {  # build DIR [cmake args...]
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  # shellcheck disable=SC2086  # TARGETS is a list of words
  cmake --build "$dir" -j"$JOBS" ${TARGETS:+--target $TARGETS}
}

# Each doctest case is its own CTest test (a failure names it). The cases of
# doctest's suite "serial", whose wall-clock bounds (timer lateness,
# preemption, kill latency) are honest only unshared, run alone after the
# others (label "serial", set by cmake/doctest_add_tests.cmake). The others run
# two per core (CTEST_PARALLEL_LEVEL overrides; cases share no paths or
# sockets): half their time is waiting (daemons starting, leases, PostgreSQL),
# and the test step's tests took 113 s so, against 133 s two at a time with
# the serial cases among the others (5 Dec).
run_tests() {  # run_tests DIR
  local rc=0
  ctest --test-dir "$1" --output-on-failure --timeout 1200 -LE serial \
    -j"${CTEST_PARALLEL_LEVEL:-$((2 * JOBS))}" || rc=1
  ctest --test-dir "$1" --output-on-failure --timeout 1200 -L serial || rc=1
  return "$rc"
}

# The optimised build with debug line tables (-g1): backtraces and sanitizer
# reports still name file and line, and it compiles ~30 % faster than -g.
# Configure a build folder of your own for full debug information.
OPTIMISED=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")

# Each fuzz/NAME.cpp for FUZZ_SECONDS, from a copy of its seeds in
# fuzz/corpus/NAME (new inputs go to build-fuzz/corpus/NAME, the repository's
# seeds stay as they are), JOBS targets at a time (each is one thread). A crash
# leaves build-fuzz/crash-NAME-* and fails.
fuzz_one() {  # fuzz_one NAME SECONDS
  local name=$1 secs=$2 log="build-fuzz/fuzz_$1.log"
  mkdir -p "build-fuzz/corpus/$name"
  echo "# fuzz_$name for ${secs}s (log: $log)" >&2
  if ! ./build-fuzz/"fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$name-" \
      "build-fuzz/corpus/$name" "fuzz/corpus/$name" >"$log" 2>&1; then
    tail -60 "$log" >&2
    echo "# fuzz_$name failed: the input is build-fuzz/crash-$name-*" >&2
    return 1
  fi
  echo "# fuzz_$name: $(grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | tr '\n' ' ')" >&2
}

run_fuzzers() {
  local secs=${FUZZ_SECONDS:-30} f name
  rm -f build-fuzz/failed-*
  for f in fuzz/*.cpp; do
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
    name=$(basename "$f" .cpp)
    (fuzz_one "$name" "$secs" || touch "build-fuzz/failed-$name") &
  done
  wait
  ! compgen -G "build-fuzz/failed-*" >/dev/null
}

case "${1:-}" in
  deps)
    shift
    PACKAGES+=("$@")
    deps
    ;;
  run)
    deps
    build build "${OPTIMISED[@]}" -DLUAD_WERROR=ON
    demo &  # talks to the daemon once it answers
    exec ./build/luad serve --config configs/luad.toml
    ;;
  test)
    PACKAGES+=("${TEST_PACKAGES[@]}")
    deps
    build build "${OPTIMISED[@]}" -DLUAD_WERROR=ON
    run_tests build
    ;;
  asan)
    PACKAGES+=("${TEST_PACKAGES[@]}")
    deps
    # Debug keeps the assertions. -O0: UBSan's checks make -O1 compile ~1.8
    # times as long; -O1 ran the tests faster (254 against 281 s, two at a
    # time) but its build took ~100 s more (5 Dec). -g1 (line tables: reports
    # still name function, file and line) compiles a fifth faster than -g.
    # One CTest test per test file: a start of this build costs ~0.3 s.
    TARGETS="luad luad_tests" build build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -O0" \
      -DLUAD_SANITIZE=address -DLUAD_CTEST_PER_FILE=ON
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_tests build-asan
    ;;
  tsan)
    PACKAGES+=("${TEST_PACKAGES[@]}")
    deps
    TARGETS="luad luad_tests" build build-tsan "${OPTIMISED[@]}" -DLUAD_SANITIZE=thread
    # One case per core: two per core under TSan took a cluster case past its
    # 60 s wait for PostgreSQL's restart (5 Dec).
    CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$JOBS} TSAN_OPTIONS=halt_on_error=1 run_tests build-tsan
    ;;
  fuzz)
    PACKAGES+=("${FUZZ_PACKAGES[@]}")
    deps
    cmake -S . -B build-fuzz "${OPTIMISED[@]}" -DLUAD_FUZZ=ON \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
    cmake --build build-fuzz -j"$JOBS" --target fuzzers
    run_fuzzers
    ;;
  bench)
    PACKAGES+=("${BENCH_PACKAGES[@]}")
    deps
    build build-release -DCMAKE_BUILD_TYPE=Release
    shift
    ./build-release/luad_bench "$@"
    ;;
  container)
    exec bash scripts/container-test.sh
    ;;
  *)
    echo "usage: scripts/dev.sh run|test|asan|tsan|fuzz|bench|container|deps [args]" >&2
    exit 2
    ;;
esac
