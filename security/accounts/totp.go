package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
)

// TOTP algorithms. SHA1 is what every authenticator app implements (RFC
// 6238's default); SM3 keeps the second factor within the national
// algorithms for authenticators (tokens) that support HMAC-SM3.
const (
	TOTPSHA1 = "SHA1"
	TOTPSM3  = "SM3"
)

// TOTP parameters: 6 digits, 30-second steps, one step of clock skew
// either way.
const (
	totpDigits = 6
	totpStep   = 30 * time.Second
	totpSkew   = 1
)

// Sealer seals the TOTP secrets at rest (security/fieldcrypt.Ring).
type Sealer interface {
	Encrypt(plaintext string) (string, error)
	Decrypt(ciphertext string) (string, error)
}

// WithSealer sets what seals TOTP secrets; without one, enrollment fails.
func WithSealer(s Sealer) Option { return func(m *Manager) { m.seal = s } }

// ErrNoSealer: TOTP enrollment needs the field keys.
var ErrNoSealer = errors.New("accounts: TOTP secrets are sealed with the field keys; none configured")

// TOTPCode returns the RFC 6238 code of secret at time t with digits
// digits and 30-second steps, HMAC-SHA1 or HMAC-SM3 (alg).
func TOTPCode(secret []byte, alg string, t time.Time, digits int) string {
	return totpAt(secret, alg, t.Unix()/int64(totpStep/time.Second), digits)
}

func totpAt(secret []byte, alg string, step int64, digits int) string {
	var h func() hash.Hash = sha1.New
	if alg == TOTPSM3 {
		h = sm3.New
	}
	mac := hmac.New(h, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	s := strconv.FormatUint(uint64(v%mod), 10)
	for len(s) < digits {
		s = "0" + s
	}
	return s
}

// Enrollment is a new TOTP secret, shown once.
type Enrollment struct {
	// Secret is the base32 secret to type into an authenticator.
	Secret string
	// URI is the otpauth:// URI (for a QR code).
	URI string
	// Algorithm is SHA1 or SM3.
	Algorithm string
}

// EnrollTOTP gives username a new TOTP secret (replacing an earlier one)
// and returns it once. Audited.
func (m *Manager) EnrollTOTP(ctx context.Context, actor Actor, username, alg string) (Enrollment, error) {
	if alg == "" {
		alg = TOTPSHA1
	}
	if alg != TOTPSHA1 && alg != TOTPSM3 {
		return Enrollment{}, fmt.Errorf("accounts: TOTP algorithm %q: want SHA1 or SM3", alg)
	}
	if m.seal == nil {
		return Enrollment{}, ErrNoSealer
	}
	u, err := m.getUser(ctx, m.db, username)
	if err != nil {
		m.record(ctx, actor, "account.totp_enroll", "user:"+username, audit.OutcomeFailure, "no such user")
		return Enrollment{}, err
	}
	secret := keys.Random(20)
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	sealed, err := m.seal.Encrypt(b32)
	if err != nil {
		return Enrollment{}, fmt.Errorf("accounts: seal TOTP secret: %w", err)
	}
	now := m.clock.Now()
	err = m.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_totp WHERE user_id = ?`), u.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, m.db.Rebind(`INSERT INTO console_totp (user_id, secret, algorithm, last_step, enrolled_ms) VALUES (?, ?, ?, 0, ?)`),
			u.ID, sealed, alg, now.UnixMilli())
		return err
	})
	if err != nil {
		m.record(ctx, actor, "account.totp_enroll", "user:"+username, audit.OutcomeFailure, "store error")
		return Enrollment{}, fmt.Errorf("accounts: enroll TOTP: %w", err)
	}
	m.record(ctx, actor, "account.totp_enroll", "user:"+username, audit.OutcomeSuccess, "algorithm="+alg)
	q := url.Values{"secret": {b32}, "issuer": {"mzhub"}, "algorithm": {alg}, "digits": {strconv.Itoa(totpDigits)}, "period": {"30"}}
	return Enrollment{Secret: b32, Algorithm: alg,
		URI: "otpauth://totp/" + url.PathEscape("mzhub:"+username) + "?" + q.Encode()}, nil
}

// secondFactorRequired tells whether role must give a TOTP code.
func (m *Manager) secondFactorRequired(role Role) bool {
	return slices.Contains(m.cfg.SecondFactorRoles, string(role))
}

// checkTOTP checks the code of an enrolled user (and that a user whose role
// requires it is enrolled). It reports why a login fails ("" when it may
// go on). A code is accepted once: a replayed one fails.
func (m *Manager) checkTOTP(ctx context.Context, u userRow, code string, now time.Time) (string, error) {
	var sealed, alg string
	var last int64
	err := m.db.QueryRowContext(ctx, m.db.Rebind(`SELECT secret, algorithm, last_step FROM console_totp WHERE user_id = ?`), u.ID).Scan(&sealed, &alg, &last)
	if errors.Is(err, sql.ErrNoRows) {
		if m.secondFactorRequired(u.Role) {
			return "second factor required but not enrolled (mzhub user totp-enroll)", nil
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("accounts: read TOTP: %w", err)
	}
	if m.seal == nil {
		return "", ErrNoSealer
	}
	b32, err := m.seal.Decrypt(sealed)
	if err != nil {
		return "", fmt.Errorf("accounts: open TOTP secret: %w", err)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(b32)
	if err != nil {
		return "", fmt.Errorf("accounts: TOTP secret: %w", err)
	}
	if len(code) != totpDigits {
		return "one-time code missing or malformed", nil
	}
	step := now.Unix() / int64(totpStep/time.Second)
	for d := -totpSkew; d <= totpSkew; d++ {
		s := step + int64(d)
		if subtle.ConstantTimeCompare([]byte(totpAt(secret, alg, s, totpDigits)), []byte(code)) != 1 {
			continue
		}
		if s <= last {
			return "one-time code already used", nil
		}
		// Claim the step; a concurrent login with the same code loses.
		res, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE console_totp SET last_step = ? WHERE user_id = ? AND last_step < ?`), s, u.ID, s)
		if err != nil {
			return "", fmt.Errorf("accounts: TOTP: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "one-time code already used", nil
		}
		return "", nil
	}
	return "wrong one-time code", nil
}
