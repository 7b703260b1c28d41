#!/usr/bin/env bash
# Stops the server started by start.sh (data is kept for the next start).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${MZHUB_PG_DIR:-$root/.ci-work/postgres}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[[ -n "$bindir" && -f "$dir/data/PG_VERSION" ]] || exit 0
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
