// Package eventstoretest is the shared suite every monitor event store passes
// (monitor/store/sqlite, monitor/store/clickhouse).
package eventstoretest
