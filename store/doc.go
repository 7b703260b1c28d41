// Package store is the hub's state database: batches, ledgers, partners,
// accounts, the audit chain and (in the embedded profile) the local bus.
//
// Two dialects share one API: SQLite through the pure-Go modernc.org/sqlite
// driver (embedded profile, WAL mode) and PostgreSQL through pgx (cluster
// profile; KingbaseES and openGauss speak its protocol). Callers write SQL with
// `?` placeholders and pass it through DB.Rebind, and each component owns its
// schema as numbered migration files applied by DB.Migrate under its own name.
package store
