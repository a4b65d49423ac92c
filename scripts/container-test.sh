#!/usr/bin/env bash
# The container test: builds the image from the Dockerfile with podman on a
# debian:12 base it makes itself (debootstrap from the archive apt uses, cached
# between runs), runs it as a user would and checks what a user relies on.
# Each phase prints its duration; a failed check exits 1 and names it. Its
# containers, volume and folders go on exit; the base tarball (in LUAD_CACHE)
# and podman's layers and cache mounts stay, so the next run is shorter.
#   scripts/container-test.sh          (CI: scripts/dev.sh container; as root)
# Environment: LUAD the host's client (default ./build/luad, built if missing),
#   LUAD_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/luad), LUAD_IMAGE
#   (default localhost/luad:test), LUAD_IMAGE_MAX_MIB (default 120: a larger
#   image fails), DEBIAN_MIRROR (default: apt's, for bookworm).
set -eEuo pipefail
cd "$(dirname "$0")/.."

LUAD=${LUAD:-}                       # empty: ./build/luad, built if missing
CACHE=${LUAD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/luad}
IMAGE=${LUAD_IMAGE:-localhost/luad:test}
MAX_MIB=${LUAD_IMAGE_MAX_MIB:-120}     # debian:12-slim is 74 MiB; luad adds about 16
SUITE=bookworm                       # what debian:12 is
HOST_PACKAGES=(podman debootstrap runc uidmap)
BASE_LABEL=luad.base                 # marks the debian:12 images made here

WORK=$(mktemp -d /tmp/luad-container-test.XXXXXX)
RUN_DIR=$WORK/run                    # the socket volume, a host folder
SOCK=$RUN_DIR/luad.sock
VOLUME=luad-test-$$-data             # the data volume, a named one
CONTAINERS=()
current=""                           # the container the checks talk to

# --- reporting -------------------------------------------------------------

now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
TIMES=()
phase_name="" phase_start=0 test_start=$(now_ms)

# phase NAME: closes the running phase (its time goes into the summary), opens NAME.
phase() {
  if [ -n "$phase_name" ]; then
    local ms=$(($(now_ms) - phase_start))
    TIMES+=("$(printf '  %-12s %s' "$phase_name" "$(seconds "$ms")")")
    echo "# $phase_name: $(seconds "$ms")" >&2
  fi
  phase_name=${1:-}
  phase_start=$(now_ms)
  [ -z "$phase_name" ] || echo "# --- $phase_name" >&2
}

# fail CHECK DETAIL...: names the failed check, shows the container's last log lines, exits 1.
fail() {
  echo "container-test: FAILED: $1: ${*:2}" >&2
  if [ -n "$current" ]; then
    echo "--- last log lines of $current:" >&2
    podman logs --tail 30 "$current" >&2 2>&1 || true
  fi
  exit 1
}
trap 'echo "container-test: FAILED in phase ${phase_name:-setup}: line $LINENO: $BASH_COMMAND" >&2' ERR

