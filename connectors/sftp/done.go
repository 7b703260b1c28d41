package sftp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

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

// Signer makes detached signatures of whole files (security/filesign's
// *Signer implements it: SM2 over the file with the signer's user id).
type Signer interface {
	// Sign reads r to the end and returns the DER signature.
	Sign(r io.Reader) ([]byte, error)
}

// Verifier checks detached signatures made by the partner's Signer
// (security/filesign's *Verifier implements it).
type Verifier interface {
	// Verify reads r to the end and returns nil when sig (DER, hex or
	// base64 text) is a valid signature of it.
	Verify(r io.Reader, sig []byte) error
}
