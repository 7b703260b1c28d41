// Package fieldcrypt encrypts sensitive fields at rest (resident ID numbers,
// account and card numbers) with SM4-GCM, and computes HMAC-SM3 blind
// indexes so that encrypted values can still be looked up by equality.
//
// A ciphertext is text: "<kid>:<base64url(nonce || ciphertext || tag)>",
// where kid names the field key (keys.FieldPrefix + kid in the key
// provider), the nonce is 12 random bytes per value and the kid is bound as
// additional data. A Ring holds every known key: the newest (greatest kid)
// encrypts, all decrypt, so keys rotate without downtime; ReencryptColumn
// then moves stored values to the new key.
package fieldcrypt
