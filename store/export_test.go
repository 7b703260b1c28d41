package store

// RebindDollar exposes the PostgreSQL placeholder rewrite to tests.
var RebindDollar = rebindDollar

// QueuedWrites returns the control and data writes waiting at db's write
// gate (SQLite).
func QueuedWrites(db *DB) (control, data int) { return db.gate.queued() }