cleanup() {
  ((${#CONTAINERS[@]} == 0)) || podman rm -f -v -t 0 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# pm ARGS...: podman without the noise of its healthcheck timers where no
# systemd runs (the health check itself runs through `podman healthcheck run`).
pm() {
  local rc=0
  podman "$@" 2>"$WORK/podman.err" || rc=$?
  grep -v 'unable to get systemd connection' "$WORK/podman.err" >&2 || true
  return $rc
}

# --- phases ----------------------------------------------------------------

# Podman as it works on these machines (no systemd, cgroup v1, no registry):
# scripts/containers.conf, used by every podman call below.
setup_podman() {
  [ "$(id -u)" -eq 0 ] || fail setup "run as root (rootful podman)"
  bash scripts/dev.sh deps "${HOST_PACKAGES[@]}"
  if [ -n "$LUAD" ]; then
    command -v "$LUAD" >/dev/null || fail setup "LUAD=$LUAD is not a command"
  else
    LUAD=./build/luad
    if [ ! -x "$LUAD" ]; then  # as `scripts/dev.sh test` builds it, only this target
      echo "# no $LUAD: building the luad target" >&2
      cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUAD_WERROR=ON >/dev/null
      cmake --build build -j"$(nproc)" --target luad
    fi
  fi
  export CONTAINERS_CONF=$PWD/scripts/containers.conf
  podman --version >&2
}

# The host's apt sources for SUITE and its -updates and -security suites, as
# "SITE SUITE" lines (the archive apt already uses); deb.debian.org if none.
apt_sites() {
  local sites
  # shellcheck disable=SC2016 # $(SITE) is apt's placeholder, not the shell's
  sites=$(apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
    grep -E " $SUITE(-updates|-security)?\$" | sort -u || true)
  echo "${sites:-http://deb.debian.org/debian $SUITE}"
}

# Writes the base tarballs: debian-12.tar (minbase, apt sources like the
# host's, no translations, as the official image) and debian-12-slim.tar (the
# same without docs, man pages and locales, and dpkg told to skip them).
make_base_tarballs() {
  local root=$WORK/rootfs mirror site suite
  mirror=${DEBIAN_MIRROR:-$(apt_sites | awk -v s="$SUITE" '$2 == s {print $1; exit}')}
  echo "# debootstrap --variant=minbase $SUITE from $mirror" >&2
  if ! debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2
    fail base "debootstrap failed (log above)"
  fi
  rm -f "$root/etc/apt/sources.list" "$root/etc/resolv.conf" "$root/etc/hostname"
  apt_sites | while read -r site suite; do
    [ -z "${DEBIAN_MIRROR:-}" ] || [ "$suite" != "$SUITE" ] || site=$DEBIAN_MIRROR
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' \
      "$site" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg
  done >"$root/etc/apt/sources.list.d/debian.sources"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  mkdir -p "$CACHE"
  tar --numeric-owner -C "$root" -cf "$CACHE/debian-12.tar.tmp" .

  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# slim: no docs, man pages or translations (copyright files stay)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,locale}/*
  tar --numeric-owner -C "$root" -cf "$CACHE/debian-12-slim.tar.tmp" .
  mv "$CACHE/debian-12.tar.tmp" "$CACHE/debian-12.tar"
  mv "$CACHE/debian-12-slim.tar.tmp" "$CACHE/debian-12-slim.tar"
  rm -rf "$root"
}

# import_base TAG TARBALL: tags TARBALL as docker.io/library/debian:TAG, unless
# that image is already this tarball, or a real one (pulled, not made here).
import_base() {
  local name=docker.io/library/debian:$1 tar=$2 stamp label
  stamp="$(basename "$tar")@$(stat -c %Y "$tar")"
  if podman image exists "$name"; then
    label=$(podman image inspect --format "{{index .Labels \"$BASE_LABEL\"}}" "$name")
    [ "$label" != "$stamp" ] || return 0
    if [ -z "$label" ] || [ "$label" = "<no value>" ]; then
      echo "# using the existing $name" >&2
      return 0
    fi
  fi
  local out
  out=$(podman import --change 'CMD ["bash"]' --change "LABEL $BASE_LABEL=$stamp" \
    "$tar" "$name" 2>&1) || fail base "podman import $tar: $out"
  echo "# imported $tar as $name" >&2
}

make_base() {
  if [ -s "$CACHE/debian-12.tar" ] && [ -s "$CACHE/debian-12-slim.tar" ]; then
    echo "# base tarballs from $CACHE" >&2
  else
    make_base_tarballs
  fi
  import_base 12 "$CACHE/debian-12.tar"
  import_base 12-slim "$CACHE/debian-12-slim.tar"
}

# Builds the image; the log (each line stamped with the seconds since the
# build began) stays in LUAD_CACHE. Prints the steps that took a second or more.
build_image() {
  local log=$CACHE/last-build.log
  mkdir -p "$CACHE"
  echo "# podman build (log: $log)" >&2
  # A bash loop stamps the lines, not awk: mawk reads its input in blocks.
  if ! podman build --format docker --network host --pull=never -t "$IMAGE" -f Dockerfile . 2>&1 |
    { local t0=$SECONDS line
      while IFS= read -r line; do printf '%4d %s\n' $((SECONDS - t0)) "$line"; done; } >"$log" ||
    ! grep -q "^ *[0-9]* Successfully tagged $IMAGE\$" "$log"; then
    tail -60 "$log" >&2
    fail build "podman build failed (log: $log)"
  fi
  # "[1/2] STEP 5/7: RUN ..." lines: a step lasts until the next one, or the end.
  awk '/^ *[0-9]+ (\[[0-9]+\/[0-9]+\] )?STEP|Successfully tagged/ {
         if (step != "" && $1 - t >= 1) printf "#   %4d s  %s\n", $1 - t, step
         t = $1; step = $0
         sub(/^ *[0-9]+ /, "", step); gsub(/--mount=[^ ]+ +/, "", step); step = substr(step, 1, 80)
       }' "$log" >&2
  echo "# built $IMAGE: $(grep -c ' --> Using cache' "$log" || true) steps from the layer cache" >&2
}

# start NAME: a container of the image as a user runs it, then waits until it answers.
start() {
  current=$1
  CONTAINERS+=("$1")
  pm run -d --name "$1" --network none \
    -v "$RUN_DIR:/run/luad" -v "$VOLUME:/var/lib/luad" "$IMAGE" >/dev/null
  for _ in $(seq 150); do
    "$LUAD" ping --socket "$SOCK" >/dev/null 2>&1 && return 0
    [ "$(podman inspect --format '{{.State.Running}}' "$1")" = true ] ||
      fail start "$1 exited before answering"
    sleep 0.2
  done
  fail start "$1 did not answer on $SOCK within 30 s"
}

# expect CHECK PATTERN COMMAND...: runs COMMAND; its output must match PATTERN (grep -E).
expect() {
  local check=$1 pattern=$2 out
  shift 2
  out=$("$@" 2>&1) || fail "$check" "'$*' exited $?: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "$check" "'$*' printed '$out', expected /$pattern/"
  echo "# ok $check" >&2
}

client() { "$LUAD" "$1" --socket "$SOCK" "${@:2}"; }

# stop_gracefully: `podman stop` (SIGTERM) must end the daemon with exit 0
# before podman's timeout sends SIGKILL.
stop_gracefully() {
  local timeout t0 ms code
  timeout=$(podman inspect --format '{{.Config.StopTimeout}}' "$current")
  t0=$(now_ms)
  pm stop "$current" >/dev/null
  ms=$(($(now_ms) - t0))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$current")
  [ "$code" = 0 ] || fail stop "$current exited $code after $(seconds "$ms") (SIGKILL after ${timeout} s?)"
  ((ms < timeout * 1000)) || fail stop "$current took $(seconds "$ms"), the timeout is ${timeout} s"
  podman logs "$current" 2>&1 | grep -q 'stopped$' || fail stop "no 'stopped' line in its log"
  echo "# ok stop: exit 0 after $(seconds "$ms") (timeout ${timeout} s)" >&2
}

# The checks on the first container: the client from the host through the
# mounted socket, a store write for the second container, what runs inside.
check_first() {
  local user status
  expect ping '^pong$' client ping
  expect submit '"greeting": ?"hello, container"' client submit --wait examples/hello.lua container
  expect workflows 'ticker.*running' client workflows
  expect store-write '"visits": ?1[,}]' client submit --wait --profile scratch examples/visits.lua first
  expect exec-client '^pong$' podman exec "$current" luad ping
  # A process that never reads its CANCEL: the stop then takes the whole grace period.
  printf 'local time = require("time")\nwhile true do time.sleep(60) end\n' >"$WORK/stubborn.lua"
  expect stubborn '^[0-9]+\.[0-9]+$' client submit "$WORK/stubborn.lua"

  user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
  status=$(podman exec "$current" grep -E '^(Uid|Gid):' /proc/1/status)
  awk -v u="${user%%:*}" -v g="${user##*:}" \
    '($1 == "Uid:" && $2 $3 $4 $5 != u u u u) || ($1 == "Gid:" && $2 $3 $4 $5 != g g g g) {bad = 1}
     END {exit bad}' <<<"$status" || fail non-root "pid 1 has $(tr -s '\n\t' '  ' <<<"$status"), expected $user"
  [ "${user%%:*}" != 0 ] || fail non-root "the image's user is root"
  echo "# ok non-root: pid 1 runs as $user" >&2

  # Every process but the exec's own shell: only luad, as pid 1.
  local procs
  procs=$(podman exec "$current" sh -c \
    'for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" = $$ ] || { read -r c < /proc/$p/comm; echo "$p $c"; }; done')
  [ "$procs" = "1 luad" ] || fail processes "expected only '1 luad', found: $(tr '\n' ' ' <<<"$procs")"
  echo "# ok processes: only luad (pid 1)" >&2

  podman healthcheck run "$current" >/dev/null || fail health "podman healthcheck run exited $?"
  status=$(podman inspect --format '{{.State.Health.Status}}' "$current")
  [ "$status" = healthy ] || fail health "the health status is '$status'"
  echo "# ok health: healthy" >&2
}

# A second container on the same data volume sees what the first stored.
check_second() {
  expect store-read '"visits": ?2[,}]' client submit --wait --profile scratch examples/visits.lua second
  expect workflows-again 'ticker.*running' client workflows
}

# --- main ------------------------------------------------------------------

phase setup
setup_podman
phase base
make_base
phase build
build_image
size=$(($(podman image inspect --format '{{.Size}}' "$IMAGE") / 1048576))
echo "# image $IMAGE: $size MiB" >&2
((size <= MAX_MIB)) || fail size "the image is $size MiB, over $MAX_MIB MiB: keep the runtime stage slim"

phase run
mkdir -p "$RUN_DIR"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
chown "$user" "$RUN_DIR"   # the daemon creates its socket there as that user
podman volume create "$VOLUME" >/dev/null
start "luad-test-$$-1"
check_first
stop_gracefully
start "luad-test-$$-2"
check_second
stop_gracefully
current=""
phase

echo "container test passed: image $IMAGE, $size MiB" >&2
printf '%s\n' "${TIMES[@]}" "$(printf '  %-12s %s' total "$(seconds $(($(now_ms) - test_start)))")" >&2
