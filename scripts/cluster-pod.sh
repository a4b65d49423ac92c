#!/usr/bin/env bash
# docs/cluster.md's "As containers", run and checked: one podman pod with a
# PostgreSQL 15 container and two luad containers (nodes 1 and 2). A durable
# run submitted at node 1 is killed with its node (`podman kill`) and must
# finish on node 2 with its store counter exactly at its number of rounds.
# Each failed check exits 1 and names it; the pod, its volume and folders go
# on exit (KEEP=1 keeps them, to look around).
#   scripts/cluster-pod.sh        (as root, after scripts/dev.sh container)
# Environment: LUAD the host's client (default ./build/luad), LUAD_IMAGE
#   (default localhost/luad:test, what scripts/dev.sh container builds),
#   PG_IMAGE (default localhost/luad-postgres:15, built here from
#   scripts/postgres-image on the debian:12-slim base when missing; an
#   official postgres:15 works as well), ROUNDS (default 12).
set -eEuo pipefail
cd "$(dirname "$0")/.."

LUAD=${LUAD:-./build/luad}
IMAGE=${LUAD_IMAGE:-localhost/luad:test}
PG_IMAGE=${PG_IMAGE:-localhost/luad-postgres:15}
ROUNDS=${ROUNDS:-12}
POD=luad-cluster-$$
PG=$POD-pg
VOLUME=$POD-pgdata
WORK=$(mktemp -d /tmp/luad-cluster-pod.XXXXXX)
export CONTAINERS_CONF=$PWD/scripts/containers.conf

fail() {
  echo "cluster-pod: FAILED: $1: ${*:2}" >&2
  for c in "$PG" "$POD-1" "$POD-2"; do
    echo "--- last log lines of $c:" >&2
    podman logs --tail 15 "$c" 2>&1 | grep -v 'systemd connection' >&2 || true
  done
  exit 1
}
cleanup() {
  if [ "${KEEP:-}" = 1 ]; then
    echo "# kept: pod $POD, volume $VOLUME, folder $WORK" >&2
    return
  fi
  podman pod rm -f -t 0 "$POD" >/dev/null 2>&1 || true
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "cluster-pod: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
# quiet COMMAND...: without podman's noise where no systemd runs its healthcheck timers.
quiet() { "$@" 2> >(grep -v 'systemd connection' >&2 || true); }

# until SECONDS CHECK COMMAND...: runs COMMAND every 0.2 s until it succeeds.
until_ok() {
  local secs=$1 check=$2
  shift 2
  for _ in $(seq $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$check" "'$*' did not succeed within $secs s"
}

[ "$(id -u)" -eq 0 ] || fail setup "run as root (rootful podman)"
# A pod's infra container runs catatonit; its network is netavark's bridge
# (both only recommended by podman).
bash scripts/dev.sh deps podman catatonit netavark
[ -x "$LUAD" ] || fail setup "no client at $LUAD: build it (scripts/dev.sh test) or set LUAD"
podman image exists "$IMAGE" || fail setup "no image $IMAGE: scripts/dev.sh container builds it"
if ! podman image exists "$PG_IMAGE"; then
  podman image exists docker.io/library/debian:12-slim ||
    fail setup "no debian:12-slim base for $PG_IMAGE: scripts/dev.sh container makes it"
  echo "# building $PG_IMAGE from scripts/postgres-image" >&2
  podman build --pull=never --network host -t "$PG_IMAGE" scripts/postgres-image >"$WORK/pg-build.log" 2>&1 ||
    { tail -30 "$WORK/pg-build.log" >&2; fail setup "podman build of $PG_IMAGE failed"; }
fi

# --- the pod: PostgreSQL, then two nodes with one config but the node id ---
head -c 24 /dev/urandom | base64 >"$WORK/pg.secret"
chmod 644 "$WORK/pg.secret"   # read by the image's postgres user
quiet podman pod create --name "$POD" >/dev/null
quiet podman run -d --pod "$POD" --name "$PG" \
  -e POSTGRES_USER=luad -e POSTGRES_PASSWORD_FILE=/run/secrets/pg \
  -v "$WORK/pg.secret:/run/secrets/pg:ro" -v "$VOLUME:/var/lib/postgresql/data" "$PG_IMAGE" >/dev/null
until_ok 60 postgres podman exec "$PG" pg_isready -h localhost -U luad -d luad
echo "# ok postgres: $PG_IMAGE answers" >&2

cat >"$WORK/cluster.toml" <<'EOF'
[server]
socket = "/run/luad/luad.sock"
socket_mode = "0660"
grace_period = 5
[scripts]
roots = ["/etc/luad/workflows"]   # the image's: the same path on every node
[storage]
backend = "postgres"
url = "postgresql://luad@localhost:5432/luad"
password_env = "LUAD_PG_PASSWORD"
[cluster]
node = 1
lease = 6
[[profile]]
name = "work"
permissions = ["store:job-1"]
EOF
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
for n in 1 2; do
  sed "s/^node = .*/node = $n/" "$WORK/cluster.toml" >"$WORK/node$n.toml"
  mkdir -p "$WORK/run$n" && chown "$user" "$WORK/run$n"
  quiet podman run -d --pod "$POD" --name "$POD-$n" -e LUAD_PG_PASSWORD="$(cat "$WORK/pg.secret")" \
    -v "$WORK/node$n.toml:/etc/luad/luad.toml:ro" -v "$WORK/run$n:/run/luad" "$IMAGE" >/dev/null
done
for n in 1 2; do
  until_ok 30 "node $n" "$LUAD" ping --socket "$WORK/run$n/luad.sock"
done
cluster() { "$LUAD" cluster --socket "$WORK/run$1/luad.sock"; }
out=$(cluster 2)
for n in 1 2; do
  grep -qE "^$n .* live " <<<"$out" || fail nodes "node 2 does not see node $n live: $out"
done
echo "# ok nodes: both live" >&2

# --- a durable run, its node killed ------------------------------------------
run=$("$LUAD" submit --socket "$WORK/run1/luad.sock" --durable --profile work \
  examples/steps.lua job-1 "$ROUNDS" 1 | awk '{print $2}')
[[ $run == r-* ]] || fail submit "no run id from the durable submit: '$run'"
owned_by() { cluster 2 | grep -qE "^$run +[a-z]+ +$1 "; }
until_ok 10 owner owned_by 1
sleep 3   # a few steps on node 1 first
quiet podman kill "$POD-1" >/dev/null
t0=$SECONDS
until_ok 30 takeover owned_by 2
echo "# ok takeover: node 2 owns $run $((SECONDS - t0)) s after node 1 was killed" >&2
completed() { "$LUAD" workflows --socket "$WORK/run2/luad.sock" | grep -qE "^$run +completed "; }
until_ok $((ROUNDS + 30)) completed completed
echo 'return require("store").get("job-1")' >"$WORK/get.lua"
count=$("$LUAD" submit --socket "$WORK/run2/luad.sock" --wait --profile work "$WORK/get.lua")
[ "$count" = "$ROUNDS" ] || fail exactly-once "the counter is '$count', expected $ROUNDS"
echo "# ok exactly-once: job-1 = $count after $ROUNDS rounds across two nodes" >&2
echo "cluster pod passed: $IMAGE on $PG_IMAGE" >&2
