package tlcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tjfoc/gmsm/gmtls"
	"github.com/tjfoc/gmsm/sm2"
	"github.com/tjfoc/gmsm/x509"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// pki is a throw-away SM2 CA with the listener's two certificates and
// client certificates, written as PEM files.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *sm2.PrivateKey
	serial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.ca, p.caKey = p.issue(t, "ca", &x509.Certificate{Subject: pkixName("mzhub test CA"), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature})
	return p
}

func (p *pki) issue(t *testing.T, name string, tmpl *x509.Certificate) (*x509.Certificate, *sm2.PrivateKey) {
	t.Helper()
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.SignatureAlgorithm = x509.SM2WithSM3
	parent, signer := p.ca, p.caKey
	if parent == nil { // self-signed CA
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatalf("issue %s: %v", name, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := x509.WritePrivateKeyToPem(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(p.dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, filepath.Join(p.dir, name+".key"), kp)
	return c, key
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (p *pki) server(t *testing.T) {
	t.Helper()
	p.issue(t, "sign", &x509.Certificate{Subject: pkixName("console.test"), DNSNames: []string{"console.test"}, KeyUsage: x509.KeyUsageDigitalSignature})
	p.issue(t, "enc", &x509.Certificate{Subject: pkixName("console.test"), DNSNames: []string{"console.test"},
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageKeyAgreement})
}

func (p *pki) client(t *testing.T, name string) (gmtls.Certificate, accounts.ClientCert) {
	t.Helper()
	p.issue(t, name, &x509.Certificate{Subject: pkixName(name), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	kp, err := gmtls.LoadX509KeyPair(p.file(name+".crt"), p.file(name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p.file(name + ".crt"))
	cc, err := ReadCert(b, p.file("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return kp, cc
}

// listener runs the console's account handler behind Handler on a TLCP
// listener, as the hub does, and returns its address.
func listener(t *testing.T, p *pki, m *accounts.Manager) string {
	t.Helper()
	p.server(t)
	cfg := security.TLCPConfig{Listen: "127.0.0.1:0", SignCertFile: p.file("sign.crt"), SignKeyFile: p.file("sign.key"),
		EncCertFile: p.file("enc.crt"), EncKeyFile: p.file("enc.key"), ClientCAFile: p.file("ca.crt")}
	ln, err := Listen(cfg)
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

// client is an HTTP client over TLCP presenting certs (none for nil).
func client(p *pki, certs []gmtls.Certificate) *http.Client {
	b, _ := os.ReadFile(p.file("ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	cfg := &gmtls.Config{GMSupport: gmtls.NewGMSupport(), RootCAs: roots, ServerName: "console.test", Certificates: certs}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := gmtls.Client(raw, cfg)
			if err := c.Handshake(); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return c, nil
		},
	}}
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
	p := newPKI(t)
	addr := listener(t, p, m)
	adminKey, adminCert := p.client(t, "secadmin-ukey")
	opsKey, opsCert := p.client(t, "ops1-ukey")
	strayKey, _ := p.client(t, "stray")
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
		if _, _, err := login(client(p, nil), addr, "secadmin", adminPW); err == nil {
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
		code, out, err := login(client(p, []gmtls.Certificate{adminKey}), addr, "secadmin", adminPW)
		if err != nil || code != http.StatusOK || out["role"] != "security-admin" {
			t.Fatalf("login = %d %v %v, want 200 as security-admin", code, out, err)
		}
		if !rec.Has("console.login", audit.OutcomeSuccess, "factor=cert:"+adminCert.Short()) {
			t.Fatalf("successful certificate login not audited with its certificate: %+v", rec.Records())
		}
	})
	t.Run("right certificate, wrong password", func(t *testing.T) {
		if code, _, err := login(client(p, []gmtls.Certificate{adminKey}), addr, "secadmin", adminPW+"x"); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
	})
	t.Run("another user's certificate refused", func(t *testing.T) {
		if code, _, err := login(client(p, []gmtls.Certificate{opsKey}), addr, "secadmin", adminPW); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
		if !rec.Has("console.login", audit.OutcomeDenied, "mapped to another user") {
			t.Fatal("refusal not audited")
		}
	})
	t.Run("unmapped certificate refused", func(t *testing.T) {
		if code, _, err := login(client(p, []gmtls.Certificate{strayKey}), addr, "secadmin", adminPW); err != nil || code != http.StatusUnauthorized {
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
		if code, _, err := login(client(p, []gmtls.Certificate{opsKey}), addr, "ops1", opsPW); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("login = %d %v, want 401", code, err)
		}
	})
	t.Run("only the console", func(t *testing.T) {
		resp, err := client(p, []gmtls.Certificate{adminKey}).Get("https://" + addr + "/partner/v1/ping")
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
	p := newPKI(t)
	_, cc := p.client(t, "alice")
	b, _ := os.ReadFile(p.file("alice.crt"))
	if got, err := ReadCert(b, ""); err != nil || got != cc || len(got.Fingerprint) != 64 || !strings.Contains(got.Subject, "alice") {
		t.Fatalf("ReadCert = %+v, %v", got, err)
	}
	other := newPKI(t)
	if _, err := ReadCert(b, other.file("ca.crt")); err == nil {
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

func pkixName(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"mzhub test"}}
}
