package main

import (
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tjfoc/gmsm/sm2"
	"github.com/tjfoc/gmsm/x509"
)

// sm2Cert writes a certificate for cn issued by parent (self-signed when
// nil) to path and returns it with its key.
func sm2Cert(t *testing.T, path, cn string, serial int64, parent *x509.Certificate, parentKey *sm2.PrivateKey) (*x509.Certificate, *sm2.PrivateKey) {
	t.Helper()
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), SignatureAlgorithm: x509.SM2WithSM3,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage, tmpl.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestUserCertMapping: cert-add maps a certificate from the configured CA
// to one account (a second mapping and a certificate from another CA are
// refused), cert-list shows it, cert-remove removes it by file or
// fingerprint, and every change is in the audit log.
func TestUserCertMapping(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := sm2Cert(t, filepath.Join(dir, "ca.crt"), "mzhub admin CA", 1, nil, nil)
	sm2Cert(t, filepath.Join(dir, "admin.crt"), "secadmin-ukey", 2, ca, caKey)
	other, otherKey := sm2Cert(t, filepath.Join(dir, "other-ca.crt"), "another CA", 3, nil, nil)
	sm2Cert(t, filepath.Join(dir, "stray.crt"), "stray", 4, other, otherKey)
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + filepath.Join(dir, "mzhub.db") +
		"\nsecurity:\n  key_provider: file\n  key_dir: " + filepath.Join(dir, "keys") +
		"\n  console:\n    tlcp:\n      client_ca_file: " + filepath.Join(dir, "ca.crt") + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := cliWith(t, cfgPath)
	run(0, "keys", "init")
	run(0, "user", "add", "--name", "secadmin2", "--role", "security-admin")
	run(0, "user", "add", "--name", "ops1", "--role", "operator")
	out := run(0, "user", "cert-add", "--name", "secadmin2", "--cert", filepath.Join(dir, "admin.crt"))
	fp := regexp.MustCompile(`fingerprint: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if fp == nil || !strings.Contains(out, "secadmin-ukey") {
		t.Fatalf("cert-add: %s", out)
	}
	run(1, "user", "cert-add", "--name", "ops1", "--cert", filepath.Join(dir, "admin.crt"))   // mapped already
	run(1, "user", "cert-add", "--name", "ops1", "--cert", filepath.Join(dir, "stray.crt"))   // another CA
	run(1, "user", "cert-add", "--name", "nobody", "--cert", filepath.Join(dir, "admin.crt")) // no such user
	run(2, "user", "cert-add", "--name", "ops1")
	if out := run(0, "user", "cert-list"); !strings.Contains(out, fp[1]) || !strings.Contains(out, "secadmin2") || strings.Contains(out, "ops1") {
		t.Fatalf("cert-list: %s", out)
	}
	run(1, "user", "cert-remove", "--name", "ops1", "--fingerprint", fp[1]) // not ops1's
	run(0, "user", "cert-remove", "--name", "secadmin2", "--fingerprint", fp[1])
	if out := run(0, "user", "cert-list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("cert-list after removal: %s", out)
	}
	run(0, "user", "cert-add", "--name", "secadmin2", "--cert", filepath.Join(dir, "admin.crt"))
	run(0, "user", "cert-remove", "--name", "secadmin2", "--cert", filepath.Join(dir, "admin.crt"))
	audit := run(0, "audit", "list", "--action", "account.cert_add", "--json") + run(0, "audit", "list", "--action", "account.cert_remove", "--json")
	for _, want := range []string{`"success"`, `"failure"`, fp[1][:16]} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit of certificate mappings lacks %s:\n%s", want, audit)
		}
	}
}
