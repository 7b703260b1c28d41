// Package local is the embedded durable bus: messages live in the hub's
// state database (the SQLite file of the embedded profile, WAL mode) in the
// tables of the "bus" migrations, and are dispatched from an in-memory index
// rebuilt from those tables at Open.
//
// Writes go through one writer goroutine that commits group-wise: every
// Publish waiting when a commit starts shares its transaction, and acks,
// nacks and dead letters are accumulated and committed every
// LocalConfig.CommitInterval (or sooner when MaxBatch of them wait). Publish
// returns after its commit, so a message survives kill -9 once Publish
// returned nil; an ack not yet committed at a crash means one redelivery.
//
// Per subscription, a key's next message is not dispatched while an earlier
// message of the key is in flight or waiting to be redelivered after a nack,
// so order per key holds across concurrent consumers and through retries.
//
// Open one Bus per database: the bus assumes it is the only writer of its
// tables (the hub opens it once, in the embedded profile's single process).
package local
