// Package sftp is the hub's SFTP transport (github.com/pkg/sftp over
// golang.org/x/crypto/ssh). A Client keeps a small connection pool per
// partner with host-key pinning, a deadline on every operation (a watchdog
// closes the connection of a stalled operation, so a dead server never
// hangs a goroutine) and a circuit breaker.
//
// Outbound, Upload writes a file as a temporary name, renames it, then
// writes a detached SM2 signature and finally a done file carrying the
// record count, total in fen and SM3 digest; a durable ledger in the state
// store makes the upload resumable after a crash without sending a file twice.
//
// Inbound, Poll picks a remote file only when its done file exists or its
// size has been stable for a configured time, streams it to local disk,
// claims it in the durable claim ledger (partner + path + size + digest) so
// that it is processed once across restarts and replicas, verifies digest and
// signature, hands it to the caller, and moves it to processed/ or failed/.
//
// Package sftptest holds the in-process SFTP server used by tests and by
// the bank simulators.
package sftp
