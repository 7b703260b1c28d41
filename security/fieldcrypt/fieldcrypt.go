package fieldcrypt

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"

	"github.com/shanghai-mca/mzhub/security/keys"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrUnknownKey: the ciphertext names a key the ring does not hold.
	ErrUnknownKey = errors.New("fieldcrypt: unknown key id")
	// ErrCiphertext: the value is not a well-formed ciphertext or fails authentication.
	ErrCiphertext = errors.New("fieldcrypt: bad ciphertext")
	// ErrNoKeys: the ring was built without a field key.
	ErrNoKeys = errors.New("fieldcrypt: no field key")
)

var b64 = base64.RawURLEncoding

// Ring is the set of field keys plus the blind-index key. It is safe for
// concurrent use and immutable; load a new Ring after a rotation.
type Ring struct {
	aeads  map[string]cipher.AEAD
	active string
	blind  []byte
}

// NewRing builds a ring from field keys by kid (16 bytes each, SM4) and a
// blind-index key (at least 16 bytes). The greatest kid is the active one.
func NewRing(fieldKeys map[string][]byte, blindKey []byte) (*Ring, error) {
	if len(fieldKeys) == 0 {
		return nil, ErrNoKeys
	}
	if len(blindKey) < 16 {
		return nil, errors.New("fieldcrypt: blind-index key must be at least 16 bytes")
	}
	r := &Ring{aeads: map[string]cipher.AEAD{}, blind: append([]byte(nil), blindKey...)}
	kids := make([]string, 0, len(fieldKeys))
	for kid, k := range fieldKeys {
		if kid == "" || strings.ContainsAny(kid, ":/") {
			return nil, fmt.Errorf("fieldcrypt: bad kid %q", kid)
		}
		block, err := sm4.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: key %s: %w", kid, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: key %s: %w", kid, err)
		}
		r.aeads[kid] = aead
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	r.active = kids[len(kids)-1]
	return r, nil
}

// LoadRing reads every field/<kid> key and the blind key from p.
func LoadRing(ctx context.Context, p keys.Provider) (*Ring, error) {
	names, err := p.List(ctx, keys.FieldPrefix)
	if err != nil {
		return nil, err
	}
	fk := map[string][]byte{}
	for _, n := range names {
		k, err := p.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		fk[strings.TrimPrefix(n, keys.FieldPrefix)] = k
	}
	if len(fk) == 0 {
		return nil, fmt.Errorf("%w: run `mzhub keys init`", ErrNoKeys)
	}
	blind, err := p.Get(ctx, keys.BlindName)
	if err != nil {
		return nil, err
	}
	return NewRing(fk, blind)
}

// ActiveKID names the key that encrypts.
func (r *Ring) ActiveKID() string { return r.active }

// KIDs lists the kids of the ring, sorted.
func (r *Ring) KIDs() []string {
	out := make([]string, 0, len(r.aeads))
	for k := range r.aeads {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func aad(kid string) []byte { return []byte("mzhub-field:" + kid) }

// Encrypt returns the ciphertext of plaintext under the active key. The
// empty string stays empty (an absent value).
func (r *Ring) Encrypt(plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	aead := r.aeads[r.active]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(buf) // never fails since Go 1.24
	buf = aead.Seal(buf, buf, []byte(plaintext), aad(r.active))
	return r.active + ":" + b64.EncodeToString(buf), nil
}

// KID returns the key id a ciphertext names, or "" when it has none.
func KID(ciphertext string) string {
	kid, _, ok := strings.Cut(ciphertext, ":")
	if !ok {
		return ""
	}
	return kid
}

// Decrypt returns the plaintext of a ciphertext made by any key of the ring.
// The empty string stays empty.
func (r *Ring) Decrypt(ciphertext string) (string, error) {
	if ciphertext == "" {
		return "", nil
	}
	kid, body, ok := strings.Cut(ciphertext, ":")
	if !ok {
		return "", fmt.Errorf("%w: no key id", ErrCiphertext)
	}
	aead, ok := r.aeads[kid]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownKey, kid)
	}
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: malformed", ErrCiphertext)
	}
	ns := aead.NonceSize()
	pt, err := aead.Open(nil, raw[:ns], raw[ns:], aad(kid))
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed", ErrCiphertext)
	}
	return string(pt), nil
}

// Current reports whether a ciphertext is under the active key (or empty).
func (r *Ring) Current(ciphertext string) bool {
	return ciphertext == "" || KID(ciphertext) == r.active
}

// Reencrypt returns ciphertext re-encrypted under the active key and whether
// it changed.
func (r *Ring) Reencrypt(ciphertext string) (string, bool, error) {
	if r.Current(ciphertext) {
		return ciphertext, false, nil
	}
	pt, err := r.Decrypt(ciphertext)
	if err != nil {
		return "", false, err
	}
	ct, err := r.Encrypt(pt)
	return ct, err == nil, err
}

// Normalize is what BlindIndex applies before hashing: surrounding spaces
// and inner spaces and dashes are dropped, letters upper-cased (the ID
// check character x and X index alike).
func Normalize(value string) string {
	return strings.ToUpper(strings.Map(func(c rune) rune {
		switch c {
		case ' ', '-', '\t':
			return -1
		}
		return c
	}, value))
}

// BlindIndex returns the lower-case hex HMAC-SM3 of the normalised value:
// store it beside the ciphertext and look values up by it. The empty value
// has an empty index. The blind key must not change without recomputing
// every stored index.
func (r *Ring) BlindIndex(value string) string {
	v := Normalize(value)
	if v == "" {
		return ""
	}
	m := hmac.New(sm3.New, r.blind)
	_, _ = m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}
