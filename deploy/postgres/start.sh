#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for integration tests and
# prints its DSN on the last line. Installs Debian's postgresql when missing.
#   MZHUB_PG_DIR   data/socket directory (default .ci-work/postgres)
#   MZHUB_PG_PORT  port (default 55432: Debian's own cluster may hold 5432)
# A server already answering on the port is used as it is (database mzhub
# created when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${MZHUB_PG_DIR:-$root/.ci-work/postgres}
port=${MZHUB_PG_PORT:-55432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "postgres: installing Debian package postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# initdb refuses to run as root: run the server as the postgres user.
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  as_pg=(runuser -u postgres --)
fi
if "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q; then
  echo "postgres: a server already answers on 127.0.0.1:$port" >&2
else
  mkdir -p "$dir"
  [[ ${#as_pg[@]} -gt 0 ]] && chown -R postgres: "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U mzhub --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U mzhub --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
  fi
  if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >&2
  fi
fi
for _ in $(seq 1 60); do
  if "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q; then break; fi
  sleep 0.5
done
"$bindir/psql" -h 127.0.0.1 -p "$port" -U mzhub -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='mzhub'" | grep -q 1 \
  || "$bindir/createdb" -h 127.0.0.1 -p "$port" -U mzhub mzhub
echo "postgres://mzhub@127.0.0.1:$port/mzhub?sslmode=disable"
