// Package keys is where every secret of the hub comes from: field-encryption
// keys, the blind-index key, the audit-chain key, partner HMAC secrets and the
// SM2 file-signing key. Components ask a Provider by name and never read key
// material from configuration files.
//
// Names are lower-case segments of [a-z0-9-] separated by '/':
//
//	field/<kid>        SM4 keys of the field-encryption ring (16 bytes); the
//	                   greatest kid in sort order is the active one
//	blind              HMAC-SM3 key of the blind index (32 bytes; never rotated
//	                   without recomputing every index)
//	audit              HMAC-SM3 key of the audit chain (32 bytes)
//	disbursement-person
//	                   HMAC-SM3 key of the disbursement service's person keys
//	                   (32 bytes; never rotated without re-keying them)
//	partner/<key-id>   HMAC-SM3 request-signing secret of a partner key id
//	sm2/sign           SM2 private key for outbound files (PKCS#8 DER)
//
// The file provider keeps one file per name under a directory (hex text,
// mode 0600); the environment provider reads MZHUB_KEY_<NAME>, where '/'
// becomes "__" and '-' becomes '_' (MZHUB_KEY_PARTNER__FUNERAL_01). A cipher
// machine or KMS is a third Provider implementation.
package keys
