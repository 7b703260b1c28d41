package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/shanghai-mca/mzhub/security/audit"
)

// ClientCert is the client certificate a connection presented, as the
// console's TLCP listener (security/tlcp) saw it after verifying it
// against the configured CA.
type ClientCert struct {
	// Fingerprint is the lower-case hex SM3 of the certificate's DER.
	Fingerprint string
	// Subject is the certificate's subject, for the audit trail.
	Subject string
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time
}

// Short is the fingerprint's first 16 hex digits, for logs and audit.
func (c ClientCert) Short() string {
	if len(c.Fingerprint) > 16 {
		return c.Fingerprint[:16]
	}
	return c.Fingerprint
}

type clientCertKey struct{}

// WithClientCert returns ctx carrying the connection's verified client
// certificate. Only the TLCP listener's middleware sets it: a login whose
// context carries one must present a certificate mapped to the account.
func WithClientCert(ctx context.Context, c ClientCert) context.Context {
	return context.WithValue(ctx, clientCertKey{}, c)
}

// ClientCertFrom returns the client certificate in ctx, if any.
func ClientCertFrom(ctx context.Context) (ClientCert, bool) {
	c, ok := ctx.Value(clientCertKey{}).(ClientCert)
	return c, ok
}

// Certificate mapping errors.
var (
	// ErrCertMapped: the certificate is already mapped (to this or another user).
	ErrCertMapped = errors.New("accounts: certificate already mapped")
	// ErrCertNotMapped: no such mapping.
	ErrCertNotMapped = errors.New("accounts: certificate not mapped to this user")
	// ErrFingerprint: not a hex SM3 fingerprint.
	ErrFingerprint = errors.New("accounts: fingerprint: want 64 hex digits (SM3 of the certificate's DER)")
)

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CertMapping is one certificate mapped to an account.
type CertMapping struct {
	Username    string    `json:"username"`
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"not_after"`
	Added       time.Time `json:"added"`
}

// AddCert maps a client certificate to username: a login over the TLCP
// listener presenting it satisfies the cryptographic second factor of
// that account (and no other). A certificate maps to one account only.
// Audited.
func (m *Manager) AddCert(ctx context.Context, actor Actor, username string, c ClientCert) error {
	obj := "user:" + username
	if !fingerprintRE.MatchString(c.Fingerprint) {
		return ErrFingerprint
	}
	u, err := m.getUser(ctx, m.db, username)
	if err != nil {
		m.record(ctx, actor, "account.cert_add", obj, audit.OutcomeFailure, "no such user")
		return err
	}
	now := m.clock.Now()
	err = m.db.InTx(ctx, func(tx *sql.Tx) error {
		var owner int64
		err := tx.QueryRowContext(ctx, m.db.Rebind(`SELECT user_id FROM console_certs WHERE fingerprint = ?`), c.Fingerprint).Scan(&owner)
		if err == nil {
			return ErrCertMapped
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, m.db.Rebind(`INSERT INTO console_certs (fingerprint, user_id, subject, not_after_ms, added_ms) VALUES (?, ?, ?, ?, ?)`),
			c.Fingerprint, u.ID, c.Subject, c.NotAfter.UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		m.record(ctx, actor, "account.cert_add", obj, audit.OutcomeFailure, "cert="+c.Short()+": "+err.Error())
		if errors.Is(err, ErrCertMapped) {
			return err
		}
		return fmt.Errorf("accounts: map certificate: %w", err)
	}
	m.record(ctx, actor, "account.cert_add", obj, audit.OutcomeSuccess, "cert="+c.Short()+" subject="+c.Subject)
	return nil
}

// RemoveCert removes the mapping of the certificate with fingerprint
// from username; the certificate no longer logs in. Audited.
func (m *Manager) RemoveCert(ctx context.Context, actor Actor, username, fingerprint string) error {
	obj := "user:" + username
	short := ClientCert{Fingerprint: fingerprint}.Short()
	u, err := m.getUser(ctx, m.db, username)
	if err != nil {
		m.record(ctx, actor, "account.cert_remove", obj, audit.OutcomeFailure, "no such user")
		return err
	}
	res, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_certs WHERE fingerprint = ? AND user_id = ?`), fingerprint, u.ID)
	if err != nil {
		return fmt.Errorf("accounts: remove certificate: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		m.record(ctx, actor, "account.cert_remove", obj, audit.OutcomeFailure, "cert="+short+" not mapped")
		return ErrCertNotMapped
	}
	m.record(ctx, actor, "account.cert_remove", obj, audit.OutcomeSuccess, "cert="+short)
	return nil
}

// Certs lists the mapped certificates (of username, or all when empty).
func (m *Manager) Certs(ctx context.Context, username string) ([]CertMapping, error) {
	q := `SELECT u.username, c.fingerprint, c.subject, c.not_after_ms, c.added_ms FROM console_certs c JOIN console_users u ON u.id = c.user_id`
	var args []any
	if username != "" {
		q += ` WHERE u.username = ?`
		args = append(args, username)
	}
	rows, err := m.db.QueryContext(ctx, m.db.Rebind(q+` ORDER BY u.username, c.added_ms`), args...)
	if err != nil {
		return nil, fmt.Errorf("accounts: list certificates: %w", err)
	}
	defer rows.Close()
	var out []CertMapping
	for rows.Next() {
		var c CertMapping
		var na, added int64
		if err := rows.Scan(&c.Username, &c.Fingerprint, &c.Subject, &na, &added); err != nil {
			return nil, err
		}
		c.NotAfter, c.Added = time.UnixMilli(na).UTC(), time.UnixMilli(added).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// checkCert decides the second factor of a login that came with a client
// certificate: "" when the certificate is mapped to u (the cryptographic
// factor is satisfied), otherwise why the login is refused. A
// certificate that is unknown, mapped to another account or whose mapping
// was removed is refused whatever else the login carries.
func (m *Manager) checkCert(ctx context.Context, u userRow, c ClientCert, now time.Time) (string, error) {
	if now.After(c.NotAfter) {
		return "client certificate " + c.Short() + " expired", nil
	}
	var owner int64
	err := m.db.QueryRowContext(ctx, m.db.Rebind(`SELECT user_id FROM console_certs WHERE fingerprint = ?`), c.Fingerprint).Scan(&owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "client certificate " + c.Short() + " not mapped to any user", nil
	case err != nil:
		return "", fmt.Errorf("accounts: read certificate mapping: %w", err)
	case owner != u.ID:
		return "client certificate " + c.Short() + " mapped to another user", nil
	}
	return "", nil
}
