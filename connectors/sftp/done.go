package sftp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
)

// DoneInfo is the content of a done file: it announces that its data file
// is complete and says what it holds. The text form is one key=value per
// line: file, bytes, records, total_fen, sm3.
type DoneInfo struct {
	// File is the base name of the data file.
	File string
	// Bytes is the data file's size.
	Bytes int64
	// Records is the number of detail records.
	Records int64
	// TotalFen is the sum of the amounts in fen.
	TotalFen int64
	// SM3 is the hex SM3 digest of the data file.
	SM3 string
}

// Marshal returns the text form.
func (d DoneInfo) Marshal() []byte {
	return fmt.Appendf(nil, "file=%s\nbytes=%d\nrecords=%d\ntotal_fen=%d\nsm3=%s\n", d.File, d.Bytes, d.Records, d.TotalFen, d.SM3)
}

// ParseDone reads the text form. Unknown keys are ignored; file and sm3 are
// required.
func ParseDone(b []byte) (DoneInfo, error) {
	var d DoneInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return DoneInfo{}, fmt.Errorf("%w: line %d: no '='", ErrDoneFile, n)
		}
		var err error
		switch k {
		case "file":
			d.File = v
		case "bytes":
			d.Bytes, err = strconv.ParseInt(v, 10, 64)
		case "records":
			d.Records, err = strconv.ParseInt(v, 10, 64)
		case "total_fen":
			d.TotalFen, err = strconv.ParseInt(v, 10, 64)
		case "sm3":
			if _, herr := hex.DecodeString(v); herr != nil || len(v) != 64 {
				err = fmt.Errorf("not 64 hex digits")
			}
			d.SM3 = strings.ToLower(v)
		}
		if err != nil {
			return DoneInfo{}, fmt.Errorf("%w: line %d: %s: %v", ErrDoneFile, n, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return DoneInfo{}, fmt.Errorf("%w: %v", ErrDoneFile, err)
	}
	if d.File == "" || d.SM3 == "" {
		return DoneInfo{}, fmt.Errorf("%w: file and sm3 are required", ErrDoneFile)
	}
	return d, nil
}

// DigestFile returns the hex SM3 digest and the size of a local file.
func DigestFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sm3.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("digest %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Signer makes detached signatures over a file's SM3 digest (the security
// package's key provider implements it in production).
type Signer interface {
	// SignDigest signs the raw SM3 digest of a file.
	SignDigest(digest []byte) ([]byte, error)
}

// Verifier checks detached signatures made by a Signer.
type Verifier interface {
	// VerifyDigest returns nil when sig is a valid signature of digest.
	VerifyDigest(digest, sig []byte) error
}

// SM2Key signs and verifies with an SM2 key pair (ASN.1 signatures over the
// file's SM3 digest).
type SM2Key struct {
	// Private may be nil for a verify-only key.
	Private *sm2.PrivateKey
}

var (
	_ Signer   = SM2Key{}
	_ Verifier = SM2Key{}
)

// SignDigest signs digest.
func (k SM2Key) SignDigest(digest []byte) ([]byte, error) {
	if k.Private == nil {
		return nil, fmt.Errorf("sm2: no private key")
	}
	return sm2.SignASN1(rand.Reader, k.Private, digest, nil)
}

// VerifyDigest verifies sig over digest.
func (k SM2Key) VerifyDigest(digest, sig []byte) error {
	if k.Private == nil || !sm2.VerifyASN1(&k.Private.PublicKey, digest, sig) {
		return ErrSignature
	}
	return nil
}
