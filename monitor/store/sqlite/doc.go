// Package sqlite is the monitor event store of the embedded profile: its own
// SQLite file (monitor.sqlite_path), so event volume never contends with the
// state database's single writer. It passes monitor/store/eventstoretest.
package sqlite
