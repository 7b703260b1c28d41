package accounts

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestTOTPVectors: RFC 6238 appendix B, HMAC-SHA1, 8 digits.
func TestTOTPVectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, c := range []struct {
		unix int64
		want string
	}{{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"}, {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"}} {
		if got := TOTPCode(secret, TOTPSHA1, time.Unix(c.unix, 0), 8); got != c.want {
			t.Errorf("T=%d: %s, want %s", c.unix, got, c.want)
		}
	}
	if TOTPCode(secret, TOTPSM3, time.Unix(59, 0), 8) == "94287082" {
		t.Error("SM3 gives the SHA-1 code")
	}
}

// TestSecondFactor: an enrolled account needs the current code besides
// the password; a code works once; a role that requires the second
// factor cannot log in before enrollment; the secret is sealed at rest.
func TestSecondFactor(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) { testSecondFactor(t, db) })
}

func testSecondFactor(t *testing.T, db *store.DB) {
	ctx := context.Background()
	ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": bytes.Repeat([]byte{3}, 16)}, bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	m, fc, fa := newManager(t, db)
	m.seal = ring
	m.cfg.SecondFactorRoles = []string{string(RoleSecurityAdmin)}
	pw := func(name string, role Role) string {
		otp, err := m.CreateUser(ctx, cli, name, "", role)
		if err != nil {
			t.Fatal(err)
		}
		return otp
	}
	secOTP := pw("sec1", RoleSecurityAdmin)
	if _, err := m.Login(ctx, "sec1", secOTP, "10.0.0.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("security admin without an enrolled second factor: %v", err)
	}
	if !fa.Has("console.login", audit.OutcomeFailure, "not enrolled") {
		t.Fatal("the refusal does not say why in the audit log")
	}
	en, err := m.EnrollTOTP(ctx, cli, "sec1", TOTPSHA1)
	if err != nil {
		t.Fatal(err)
	}
	var sealed string
	if err := db.QueryRowContext(ctx, `SELECT secret FROM console_totp`).Scan(&sealed); err != nil || sealed == en.Secret || fieldcrypt.KID(sealed) != "k1" {
		t.Fatalf("secret at rest: %q %v", sealed, err)
	}
	secret, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en.Secret)
	code := TOTPCode(secret, TOTPSHA1, fc.Now(), 6)
	if _, err := m.LoginWithCode(ctx, "sec1", secOTP, "", "10.0.0.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("no code: %v", err)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := m.LoginWithCode(ctx, "sec1", secOTP, wrong, "10.0.0.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := m.LoginWithCode(ctx, "sec1", secOTP, code, "10.0.0.1"); err != nil {
		t.Fatalf("password and code: %v", err)
	}
	if _, err := m.LoginWithCode(ctx, "sec1", secOTP, code, "10.0.0.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("the same code twice: %v", err)
	}
	fc.Advance(30 * time.Second)
	if _, err := m.LoginWithCode(ctx, "sec1", secOTP, TOTPCode(secret, TOTPSHA1, fc.Now(), 6), "10.0.0.1"); err != nil {
		t.Fatalf("next code: %v", err)
	}
	// A role not in second_factor_roles and not enrolled: password only.
	opOTP := pw("op1", RoleOperator)
	if _, err := m.Login(ctx, "op1", opOTP, "10.0.0.2"); err != nil {
		t.Fatalf("operator: %v", err)
	}
	if err := (security.Config{KeyProvider: "env", Console: func() security.ConsoleConfig {
		c := security.DefaultConfig().Console
		c.SecondFactorRoles = []string{"root"}
		return c
	}(), Audit: security.DefaultConfig().Audit, PartnerAPI: security.DefaultConfig().PartnerAPI}).Validate(); err == nil {
		t.Fatal("an unknown role in second_factor_roles passed validation")
	}
}
