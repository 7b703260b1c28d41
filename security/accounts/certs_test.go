package accounts

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestCertificateFactor: the mapping table and the login decision on both
// dialects, without TLCP (the listener's own test is in security/tlcp): a
// login carrying a client certificate needs it mapped to the account and
// then no TOTP; another account's, an unknown, an expired or a removed
// certificate is refused and audited as denied.
func TestCertificateFactor(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m, fc, fa := newManager(t, db)
		m.cfg.SecondFactorRoles = []string{"security-admin"}
		pw, err := m.CreateUser(ctx, cli, "sec1", "", RoleSecurityAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.CreateUser(ctx, cli, "ops1", "", RoleOperator); err != nil {
			t.Fatal(err)
		}
		cert := func(b byte, days int) ClientCert {
			return ClientCert{Fingerprint: strings.Repeat(string("0123456789abcdef"[b]), 64), Subject: "CN=k", NotAfter: t0.Add(time.Duration(days) * 24 * time.Hour)}
		}
		mine, theirs, expired, stray := cert(1, 30), cert(2, 30), cert(3, -1), cert(4, 30)
		for _, c := range []struct {
			user string
			c    ClientCert
		}{{"sec1", mine}, {"ops1", theirs}, {"sec1", expired}} {
			if err := m.AddCert(ctx, cli, c.user, c.c); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.AddCert(ctx, cli, "ops1", mine); !errors.Is(err, ErrCertMapped) {
			t.Fatalf("second mapping: %v", err)
		}
		if err := m.AddCert(ctx, cli, "ops1", ClientCert{Fingerprint: "ABC"}); !errors.Is(err, ErrFingerprint) {
			t.Fatalf("bad fingerprint: %v", err)
		}
		if err := m.AddCert(ctx, cli, "nobody", stray); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		if _, err := m.Login(ctx, "sec1", pw, "10.0.0.1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("without certificate or TOTP: %v", err)
		}
		for _, tt := range []struct {
			c    ClientCert
			why  string
			pass bool
		}{
			{theirs, "mapped to another user", false},
			{stray, "not mapped to any user", false},
			{expired, "expired", false},
			{mine, "factor=cert:" + mine.Short(), true},
		} {
			_, err := m.Login(WithClientCert(ctx, tt.c), "sec1", pw, "10.0.0.2")
			if (err == nil) != tt.pass {
				t.Fatalf("login with %s: %v, want pass=%v", tt.why, err, tt.pass)
			}
			outcome := audit.OutcomeDenied
			if tt.pass {
				outcome = audit.OutcomeSuccess
			}
			if !fa.Has("console.login", outcome, tt.why) {
				t.Fatalf("login with %s not audited as %s", tt.why, outcome)
			}
		}
		list, err := m.Certs(ctx, "sec1")
		if err != nil || len(list) != 2 || list[0].Fingerprint != mine.Fingerprint || !list[1].NotAfter.Equal(expired.NotAfter) {
			t.Fatalf("Certs(sec1) = %+v, %v", list, err)
		}
		fc.Advance(time.Minute)
		if err := m.RemoveCert(ctx, cli, "sec1", mine.Fingerprint); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Login(WithClientCert(ctx, mine), "sec1", pw, "10.0.0.3"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("removed mapping: %v", err)
		}
		if err := m.RemoveCert(ctx, cli, "ops1", mine.Fingerprint); !errors.Is(err, ErrCertNotMapped) {
			t.Fatalf("removing what is not mapped: %v", err)
		}
		if !fa.Has("account.cert_remove", audit.OutcomeFailure, "not mapped") || !fa.Has("account.cert_add", audit.OutcomeFailure, "already mapped") {
			t.Fatal("failed mapping changes not audited")
		}
	})
}
