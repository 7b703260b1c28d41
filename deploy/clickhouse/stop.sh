#!/bin/sh
# Stop the ClickHouse server started by start.sh (same MZHUB_CH_DIR). Keeps
# the data directory unless MZHUB_CH_WIPE=1.
set -eu
DIR=${MZHUB_CH_DIR:-${CH_DIR:-${TMPDIR:-/tmp}/mzhub-clickhouse}}
for f in server.pid launcher.pid; do
	if [ -f "$DIR/$f" ]; then
		pid=$(cat "$DIR/$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			i=0
			while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
		fi
		rm -f "$DIR/$f"
	fi
done
if [ "${MZHUB_CH_WIPE:-${CH_WIPE:-0}}" = 1 ]; then rm -rf "$DIR"; fi
echo "clickhouse stopped"
