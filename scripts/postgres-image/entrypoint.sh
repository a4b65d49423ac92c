#!/bin/sh
# The PostgreSQL image's pid 1 (scripts/postgres-image/Containerfile): on an
# empty data folder, initdb with POSTGRES_USER as the superuser, its password
# from POSTGRES_PASSWORD_FILE, and POSTGRES_DB created; then postgres itself.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=${POSTGRES_PASSWORD_FILE:-}
  if [ -z "$pwfile" ] || [ ! -r "$pwfile" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD_FILE must name a readable file (got '$pwfile')" >&2
    exit 1
  fi
  initdb --username="$user" --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  # initdb allows loopback only; in a pod that is enough, on a network the
  # other containers come from elsewhere (a password is required either way).
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)" >&2
fi
exec postgres -c listen_addresses='*'
