package filesign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
)

func hexInt(s string) *big.Int {
	b, _ := new(big.Int).SetString(s, 16)
	return b
}

// TestKnownAnswers checks SM3 and SM2 against published vectors.
func TestKnownAnswers(t *testing.T) {
	// GB/T 32905-2016 appendix A.1: SM3("abc").
	d, n, err := DigestSM3(strings.NewReader("abc"))
	if err != nil || n != 3 || d != "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0" {
		t.Fatalf("SM3(abc) = %s", d)
	}
	// GB/T 32905-2016 appendix A.2: SM3 of "abcd" repeated 16 times (512 bits).
	d, _, _ = DigestSM3(strings.NewReader(strings.Repeat("abcd", 16)))
	if d != "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732" {
		t.Fatalf("SM3(abcd*16) = %s", d)
	}
	// SM2 signature example on the recommended curve (GB/T 32918.5 / GM/T
	// 0003.5 style test data): key, message "message digest", id
	// "1234567812345678", signature (r, s).
	pub := &ecdsa.PublicKey{
		Curve: sm2.P256(),
		X:     hexInt("09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"),
		Y:     hexInt("CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"),
	}
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{
		hexInt("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"),
		hexInt("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"),
	})
	v := NewVerifier(pub, nil)
	if err := v.Verify(strings.NewReader("message digest"), der); err != nil {
		t.Fatalf("published SM2 signature: %v", err)
	}
	if err := v.Verify(strings.NewReader("message digesT"), der); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered message: %v", err)
	}
	if err := NewVerifier(pub, []byte("ALICE123@YAHOO.COM")).Verify(strings.NewReader("message digest"), der); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other uid: %v", err)
	}
}

func TestSignFile(t *testing.T) {
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "BOC_20261127_001.txt")
	data := bytes.Repeat([]byte("H|310101********1234|张*|44000\n"), 10000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewSigner(key, nil)
	sigPath, err := s.SignFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(s.PublicKey(), nil)
	if err := v.VerifyFile(path, ""); err != nil {
		t.Fatal(err)
	}
	// The streamed signature is a standard SM2 signature of the whole file.
	sigText, _ := os.ReadFile(sigPath)
	der, err := DecodeSignature(sigText)
	if err != nil {
		t.Fatal(err)
	}
	if !sm2.VerifyASN1WithSM2(s.PublicKey(), nil, data, der) {
		t.Fatal("gmsm's one-shot verification rejects the streamed signature")
	}
	// Hex and DER signature files are accepted too.
	for _, alt := range [][]byte{der, []byte(hex.EncodeToString(der) + "\r\n")} {
		if err := v.Verify(bytes.NewReader(data), alt); err != nil {
			t.Fatalf("alt encoding: %v", err)
		}
	}
	// One changed byte is caught.
	data[100] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyFile(path, ""); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered file: %v", err)
	}
	// Public key round trip through PEM.
	pemBytes, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pemBytes)
	if err != nil || !pub.Equal(s.PublicKey()) {
		t.Fatalf("PEM round trip: %v", err)
	}
	if _, err := DecodeSignature([]byte("not a signature")); !errors.Is(err, ErrBadSignature) {
		t.Fatal(err)
	}
}

func TestDigestingReader(t *testing.T) {
	data := strings.Repeat("0123456789", 1000)
	r := NewDigestingReader(strings.NewReader(data))
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	got, n := r.Sum()
	want, _, _ := DigestSM3(strings.NewReader(data))
	if got != want || n != int64(len(data)) {
		t.Fatalf("%s %d", got, n)
	}
}

// TestOpenSSLInterop verifies a hub signature with OpenSSL's SM2 when the
// local openssl supports it (OpenSSL 3).
func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	key, _ := sm2.GenerateKey(rand.Reader)
	s := NewSigner(key, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	_ = os.WriteFile(path, []byte("batch file body\n"), 0o644)
	sig, _ := s.Sign(strings.NewReader("batch file body\n"))
	_ = os.WriteFile(filepath.Join(dir, "f.der"), sig, 0o644)
	pemBytes, _ := s.PublicKeyPEM()
	_ = os.WriteFile(filepath.Join(dir, "pub.pem"), pemBytes, 0o644)
	out, err := exec.Command("openssl", "dgst", "-sm3", "-verify", filepath.Join(dir, "pub.pem"),
		"-signature", filepath.Join(dir, "f.der"), "-sigopt", "distid:1234567812345678", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "nsupported") {
		t.Skipf("openssl without SM2: %s", out)
	}
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl: %v: %s", err, out)
	}
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add([]byte("MEUCIQ=="))
	f.Add([]byte{0x30, 0x02, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		der, err := DecodeSignature(b)
		if err == nil && (len(der) == 0 || der[0] != 0x30) {
			t.Fatalf("accepted %x as DER %x", b, der)
		}
	})
}
