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

// readVerdict reads a whole file and returns the reader's verdict, or the
// read error that stopped it.
func readVerdict(t *testing.T, l *Layout, data []byte) (error, []Reject) {
	t.Helper()
	var rejects []Reject
	rd := NewReader(l, bytes.NewReader(data), ReaderOptions{OnReject: func(r Reject) {
		if !r.Warning {
			rejects = append(rejects, r)
		}
	}})
	for {
		_, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd.Verdict(), rejects
		}
		if err != nil {
			return err, rejects
		}
	}
}

// gbkBad replaces the first GBK-encoded occurrence of the character ch in
// data by the invalid double byte 81 7F (same width: a fixed-width line
// keeps its length).
func gbkBad(t *testing.T, data []byte, ch string) []byte {
	t.Helper()
	enc, err := gbkTables(true).encode(nil, ch)
	if err != nil || len(enc) != 2 {
		t.Fatalf("encode %q: %v", ch, err)
	}
	i := bytes.Index(data, enc)
	if i < 0 {
		t.Fatalf("%q not in the sample", ch)
	}
	out := bytes.Clone(data)
	out[i], out[i+1] = 0x81, 0x7F
	return out
}

// TestVerdict: the one decision, shared by the cycle and `mzhub map`, of
// whether a file may be accepted: empty, truncated, a trailer or summary
// that disagrees, or bytes invalid in the charset refuse the whole file,
// with the line of the first bad record.
func TestVerdict(t *testing.T) {
	sample := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(configRoot, "banks/testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	boc, bocom, ccb, cmb := sample("boc-disbursement-return.txt"), sample("bocom-disbursement-return.txt"),
		sample("ccb-disbursement-return.xml"), sample("cmb-disbursement-return.json")
	cases := []struct {
		layout string
		name   string
		data   []byte
		want   []error // nil: accepted
		say    string  // in the error text
	}{
		{"boc", "as sent", boc, nil, ""},
		{"boc", "empty", nil, []error{ErrRefused, ErrTrailerMismatch}, "no detail records"},
		{"boc", "truncated at a line end", boc[:bytes.LastIndex(boc[:len(boc)/2], []byte("\n"))+1], []error{ErrRefused, ErrTrailerMismatch}, "no valid trailer"},
		{"boc", "trailer count", bytes.Replace(boc, []byte("T0000000005"), []byte("T0000000004"), 1), []error{ErrRefused, ErrTrailerMismatch}, "count is 4, details give 5"},
		{"boc", "GBK 81 7F", gbkBad(t, boc, "欧"), []error{ErrRefused, ErrCharset}, "first at line 3"},
		{"bocom", "as sent", bocom, nil, ""},
		{"bocom", "empty", nil, []error{ErrRefused, ErrTrailerMismatch}, "no valid summary header"},
		{"bocom", "truncated", bocom[:bytes.LastIndex(bocom[:len(bocom)*2/3], []byte("\n"))+1], []error{ErrRefused, ErrTrailerMismatch}, "details give"},
		{"bocom", "GBK 81 7F", gbkBad(t, bocom, "欧"), []error{ErrRefused, ErrCharset}, "first at line 3"},
		{"ccb", "as sent", ccb, nil, ""},
		{"ccb", "GB18030 81 7F", gbkBad(t, ccb, "欧"), []error{ErrCharset}, "line 5"},
		{"cmb", "as sent", cmb, nil, ""},
		{"cmb", "empty array", []byte("[]\n"), []error{ErrRefused}, "no detail records"},
		{"cmb", "invalid UTF-8", bytes.Replace(cmb, []byte("张伟"), []byte("\xff\xfe伟"), 1), []error{ErrCharset}, "line 2"},
	}
	for _, tc := range cases {
		t.Run(tc.layout+"/"+tc.name, func(t *testing.T) {
			l, err := testLoader().Layout("banks/" + tc.layout + "-disbursement-return.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got, rejects := readVerdict(t, l, tc.data)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("refused: %v", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("accepted (rejects %v)", rejects)
			}
			for _, w := range tc.want {
				if !errors.Is(got, w) {
					t.Errorf("%v does not match %v", got, w)
				}
			}
			if !strings.Contains(got.Error(), tc.say) || strings.Contains(got.Error(), "\n") {
				t.Errorf("%q: want one line saying %q", got, tc.say)
			}
			if errors.Is(got, ErrCharset) && errors.Is(got, ErrRefused) {
				if len(rejects) != 1 || !rejects[0].Charset || rejects[0].Line != 3 || !strings.Contains(rejects[0].Problem, "81 7F") {
					t.Errorf("rejects %v", rejects)
				}
			}
		})
	}
}

// TestGBKInvalidPairs: double bytes outside GBK are refused, never decoded
// as U+FFFD plus a stray byte.
func TestGBKInvalidPairs(t *testing.T) {
	for _, cs := range []string{CharsetGBK, CharsetGB18030} {
		c, err := codecFor(cs)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{{0x81, 0x7F}, {0xA1, 0x7F}, {0xFE, 0x7F}, {0x81, 0xFF}, {0xFF}, {0x81, 0x20}} {
			if out, err := c.decode(nil, b); !errors.Is(err, ErrCharset) || !errors.Is(err, ErrField) {
				t.Errorf("%s % X: decoded %q, %v", cs, b, out, err)
			}
		}
		if out, err := c.decode(nil, []byte{0xD5, 0xC5}); err != nil || string(out) != "张" {
			t.Errorf("%s: 张: %q %v", cs, out, err)
		}
	}
}
