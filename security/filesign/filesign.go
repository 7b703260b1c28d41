package filesign

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
)

// DefaultUID is the SM2 signer id that GB/T 32918 and GM/T 0009 use when the
// parties agree on no other.
var DefaultUID = []byte("1234567812345678")

// SigSuffix is appended to a file's name to name its detached signature.
const SigSuffix = ".sig"

// ErrBadSignature means the signature does not match the data and key.
var ErrBadSignature = errors.New("filesign: signature does not verify")

// DigestSM3 reads r to the end and returns its SM3 digest (lower-case hex)
// and length.
func DigestSM3(r io.Reader) (string, int64, error) {
	h := sm3.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, fmt.Errorf("filesign: digest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// DigestFile returns the SM3 digest (lower-case hex) and size of a file.
func DigestFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("filesign: %w", err)
	}
	defer f.Close()
	d, n, err := DigestSM3(f)
	if err != nil {
		return "", n, fmt.Errorf("filesign: %s: %w", path, err)
	}
	return d, n, nil
}

// DigestingReader passes reads through and digests them as they go, for
// callers that stream a file somewhere (an SFTP upload) and need its digest
// for the done file without reading it twice.
type DigestingReader struct {
	r io.Reader
	h io.Writer
	s interface{ Sum([]byte) []byte }
	n int64
}

// NewDigestingReader wraps r.
func NewDigestingReader(r io.Reader) *DigestingReader {
	h := sm3.New()
	return &DigestingReader{r: r, h: h, s: h}
}

// Read reads from the wrapped reader and digests what it returns.
func (d *DigestingReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if n > 0 {
		_, _ = d.h.Write(p[:n])
		d.n += int64(n)
	}
	return n, err
}

// Sum returns the SM3 digest (lower-case hex) and length of what was read so far.
func (d *DigestingReader) Sum() (string, int64) {
	return hex.EncodeToString(d.s.Sum(nil)), d.n
}

// e computes the SM2 message digest SM3(ZA || M) over a stream with the
// library's ZA-prefixed hash (GB/T 32918.2 5.5 and 6.1).
func e(pub *ecdsa.PublicKey, uid []byte, r io.Reader) ([]byte, error) {
	h, err := sm2.NewHashWithUserID(pub, uid)
	if err != nil {
		return nil, fmt.Errorf("filesign: ZA: %w", err)
	}
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("filesign: read: %w", err)
	}
	return h.Sum(nil), nil
}

// Signer makes detached SM2 signatures.
type Signer struct {
	key *sm2.PrivateKey
	uid []byte
}

// NewSigner returns a signer for key with uid (DefaultUID when nil).
func NewSigner(key *sm2.PrivateKey, uid []byte) *Signer {
	if uid == nil {
		uid = DefaultUID
	}
	return &Signer{key: key, uid: uid}
}

// Sign reads r to the end and returns the DER-encoded SM2 signature.
func (s *Signer) Sign(r io.Reader) ([]byte, error) {
	digest, err := e(&s.key.PublicKey, s.uid, r)
	if err != nil {
		return nil, err
	}
	sig, err := sm2.SignASN1(rand.Reader, s.key, digest, nil)
	if err != nil {
		return nil, fmt.Errorf("filesign: sign: %w", err)
	}
	return sig, nil
}

// SignFile signs the file at path and writes the detached signature next to
// it (path + ".sig", base64 of the DER, one line). It returns the signature
// file's path.
func (s *Signer) SignFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("filesign: %w", err)
	}
	sig, err := s.Sign(f)
	_ = f.Close()
	if err != nil {
		return "", fmt.Errorf("filesign: %s: %w", path, err)
	}
	out := path + SigSuffix
	if err := os.WriteFile(out, EncodeSignature(sig), 0o644); err != nil {
		return "", fmt.Errorf("filesign: %w", err)
	}
	return out, nil
}

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() *ecdsa.PublicKey { return &s.key.PublicKey }

// PublicKeyPEM returns the signer's public key as a PEM "PUBLIC KEY" block,
// to hand to the bank.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	der, err := smx509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("filesign: marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// EncodeSignature renders a DER signature as a signature file's content.
func EncodeSignature(der []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(der) + "\n")
}

// DecodeSignature accepts a signature file's content: base64 or hex text of
// the DER, or the DER itself.
func DecodeSignature(b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == 0x30 {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if d, err := hex.DecodeString(s); err == nil && len(d) > 0 && d[0] == 0x30 {
		return d, nil
	}
	if d, err := base64.StdEncoding.DecodeString(s); err == nil && len(d) > 0 && d[0] == 0x30 {
		return d, nil
	}
	return nil, fmt.Errorf("%w: signature is not DER, hex or base64", ErrBadSignature)
}

// ParsePublicKeyPEM reads an SM2 public key from a PEM "PUBLIC KEY" block
// or an X.509 certificate ("CERTIFICATE").
func ParsePublicKeyPEM(b []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("filesign: no PEM block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PUBLIC KEY":
		k, err = smx509.ParsePKIXPublicKey(blk.Bytes)
	case "CERTIFICATE":
		var c *smx509.Certificate
		c, err = smx509.ParseCertificate(blk.Bytes)
		if err == nil {
			k = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("filesign: PEM block %q, want PUBLIC KEY or CERTIFICATE", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("filesign: parse public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(pub) {
		return nil, fmt.Errorf("filesign: not an SM2 public key (%T)", k)
	}
	return pub, nil
}

// Verifier checks detached SM2 signatures of one signer.
type Verifier struct {
	pub *ecdsa.PublicKey
	uid []byte
}

// NewVerifier returns a verifier for pub with uid (DefaultUID when nil).
func NewVerifier(pub *ecdsa.PublicKey, uid []byte) *Verifier {
	if uid == nil {
		uid = DefaultUID
	}
	return &Verifier{pub: pub, uid: uid}
}

// Verify reads r to the end and checks sig (a signature file's content, see
// DecodeSignature). It returns nil or an error wrapping ErrBadSignature.
func (v *Verifier) Verify(r io.Reader, sig []byte) error {
	der, err := DecodeSignature(sig)
	if err != nil {
		return err
	}
	digest, err := e(v.pub, v.uid, r)
	if err != nil {
		return err
	}
	if !sm2.VerifyASN1(v.pub, digest, der) {
		return ErrBadSignature
	}
	return nil
}

// VerifyFile checks the file at path against its detached signature file
// (path + ".sig" when sigPath is empty).
func (v *Verifier) VerifyFile(path, sigPath string) error {
	if sigPath == "" {
		sigPath = path + SigSuffix
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		return fmt.Errorf("filesign: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("filesign: %w", err)
	}
	defer f.Close()
	if err := v.Verify(f, sig); err != nil {
		return fmt.Errorf("filesign: %s: %w", path, err)
	}
	return nil
}
