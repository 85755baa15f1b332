#!/usr/bin/env bash
# The postgres:16 image's contract, for the stand-in built from Debian's postgresql-15: on an empty PGDATA,
# create the cluster with POSTGRES_USER as superuser (password POSTGRES_PASSWORD), the database POSTGRES_DB,
# and run /docker-entrypoint-initdb.d/*.sql once; then serve on every address with password authentication.
set -euo pipefail
: "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" "${POSTGRES_DB:=$POSTGRES_USER}"
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { runuser -u postgres -- "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # A failed first start leaves no half-made cluster that the next start would serve as it is.
  trap 'find "$PGDATA" -mindepth 1 -delete' ERR
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  # UTF-8 as upstream (its LANG): under SQL_ASCII, psycopg 3 reads every text value as bytes.
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # A server on the socket only while the database and the init scripts are made, as upstream does.
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  [ "$POSTGRES_DB" = postgres ] || as_postgres createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    echo "running $script"
    as_postgres psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$script"
  done
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  trap - ERR
fi
exec runuser -u postgres -- postgres -D "$PGDATA" -c listen_addresses='*'
