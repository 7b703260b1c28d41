package accounts

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/emmansun/gmsm/sm3"
)

// Password hashes are PBKDF2 (RFC 8018) with HMAC-SM3, a 16-byte random salt
// and a 32-byte output, stored as "pbkdf2-sm3$<iterations>$<salt>$<hash>"
// (base64, no padding). PBKDF2-HMAC-SM3 keeps password storage within the
// national algorithms GB/T 39786 asks for; argon2id (in x/crypto) would be
// the choice without that constraint. The iteration count is in each hash,
// so raising DefaultIterations re-hashes passwords at their next login.
const (
	hashScheme = "pbkdf2-sm3"
	// DefaultIterations costs about 0.2 s on one core of the reference VM.
	DefaultIterations = 200_000
	saltLen, keyLen   = 16, 32
	// MaxPasswordLength bounds the work an attacker can make one login cost.
	MaxPasswordLength = 128
)

var b64 = base64.RawStdEncoding

func hashPassword(pw string, iterations int) (string, error) {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	k, err := pbkdf2.Key(sm3.New, pw, salt, iterations, keyLen)
	if err != nil {
		return "", fmt.Errorf("accounts: hash: %w", err)
	}
	return hashScheme + "$" + strconv.Itoa(iterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(k), nil
}

// checkPassword reports whether pw matches the stored hash and the hash's
// iteration count.
func checkPassword(stored, pw string) (bool, int) {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return false, 0
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false, 0
	}
	salt, err1 := b64.DecodeString(parts[2])
	want, err2 := b64.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, 0
	}
	got, err := pbkdf2.Key(sm3.New, pw, salt, iter, len(want))
	if err != nil {
		return false, 0
	}
	return subtle.ConstantTimeCompare(got, want) == 1, iter
}

// PolicyError lists why a password was refused.
type PolicyError struct {
	// Reasons are short sentences for the user.
	Reasons []string
}

func (e *PolicyError) Error() string {
	return "accounts: password refused: " + strings.Join(e.Reasons, "; ")
}

// ErrPolicy matches every *PolicyError with errors.Is.
var ErrPolicy = errors.New("accounts: password refused")

// Is makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// CheckPolicy applies the password policy: at least minLen characters (never
// fewer than 8), at least minClasses of lower case, upper case, digits and
// symbols, at most MaxPasswordLength, not containing the user name.
func CheckPolicy(pw, username string, minLen, minClasses int) error {
	if minLen < 8 {
		minLen = 8
	}
	var reasons []string
	n := len([]rune(pw))
	if n < minLen {
		reasons = append(reasons, fmt.Sprintf("at least %d characters", minLen))
	}
	if n > MaxPasswordLength {
		reasons = append(reasons, fmt.Sprintf("at most %d characters", MaxPasswordLength))
	}
	var lower, upper, digit, symbol bool
	for _, c := range pw {
		switch {
		case unicode.IsLower(c):
			lower = true
		case unicode.IsUpper(c):
			upper = true
		case unicode.IsDigit(c):
			digit = true
		case unicode.IsControl(c):
		default:
			symbol = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, symbol} {
		if b {
			classes++
		}
	}
	if classes < minClasses {
		reasons = append(reasons, fmt.Sprintf("at least %d of: lower case, upper case, digits, symbols", minClasses))
	}
	if username != "" && strings.Contains(strings.ToLower(pw), strings.ToLower(username)) {
		reasons = append(reasons, "must not contain the user name")
	}
	if len(reasons) > 0 {
		return &PolicyError{Reasons: reasons}
	}
	return nil
}

// oneTimePassword returns a random 16-character password with all four
// character classes, avoiding look-alike characters.
func oneTimePassword() string {
	sets := []string{"abcdefghijkmnpqrstuvwxyz", "ABCDEFGHJKLMNPQRSTUVWXYZ", "23456789", "!#%+-=?@_"}
	all := strings.Join(sets, "")
	out := make([]byte, 16)
	pick := func(set string) byte {
		var b [1]byte
		for {
			_, _ = rand.Read(b[:])
			// Rejection sampling keeps the choice uniform.
			if int(b[0]) < 256-256%len(set) {
				return set[int(b[0])%len(set)]
			}
		}
	}
	for i := range out {
		if i < len(sets) {
			out[i] = pick(sets[i])
		} else {
			out[i] = pick(all)
		}
	}
	// Shuffle so the classes are not at fixed places.
	for i := len(out) - 1; i > 0; i-- {
		var b [1]byte
		_, _ = rand.Read(b[:])
		j := int(b[0]) % (i + 1)
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}
