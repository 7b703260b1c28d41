package tlcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tjfoc/gmsm/gmtls"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/tlcp/tlcptest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// listener runs the console's account handler behind Handler on a TLCP
// listener, as the hub does, and returns its address.
func listener(t *testing.T, p *tlcptest.PKI, m *accounts.Manager) string {
	t.Helper()
	ln, err := Listen(p.Config("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/auth/", http.StripPrefix("/console/auth", m.Handler()))
	srv := &http.Server{Handler: Handler(mux), ConnContext: ConnContext, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// mapped issues a client certificate for cn and reads it as cert-add does.
func mapped(t *testing.T, p *tlcptest.PKI, cn string) (gmtls.Certificate, accounts.ClientCert) {
	t.Helper()
	kp := p.Client(t, cn)
	b, err := os.ReadFile(p.File(cn + ".crt"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := ReadCert(b, p.File("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return kp, cc
}

func login(c *http.Client, addr, user, pw string) (int, map[string]any, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	resp, err := c.Post("https://"+addr+"/console/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

func TestConsoleLoginWithClientCertificate(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	rec := &audittest.Recorder{}
	cc := security.DefaultConfig().Console
	cc.SecondFactorRoles = []string{"security-admin"} // TOTP required elsewhere, not enrolled
	m, err := accounts.New(ctx, db, cc, rec, accounts.WithIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	cli := accounts.Actor{Name: "cli:root"}
	adminPW, err := m.CreateUser(ctx, cli, "secadmin", "", accounts.RoleSecurityAdmin)
	if err != nil {
		t.Fatal(err)
	}
	opsPW, err := m.CreateUser(ctx, cli, "ops1", "", accounts.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	p := tlcptest.New(t)
	addr := listener(t, p, m)
	adminKey, adminCert := mapped(t, p, "secadmin-ukey")
	opsKey, opsCert := mapped(t, p, "ops1-ukey")
	strayKey := p.Client(t, "stray")
	if err := m.AddCert(ctx, cli, "secadmin", adminCert); err != nil {
		t.Fatal(err)
	}
	if err := m.AddCert(ctx, cli, "ops1", adminCert); !errors.Is(err, accounts.ErrCertMapped) {
		t.Fatalf("mapping a certificate twice: %v, want ErrCertMapped", err)
	}
	if err := m.AddCert(ctx, cli, "ops1", opsCert); err != nil {
		t.Fatal(err)
	}

	t.Run("no client certificate: handshake refused", func(t *testing.T) {
		if _, _, err := login(p.HTTPClient(t), addr, "secadmin", adminPW); err == nil {
			t.Fatal("login over TLCP without a client certificate got through")
		} else {
			t.Logf("refused: %v", err)
		}
	})
	t.Run("the plain login still wants TOTP", func(t *testing.T) {
		if _, err := m.Login(ctx, "secadmin", adminPW, "10.0.0.9"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatalf("password-only login of a second-factor role: %v, want refused", err)
		}
	})
	t.Run("mapped certificate and password: admin without TOTP", func(t *testing.T) {
		code, out, err := login(p.HTTPClient(t, adminKey), addr, "secadmin", adminPW)
		if err != nil || code != http.StatusOK || out["role"] != "security-admin" {
			t.Fatalf("login = %d %v %v, want 200 as security-admin", code, out, err)
		}
		if !rec.Has("console.login", audit.OutcomeSuccess, "factor=cert:"+adminCert.Short()) {
			t.Fatalf("successful certificate login not audited with its certificate: %+v", rec.Records())
		}
	})
	t.Run("right certificate, wrong password", func(t *testing.T) {
		if code, _, err := login(p.HTTPClient(t, adminKey), addr, "secadmin", adminPW+"x"); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
	})
	t.Run("another user's certificate refused", func(t *testing.T) {
		if code, _, err := login(p.HTTPClient(t, opsKey), addr, "secadmin", adminPW); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
		if !rec.Has("console.login", audit.OutcomeDenied, "mapped to another user") {
			t.Fatal("refusal not audited")
		}
	})
	t.Run("unmapped certificate refused", func(t *testing.T) {
		if code, _, err := login(p.HTTPClient(t, strayKey), addr, "secadmin", adminPW); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
		if !rec.Has("console.login", audit.OutcomeDenied, "not mapped to any user") {
			t.Fatal("refusal not audited")
		}
	})
	t.Run("removed mapping refused", func(t *testing.T) {
		if err := m.RemoveCert(ctx, cli, "ops1", opsCert.Fingerprint); err != nil {
			t.Fatal(err)
		}
		if !rec.Has("account.cert_remove", audit.OutcomeSuccess, opsCert.Short()) {
			t.Fatal("removal not audited")
		}
		if err := m.RemoveCert(ctx, cli, "ops1", opsCert.Fingerprint); !errors.Is(err, accounts.ErrCertNotMapped) {
			t.Fatalf("removing twice: %v", err)
		}
		if code, _, err := login(p.HTTPClient(t, opsKey), addr, "ops1", opsPW); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
	})
	t.Run("only the console", func(t *testing.T) {
		resp, err := p.HTTPClient(t, adminKey).Get("https://" + addr + "/partner/v1/ping")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("non-console path over TLCP: %d, want 404", resp.StatusCode)
		}
	})
	list, err := m.Certs(ctx, "")
	if err != nil || len(list) != 1 || list[0].Username != "secadmin" || list[0].Fingerprint != adminCert.Fingerprint {
		t.Fatalf("Certs = %+v, %v", list, err)
	}
}

func TestReadCert(t *testing.T) {
	p := tlcptest.New(t)
	_, cc := mapped(t, p, "alice")
	b, _ := os.ReadFile(p.File("alice.crt"))
	if got, err := ReadCert(b, ""); err != nil || got != cc || len(got.Fingerprint) != 64 || !strings.Contains(got.Subject, "alice") {
		t.Fatalf("ReadCert = %+v, %v", got, err)
	}
	other := tlcptest.New(t)
	if _, err := ReadCert(b, other.File("ca.crt")); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if _, err := ReadCert([]byte("not pem"), ""); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("garbage: %v", err)
	}
}

func FuzzReadCert(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ReadCert(b, "")
		if err == nil && len(c.Fingerprint) != 64 {
			t.Fatalf("accepted with fingerprint %q", c.Fingerprint)
		}
	})
}
