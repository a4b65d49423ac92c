#!/usr/bin/env bash
# Runs luad_bench benchmarks with a real PostgreSQL 15 beside them: initdb
# into a temporary folder, pg_ctl start listening only on a Unix socket there
# (fsync on: durability as SQLite's synchronous = FULL gives it), then
# LUAD_BENCH_POSTGRES names it and the benchmarks that know it (store) also
# run on it. The server is stopped and the folder removed at the end.
#   usage: bench/postgres.sh path/to/luad_bench [luad_bench flags...]
#   (default flags: --only store). Needs postgresql-15 (apt-get install -y postgresql-15).
set -eu
BENCH=${1:?usage: bench/postgres.sh path/to/luad_bench [flags...]}; shift
[ $# -gt 0 ] || set -- --only store
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || { echo "postgresql-15 is not installed" >&2; exit 1; }
DIR=$(mktemp -d /tmp/luad-bench-pg.XXXXXX)
as_owner() {  # PostgreSQL refuses to run as root: run as postgres then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
cleanup() {
  as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_owner "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust > /dev/null
as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 \
  -o "-k '$DIR' -c listen_addresses=''" start > /dev/null
echo "# postgres: $("$PGBIN/postgres" --version), socket in $DIR, fsync on" >&2
LUAD_BENCH_POSTGRES="host=$DIR port=5432 dbname=postgres user=postgres" "$BENCH" "$@"
