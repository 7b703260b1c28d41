// Package filesign signs and verifies batch files with SM2 (detached
// signatures, GB/T 32918.2 with the SM3 digest and the signer's ZA, default
// user id "1234567812345678") and computes the SM3 digests that done files
// carry. Everything streams from an io.Reader, so a file of millions of
// records is never held in memory.
//
// A detached signature file holds the DER-encoded signature in base64 on one
// line (name.sig next to name). Verify also accepts raw DER and hex, because
// banks' tools differ.
package filesign
