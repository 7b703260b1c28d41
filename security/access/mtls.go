package access

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// ClientTLSConfig returns a server TLS configuration for the partner
// listener that asks for client certificates and verifies those given
// against the partner CA bundle caPEM, without requiring one (partners that
// sign requests send none). The middleware then maps a verified
// certificate's subject common name to a partner (mtls_subjects). Add the
// server certificate to the result.
func ClientTLSConfig(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("access: no CA certificate in the partner CA bundle")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}, nil
}
