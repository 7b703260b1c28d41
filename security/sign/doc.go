// Package sign is the hub's partner request signature: HMAC-SM3 over a
// canonical string made of the method, path, query, key id, timestamp, nonce
// and the SM3 digest of the body. docs/signing.md is its published
// specification; this package holds both sides: Sign for clients (partners'
// integrators, the conformance kit, the hub's own outbound calls) and
// Verifier for the partner API. Nonce uniqueness is the caller's job (the
// access middleware keeps a nonce store); Verifier checks everything else.
package sign
