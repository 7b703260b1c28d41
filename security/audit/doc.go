// Package audit is the hub's append-only security audit log (MLPS level 3
// "security audit"). Every record holds time, actor, source IP, action,
// object, outcome and request id, and an HMAC-SM3 over those fields and the
// previous record's MAC, so that Verify finds the first record that was
// edited, removed or inserted behind the hub's back. The chain lives in the
// state store (SQLite or PostgreSQL); Export writes it as JSON lines for
// off-host backup, and VerifyExport checks such a file.
//
// Free text (object, detail) is masked with security/mask before it is
// stored: auditors read this log too.
package audit
