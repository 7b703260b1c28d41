package access

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/keys"
)

func cert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

// TestMutualTLS runs a real TLS handshake with a partner client certificate.
func TestMutualTLS(t *testing.T) {
	now := time.Now()
	ca, caKey := cert(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "partner CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	client, clientKey := cert(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fh01.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	// A self-signed certificate with the same name must not pass.
	rogue, rogueKey := cert(t, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "fh01.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, nil, nil)

	tcfg, err := ClientTLSConfig(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = []security.PartnerAccess{{ID: "funeral.fh01", MTLSSubjects: []string{"fh01.example"}, AllowCIDRs: []string{"127.0.0.0/8"}}}
	fa := &audittest.Recorder{}
	a, err := New(Options{Config: cfg, Keys: keys.NewFile(t.TempDir()), Nonces: NewMemoryNonces(), Audit: fa})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := security.PartnerFrom(r.Context())
		_, _ = io.WriteString(w, p.ID+" "+p.Method)
	})))
	srv.TLS = tcfg
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	call := func(c *x509.Certificate, k *ecdsa.PrivateKey) (int, string, error) {
		tc := &tls.Config{RootCAs: roots, ServerName: "example.com"}
		if c != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{c.Raw}, PrivateKey: k}}
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DialContext: (&net.Dialer{}).DialContext}}
		resp, err := hc.Get(srv.URL + "/partner/v1/halls")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := call(client, clientKey); err != nil || code != 200 || body != "funeral.fh01 mtls" {
		t.Fatalf("partner certificate: %d %q %v", code, body, err)
	}
	if code, _, err := call(nil, nil); err != nil || code != 401 {
		t.Fatalf("no certificate: %d %v", code, err)
	}
	if code, _, err := call(rogue, rogueKey); err == nil && code == 200 {
		t.Fatal("self-signed certificate with a partner's name was accepted")
	}
}
