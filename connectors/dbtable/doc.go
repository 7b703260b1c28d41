// Package dbtable is the front-end processor table exchange (前置机库表交换)
// as a connector kind ("dbtable"): government exchange-sharing platforms
// often deliver by writing rows into tables of a database on the
// receiver's side (the front-end processor, 前置机), and take answers from
// other tables there.
//
// The source takes rows from a table in batches by a watermark column
// (with the row id as tie-break), hands each row to the bus as one JSON
// message with idempotency key table/id, and only then — in the same
// database transaction that read the rows — marks them taken and moves
// its stored watermark. A crash before the commit leaves the rows
// untaken: they are handed over again under the same idempotency keys,
// which the route's delivery ledger and the consumers recognise, so
// nothing is lost and nothing is applied twice. The rows are locked
// (FOR UPDATE SKIP LOCKED) while a batch is handed over, so replicas never
// take the same rows.
//
// The sink writes each message's JSON object as one row of an answer table
// with INSERT … ON CONFLICT (key column) DO NOTHING: a message delivered
// twice writes one row.
//
// The database is PostgreSQL through pgx; KingbaseES and openGauss speak
// its wire protocol and SQL for everything used here (row comparison,
// FOR UPDATE SKIP LOCKED, ON CONFLICT DO NOTHING; openGauss ≥ 3.0 for
// SKIP LOCKED, KingbaseES V8R6 in its PostgreSQL mode) — docs/datasea.md.
package dbtable
