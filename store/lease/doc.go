// Package lease elects one node of the hub for a job: named leases in the
// state database (SQLite in the embedded profile, PostgreSQL in the cluster
// profile), each held by one node at a time until it expires. Periodic jobs
// that must not run on every replica (expectation checks, alert rules,
// quality reports, retention, dead-letter replays, audit pruning) run under
// Elector.Run; the other replicas wait and take over within a lease's TTL
// when the holder stops or dies.
//
// A lease is renewed every third of its TTL. Expiry times come from each
// node's clock, so the nodes' clocks must agree to well within the TTL
// (NTP); a node that cannot renew stops its job at once, before its lease
// can expire.
package lease
