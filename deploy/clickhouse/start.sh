#!/bin/sh
# Start a throwaway ClickHouse server for mzhub's integration tests and the
# cluster profile's monitor store on this machine: 127.0.0.1 only, its own
# data directory, native protocol on $MZHUB_CH_TCP_PORT (9000) and HTTP on
# $MZHUB_CH_HTTP_PORT (8123). Installs Debian's clickhouse-server when missing.
#   MZHUB_CH_DIR        data directory (default $TMPDIR/mzhub-clickhouse)
#   MZHUB_CH_TCP_PORT   native protocol port (default 9000)
#   MZHUB_CH_HTTP_PORT  HTTP port (default 8123)
# (CH_DIR, CH_TCP_PORT and CH_HTTP_PORT, the older names, still work.)
# When a server already answers on the HTTP port it is left alone. The last
# line on stdout is the native address (127.0.0.1:<port>), for
# MZHUB_MONITOR_CLICKHOUSE_ADDR.
set -eu

DIR=${MZHUB_CH_DIR:-${CH_DIR:-${TMPDIR:-/tmp}/mzhub-clickhouse}}
TCP=${MZHUB_CH_TCP_PORT:-${CH_TCP_PORT:-9000}}
HTTP=${MZHUB_CH_HTTP_PORT:-${CH_HTTP_PORT:-8123}}

if [ "$(curl -s -m 5 "http://127.0.0.1:$HTTP/ping" 2>/dev/null)" = "Ok." ]; then
	echo "clickhouse already answers on 127.0.0.1:$HTTP" >&2
	echo "127.0.0.1:$TCP"
	exit 0
fi

if ! command -v clickhouse-server >/dev/null 2>&1; then
	if ! apt-cache policy clickhouse-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		apt-get update
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clickhouse-server clickhouse-client
fi

mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas" "$DIR/log"
if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
	echo "clickhouse already running (pid $(cat "$DIR/server.pid"))"
else
	cat >"$DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
	cat >"$DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$DIR/log/server.log</log>
    <errorlog>$DIR/log/error.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$TCP</tcp_port>
  <http_port>$HTTP</http_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>Asia/Shanghai</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
	clickhouse-server --config-file="$DIR/config.xml" --pid-file="$DIR/server.pid" >"$DIR/log/stdout.log" 2>&1 &
	echo $! >"$DIR/launcher.pid"
fi

i=0
until [ "$(curl -s "http://127.0.0.1:$HTTP/ping" 2>/dev/null)" = "Ok." ]; do
	i=$((i + 1))
	if [ "$i" -gt 120 ]; then
		echo "clickhouse did not answer on 127.0.0.1:$HTTP within 60 s; see $DIR/log" >&2
		tail -20 "$DIR/log/error.log" "$DIR/log/stdout.log" >&2 2>/dev/null || true
		exit 1
	fi
	sleep 0.5
done
echo "clickhouse $(curl -s "http://127.0.0.1:$HTTP/?query=SELECT%20version()") answering in $DIR"
echo "127.0.0.1:$TCP"
