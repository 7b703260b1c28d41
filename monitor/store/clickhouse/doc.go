// Package clickhouse is the monitor event store of the cluster profile,
// written with github.com/ClickHouse/clickhouse-go/v2 over the native
// protocol. Its schema (schema/schema.sql, copied to deploy/clickhouse/)
// runs on Debian's ClickHouse 18.16 and on current releases. It passes
// monitor/store/eventstoretest.
package clickhouse
