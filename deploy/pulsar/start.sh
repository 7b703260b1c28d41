#!/usr/bin/env bash
# Starts an Apache Pulsar standalone broker on 127.0.0.1 (binary protocol
# 6650, admin REST 8080) for integration tests and local development, creates
# the mzhub tenant and namespaces (setup.sh), and prints the service URL
# (pulsar://127.0.0.1:6650) as the last line on stdout; progress goes to
# stderr. Typical use:
#
#   export MZHUB_TEST_PULSAR=$(deploy/pulsar/start.sh [--fresh])
#   go test ./bus/pulsar/...
#   deploy/pulsar/stop.sh
#
# The broker comes from Maven Central: Pulsar does not publish its binary
# distribution there, so pom.xml depends on org.apache.pulsar:pulsar-broker and
# `mvn dependency:copy-dependencies` copies the jars under
# ${MZHUB_CACHE:-$HOME/.cache/mzhub}/pulsar/<version>/lib (kept between runs).
# Data and logs go to ${MZHUB_PULSAR_DIR:-${TMPDIR:-/tmp}/mzhub-pulsar}; --fresh
# deletes that directory first (CI: start from empty topics every run).
#
# Environment: MZHUB_PULSAR_VERSION (default 4.0.7), MZHUB_PULSAR_HEAP
# (default 768m), JAVA_HOME (default: java on PATH, 17 or newer),
# MZHUB_PULSAR_WAIT seconds to wait for the broker (default 240),
# MZHUB_PULSAR_PORT (binary protocol, default 6650) and MZHUB_PULSAR_ADMIN_PORT
# (admin REST, default 8080).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=${MZHUB_PULSAR_VERSION:-4.0.7}
cache=${MZHUB_CACHE:-$HOME/.cache/mzhub}/pulsar/$version
workdir=${MZHUB_PULSAR_DIR:-${TMPDIR:-/tmp}/mzhub-pulsar}
heap=${MZHUB_PULSAR_HEAP:-768m}
wait_s=${MZHUB_PULSAR_WAIT:-240}
port=${MZHUB_PULSAR_PORT:-6650}
admin_port=${MZHUB_PULSAR_ADMIN_PORT:-8080}
admin=http://127.0.0.1:$admin_port
url=pulsar://127.0.0.1:$port
export MZHUB_PULSAR_ADMIN=$admin # for setup.sh
java=${JAVA_HOME:+$JAVA_HOME/bin/}java

log() { echo "pulsar: $*" >&2; }

# ours PID: the process is our broker (a stale pid file may name another).
ours() { [ -n "$1" ] && grep -qa PulsarStandaloneStarter "/proc/$1/cmdline" 2>/dev/null; }

fresh=
for arg in "$@"; do
	case $arg in
	--fresh) fresh=1 ;;
	*)
		log "unknown argument $arg (want --fresh)"
		exit 2
		;;
	esac
done

healthy() { curl -fsS -m 5 "$admin/admin/v2/brokers/health" >/dev/null 2>&1; }

if [ -n "$fresh" ]; then
	if [ -f "$workdir/pulsar.pid" ] && ours "$(cat "$workdir/pulsar.pid")"; then
		"$here/stop.sh" >&2
	fi
	rm -rf "$workdir"
fi

if healthy; then
	log "broker already answers on $admin"
	"$here/setup.sh" >&2
	echo "$url"
	exit 0
fi

if [ ! -f "$cache/lib/.complete" ]; then
	log "fetching pulsar-broker $version and its dependencies into $cache/lib (once)"
	mkdir -p "$cache/lib"
	mvn -B -q -f "$here/pom.xml" -Dpulsar.version="$version" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$cache/lib" >&2
	touch "$cache/lib/.complete"
fi

mkdir -p "$workdir"
if [ -f "$workdir/pulsar.pid" ] && ours "$(cat "$workdir/pulsar.pid")"; then
	log "a broker (pid $(cat "$workdir/pulsar.pid")) is starting already; waiting for it"
else
	log "starting standalone broker $version on $url (admin $admin; data in $workdir, log $workdir/pulsar.log)"
	sed -e "s/^brokerServicePort=.*/brokerServicePort=$port/" -e "s/^webServicePort=.*/webServicePort=$admin_port/" \
		"$here/standalone.conf" >"$workdir/standalone.conf"
	(
		cd "$workdir"
		exec nohup "$java" -Xms128m -Xmx"$heap" -XX:MaxDirectMemorySize=512m -XX:+UseG1GC \
			-XX:ActiveProcessorCount=2 -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true \
			-Dio.netty.leakDetectionLevel=disabled -Dio.netty.recycler.maxCapacityPerThread=4096 \
			-Dpulsar.allocator.exit_on_oom=true \
			-Dlog4j2.configurationFile="$here/log4j2.xml" \
			-cp "$cache/lib/*" org.apache.pulsar.PulsarStandaloneStarter \
			--config "$workdir/standalone.conf" --no-functions-worker --no-stream-storage \
			--advertised-address 127.0.0.1 \
			--bookkeeper-dir "$workdir/bookkeeper" --metadata-dir "$workdir/metadata" \
			>"$workdir/pulsar.log" 2>&1 </dev/null
	) &
	echo $! >"$workdir/pulsar.pid"
fi

deadline=$((SECONDS + wait_s))
until healthy; do
	if ! ours "$(cat "$workdir/pulsar.pid")"; then
		log "broker exited; last lines of $workdir/pulsar.log:"
		tail -n 40 "$workdir/pulsar.log" >&2 || true
		exit 1
	fi
	if [ $SECONDS -ge $deadline ]; then
		log "broker did not answer within ${wait_s}s; last lines of $workdir/pulsar.log:"
		tail -n 40 "$workdir/pulsar.log" >&2 || true
		exit 1
	fi
	sleep 2
done
log "broker up after ${SECONDS}s"
"$here/setup.sh" >&2
echo "$url"
