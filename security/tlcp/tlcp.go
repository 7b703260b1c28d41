package tlcp

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/emmansun/gmsm/sm3"
	"github.com/tjfoc/gmsm/gmtls"
	"github.com/tjfoc/gmsm/x509"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/accounts"
)

// ServerConfig loads the listener's certificates and returns the TLCP
// server configuration: TLCP only (no TLS fallback), the signing and the
// encryption certificate, and client certificates required and verified
// against the configured CA.
func ServerConfig(c security.TLCPConfig) (*gmtls.Config, error) {
	sign, err := gmtls.LoadX509KeyPair(c.SignCertFile, c.SignKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlcp: signing certificate %s: %w", c.SignCertFile, err)
	}
	enc, err := gmtls.LoadX509KeyPair(c.EncCertFile, c.EncKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlcp: encryption certificate %s: %w", c.EncCertFile, err)
	}
	pool, err := loadPool(c.ClientCAFile)
	if err != nil {
		return nil, err
	}
	return &gmtls.Config{
		GMSupport:    gmtls.NewGMSupport(),
		Certificates: []gmtls.Certificate{sign, enc},
		ClientAuth:   gmtls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlcp: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlcp: client CA %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Listen opens the TLCP listener of c on its address.
func Listen(c security.TLCPConfig) (net.Listener, error) {
	cfg, err := ServerConfig(c)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("tlcp: listen %s: %w", c.Listen, err)
	}
	return gmtls.NewListener(ln, cfg), nil
}

type connKey struct{}

// ConnContext is the http.Server ConnContext of the TLCP listener: it
// keeps the connection so that Handler can read its peer certificate.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*gmtls.Conn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// Fingerprint is the lower-case hex SM3 of a certificate's DER: what
// `mzhub user cert-add` stores and a login is matched by.
func Fingerprint(der []byte) string {
	d := sm3.Sum(der)
	return hex.EncodeToString(d[:])
}

func clientCert(c *x509.Certificate) accounts.ClientCert {
	return accounts.ClientCert{Fingerprint: Fingerprint(c.Raw), Subject: c.Subject.String(), NotAfter: c.NotAfter.UTC()}
}

// Handler serves next over the TLCP listener: only the console (paths
// under /console/; anything else is 404), and every request carries the
// verified client certificate for the login (accounts.WithClientCert). A
// request without one, which the handshake should have refused already,
// gets 403.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/console" && !strings.HasPrefix(r.URL.Path, "/console/") {
			problem.Write(w, r, problem.NotFound("the TLCP listener serves the console only"))
			return
		}
		tc, _ := r.Context().Value(connKey{}).(*gmtls.Conn)
		if tc == nil {
			problem.Write(w, r, problem.Forbidden("no TLCP client certificate"))
			return
		}
		st := tc.ConnectionState()
		if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
			problem.Write(w, r, problem.Forbidden("no TLCP client certificate"))
			return
		}
		next.ServeHTTP(w, r.WithContext(accounts.WithClientCert(r.Context(), clientCert(st.PeerCertificates[0]))))
	})
}

// ErrNoCertificate: the file holds no PEM certificate.
var ErrNoCertificate = errors.New("tlcp: no PEM CERTIFICATE block")

// ReadCert reads the first PEM certificate of b (an SM2 certificate, as a
// USB key exports it) for mapping to a user. With caFile set the
// certificate must chain to it for client authentication, as the
// listener will require.
func ReadCert(b []byte, caFile string) (accounts.ClientCert, error) {
	var blk *pem.Block
	for {
		blk, b = pem.Decode(b)
		if blk == nil {
			return accounts.ClientCert{}, ErrNoCertificate
		}
		if blk.Type == "CERTIFICATE" {
			break
		}
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return accounts.ClientCert{}, fmt.Errorf("tlcp: parse certificate: %w", err)
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return accounts.ClientCert{}, err
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return accounts.ClientCert{}, fmt.Errorf("tlcp: certificate does not chain to %s for client authentication: %w", caFile, err)
		}
	}
	return clientCert(c), nil
}
