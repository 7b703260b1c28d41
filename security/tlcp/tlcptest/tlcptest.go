// Package tlcptest issues throw-away SM2 certificates (a CA, the TLCP
// listener's signing and encryption pair, client certificates) and
// builds HTTP clients speaking TLCP, for tests of the console's TLCP
// listener.
package tlcptest

import (
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tjfoc/gmsm/gmtls"
	"github.com/tjfoc/gmsm/sm2"
	"github.com/tjfoc/gmsm/x509"

	"github.com/shanghai-mca/mzhub/security"
)

// ServerName is the DNS name in the listener's certificates.
const ServerName = "console.test"

// PKI is a CA with the certificates it issued, as PEM files in Dir.
type PKI struct {
	// Dir holds NAME.crt and NAME.key for every certificate (ca, sign, enc, clients).
	Dir    string
	mu     sync.Mutex
	ca     *x509.Certificate
	caKey  *sm2.PrivateKey
	serial int64
}

// New returns a PKI with a fresh CA ("ca.crt") and the listener's
// signing ("sign") and encryption ("enc") certificates.
func New(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir()}
	p.ca, p.caKey = p.Issue(t, "ca", &x509.Certificate{Subject: name("mzhub test CA"), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature})
	p.Issue(t, "sign", &x509.Certificate{Subject: name(ServerName), DNSNames: []string{ServerName}, KeyUsage: x509.KeyUsageDigitalSignature})
	p.Issue(t, "enc", &x509.Certificate{Subject: name(ServerName), DNSNames: []string{ServerName},
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageKeyAgreement})
	return p
}

func name(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"mzhub test"}}
}

// Issue signs tmpl (serial, validity and algorithm filled in) with the CA,
// or self-signs it while the PKI has no CA yet, and writes NAME.crt and
// NAME.key.
func (p *PKI) Issue(t testing.TB, nm string, tmpl *x509.Certificate) (*x509.Certificate, *sm2.PrivateKey) {
	t.Helper()
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	parent, signer := p.ca, p.caKey
	p.mu.Unlock()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.SignatureAlgorithm = x509.SM2WithSM3
	if parent == nil {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatalf("issue %s: %v", nm, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := x509.WritePrivateKeyToPem(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p.File(nm+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, p.File(nm+".key"), kp)
	return c, key
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// File is the path of a file in Dir.
func (p *PKI) File(nm string) string { return filepath.Join(p.Dir, nm) }

// Config is the listener configuration on listen with this PKI's files.
func (p *PKI) Config(listen string) security.TLCPConfig {
	return security.TLCPConfig{Listen: listen, SignCertFile: p.File("sign.crt"), SignKeyFile: p.File("sign.key"),
		EncCertFile: p.File("enc.crt"), EncKeyFile: p.File("enc.key"), ClientCAFile: p.File("ca.crt")}
}

// Client issues a client certificate for cn (NAME.crt, NAME.key) and
// returns it as a TLCP key pair.
func (p *PKI) Client(t testing.TB, cn string) gmtls.Certificate {
	t.Helper()
	p.Issue(t, cn, &x509.Certificate{Subject: name(cn), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	kp, err := gmtls.LoadX509KeyPair(p.File(cn+".crt"), p.File(cn+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// HTTPClient is an HTTP client speaking TLCP to the listener, trusting
// this PKI's CA and presenting certs (none when empty). Requests go to
// https://ADDR/...; every request opens its own connection.
func (p *PKI) HTTPClient(t testing.TB, certs ...gmtls.Certificate) *http.Client {
	t.Helper()
	b, err := os.ReadFile(p.File("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	cfg := &gmtls.Config{GMSupport: gmtls.NewGMSupport(), RootCAs: roots, ServerName: ServerName, Certificates: certs}
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
