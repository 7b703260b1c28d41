#!/usr/bin/env bash
# Stops the broker started by start.sh (by its recorded pid) and, with
# --wipe, deletes its data directory.
set -euo pipefail
workdir=${MZHUB_PULSAR_DIR:-${TMPDIR:-/tmp}/mzhub-pulsar}
pidfile=$workdir/pulsar.pid
if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile")
	# Only our broker: a stale pid file may name an unrelated process.
	if grep -qa PulsarStandaloneStarter "/proc/$pid/cmdline" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 30); do
			grep -qa PulsarStandaloneStarter "/proc/$pid/cmdline" 2>/dev/null || break
			sleep 1
		done
		if grep -qa PulsarStandaloneStarter "/proc/$pid/cmdline" 2>/dev/null; then
			echo "pulsar: pid $pid did not stop in 30s; killing it" >&2
			kill -9 "$pid" || true
		fi
	fi
	rm -f "$pidfile"
	echo "pulsar: stopped" >&2
else
	echo "pulsar: no pid file in $workdir; nothing to stop" >&2
fi
if [ "${1:-}" = "--wipe" ]; then
	rm -rf "$workdir"
fi
