// Package monitor records every exchange as an event and turns events into
// what ops see: stores (SQLite embedded, ClickHouse cluster), metrics,
// expectations, alerts, data-quality rules and the web console.
package monitor
