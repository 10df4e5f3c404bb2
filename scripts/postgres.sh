#!/usr/bin/env bash
# Starts (or reuses) a private PostgreSQL cluster on 127.0.0.1 for the lineage registry and the
# Airflow metadata DB. Idempotent: a second run finds the cluster running and returns at once.
set -euo pipefail
source "$(dirname "$0")/env.sh"
if ! command -v /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[setup] installing Debian's postgresql" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
fi
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$RAGOPS_LOCAL"
if [ ! -s "$RAGOPS_PGDATA/PG_VERSION" ]; then
  mkdir -p "$RAGOPS_PGDATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$RAGOPS_PGDATA"
  chmod 700 "$RAGOPS_PGDATA"
  run_pg "$PGBIN/initdb" -D "$RAGOPS_PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
if ! run_pg "$PGBIN/pg_ctl" -D "$RAGOPS_PGDATA" status >/dev/null 2>&1; then
  run_pg "$PGBIN/pg_ctl" -D "$RAGOPS_PGDATA" -l "$RAGOPS_PGDATA/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $RAGOPS_PGPORT -k /tmp -c max_connections=200 -c fsync=off" >/dev/null
fi
psql_admin() { psql -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -p "$RAGOPS_PGPORT" -U postgres "$@"; }
psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='ragops'" | grep -q 1 ||
  psql_admin -d postgres -c "CREATE ROLE ragops LOGIN PASSWORD 'ragops' CREATEDB"
for db in ragops airflow; do
  psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 ||
    psql_admin -d postgres -c "CREATE DATABASE $db OWNER ragops"
done
echo "[setup] postgres ready on 127.0.0.1:$RAGOPS_PGPORT (data: $RAGOPS_PGDATA)" >&2
