package fieldcrypt

import (
	"crypto/rand"
	"fmt"
)

// sealVersion is the first byte of a sealed envelope; a later format gets
// another value.
const sealVersion = 1

func sealAAD(kid string) []byte { return []byte("mzhub-seal:" + kid) }

// Seal encrypts a whole payload (a bus message body, a dead letter) with
// the active key, SM4-GCM, into a binary envelope:
//
//	version (1 byte) | len(kid) (1 byte) | kid | nonce (12 bytes) | ciphertext and tag
//
// Encrypt is for short text columns; Seal avoids their base64 overhead.
// An empty payload is sealed too, so that the envelope still authenticates it.
func (r *Ring) Seal(plaintext []byte) ([]byte, error) {
	aead := r.aeads[r.active]
	head := 2 + len(r.active)
	ns := aead.NonceSize()
	out := make([]byte, head+ns, head+ns+len(plaintext)+aead.Overhead())
	out[0], out[1] = sealVersion, byte(len(r.active))
	copy(out[2:], r.active)
	_, _ = rand.Read(out[head : head+ns]) // never fails since Go 1.24
	return aead.Seal(out, out[head:head+ns], plaintext, sealAAD(r.active)), nil
}

// SealedKID returns the key id a sealed envelope names, or "" when it is
// not an envelope.
func SealedKID(sealed []byte) string {
	if len(sealed) < 2 || sealed[0] != sealVersion || len(sealed) < 2+int(sealed[1]) {
		return ""
	}
	return string(sealed[2 : 2+int(sealed[1])])
}

// Open returns the payload of an envelope made by Seal under any key of the
// ring: ErrUnknownKey when the ring lacks its key, ErrCiphertext when it is
// malformed or was altered.
func (r *Ring) Open(sealed []byte) ([]byte, error) {
	kid := SealedKID(sealed)
	if kid == "" {
		return nil, fmt.Errorf("%w: not a sealed envelope", ErrCiphertext)
	}
	aead, ok := r.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, kid)
	}
	rest := sealed[2+len(kid):]
	ns := aead.NonceSize()
	if len(rest) < ns+aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated", ErrCiphertext)
	}
	pt, err := aead.Open(nil, rest[:ns], rest[ns:], sealAAD(kid))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrCiphertext)
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}
