package mappings

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func bocSample(t *testing.T) (*Layout, [][]byte) {
	t.Helper()
	l, err := testLoader().Layout("banks/boc-disbursement.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(configRoot, "banks/testdata/boc-disbursement.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\r\n")), []byte("\r\n"))
	return l, lines
}

func readAll(t *testing.T, l *Layout, data []byte) (details []PaymentRecord, rejects []Reject, rd *Reader) {
	t.Helper()
	rd = NewReader(l, bytes.NewReader(data), ReaderOptions{OnReject: func(r Reject) {
		r.Raw = append([]byte(nil), r.Raw...)
		rejects = append(rejects, r)
	}})
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return details, rejects, rd
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindDetail {
			details = append(details, PaymentFromRecord(rec))
		}
	}
}

// TestReaderRejectsAndGoesOn breaks one detail in several ways and checks
// that the reject names the line, the field and the problem with a masked
// excerpt, and that every other record is still read.
func TestReaderRejectsAndGoesOn(t *testing.T) {
	l, lines := bocSample(t)
	gbk := func(s string) []byte { b, _ := gbkTables(false).encode(nil, s); return b }
	cases := []struct {
		name    string
		mutate  func(line []byte) []byte
		field   string
		problem string
		hidden  string // must not appear in the excerpt
	}{
		{"bad ID check digit", func(b []byte) []byte { b[87] = '9'; return b }, "person_id", "check character", "310115195507093219"},
		{"amount not a number", func(b []byte) []byte { copy(b[88:], "00000000X000"); return b }, "amount", "not an integer", ""},
		{"short line", func(b []byte) []byte { return b[:100] }, "", "100 bytes", "310115195507093214"},
		{"unknown record type", func(b []byte) []byte { b[0] = 'X'; return b }, "", "unknown record type", "6222620010002345679"},
		{"bad period", func(b []byte) []byte { copy(b[100:], "202613"); return b }, "period", "not a valid date", ""},
		{"multibyte split", func(b []byte) []byte {
			// name field (bytes 48-67) ends with a GBK lead byte.
			name := gbk("欧阳秀英")
			copy(b[48:68], bytes.Repeat([]byte{' '}, 20))
			copy(b[48:], name)
			b[67] = 0xC5
			return b
		}, "name", "multibyte", ""},
		{"not in code table", func(b []byte) []byte { copy(b[68:], "99"); return b }, "id_type", "code not in table", ""},
		{"division outside Shanghai", func(b []byte) []byte { copy(b[106:], "320101"); return b }, "division", "Shanghai division", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			for i, line := range lines {
				line = append([]byte(nil), line...)
				if i == 2 { // second detail, file line 3
					line = tc.mutate(line)
				}
				buf.Write(line)
				buf.WriteString("\r\n")
			}
			details, rejects, rd := readAll(t, l, buf.Bytes())
			if len(details) != 4 {
				t.Errorf("read %d details, want the 4 good ones", len(details))
			}
			var hard []Reject
			for _, r := range rejects {
				if !r.Warning {
					hard = append(hard, r)
				}
			}
			if len(hard) != 1 {
				t.Fatalf("want 1 reject, got %v", rejects)
			}
			r := hard[0]
			if r.Line != 3 || r.Field != tc.field || !strings.Contains(r.Problem, tc.problem) {
				t.Errorf("reject %s: want line 3 field %q problem ~%q", r, tc.field, tc.problem)
			}
			if tc.hidden != "" && strings.Contains(r.String(), tc.hidden) {
				t.Errorf("reject shows a whole number: %s", r)
			}
			if len(r.Raw) == 0 {
				t.Error("reject has no raw line for the reject file")
			}
			s := rd.Summary()
			if s.Rejected != 1 || s.Details != 4 || s.Warnings != 1 {
				t.Errorf("summary %+v", s)
			}
		})
	}
}

// TestReaderTrailerCheck makes the trailer disagree with the details.
func TestReaderTrailerCheck(t *testing.T) {
	l, lines := bocSample(t)
	cases := []struct {
		name    string
		trailer string
		want    string
	}{
		{"matches", "T0000000005000000000350050", ""},
		{"count", "T0000000006000000000350050", "count is 6, details give 5"},
		{"total", "T0000000005000000000350051", "total is 3500.51 yuan, details give 3500.50 yuan"},
		{"missing", "", "no valid trailer"},
		{"DOS end-of-file mark after the trailer", "T0000000005000000000350050\r\n\x1a", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			for _, line := range lines[:len(lines)-1] {
				buf.Write(line)
				buf.WriteString("\r\n")
			}
			buf.WriteString(tc.trailer)
			_, rejects, rd := readAll(t, l, buf.Bytes())
			for _, r := range rejects {
				if !r.Warning {
					t.Errorf("unexpected reject %s", r)
				}
			}
			err := rd.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrTrailerMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReaderLuhnWarning: a passbook account failing Luhn is accepted with a
// warning whose excerpt shows only the last 4 digits.
func TestReaderLuhnWarning(t *testing.T) {
	l, lines := bocSample(t)
	details, rejects, _ := readAll(t, l, append(bytes.Join(lines, []byte("\r\n")), "\r\n"...))
	if len(details) != 5 || len(rejects) != 1 || !rejects[0].Warning || rejects[0].Field != "account" {
		t.Fatalf("details %d, rejects %v", len(details), rejects)
	}
	if rejects[0].Excerpt != "************9012" {
		t.Errorf("excerpt %q", rejects[0].Excerpt)
	}
}

// TestReaderLongLine: a line above the limit is rejected, not buffered.
func TestReaderLongLine(t *testing.T) {
	l, lines := bocSample(t)
	var buf bytes.Buffer
	buf.Write(lines[0])
	buf.WriteString("\r\n")
	buf.Write(bytes.Repeat([]byte("D"), 5000))
	buf.WriteString("\r\n")
	for _, line := range lines[1:] {
		buf.Write(line)
		buf.WriteString("\r\n")
	}
	var rejects []Reject
	rd := NewReader(l, &buf, ReaderOptions{MaxRecordBytes: 1000, OnReject: func(r Reject) { rejects = append(rejects, r) }})
	n := 0
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindDetail {
			n++
		}
	}
	if n != 5 || rejects[0].Line != 2 || !strings.Contains(rejects[0].Problem, "longer than 1000") {
		t.Errorf("details %d, rejects %v", n, rejects)
	}
}
