package mappings

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// fuzzRead reads data with l and writes every accepted record back. It
// must never panic, and the record limit must hold.
func fuzzRead(t *testing.T, l *Layout, data []byte) {
	rd := NewReader(l, bytes.NewReader(data), ReaderOptions{MaxRecordBytes: 4096, OnReject: func(r Reject) {
		if r.Problem == "" {
			t.Errorf("reject without a problem at line %d", r.Line)
		}
	}})
	w := NewWriter(l, io.Discard, WriterOptions{})
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return // framing errors of JSON/XML end the file
		}
		if rec.Kind == KindDetail {
			_ = PaymentFromRecord(rec)
		}
		_ = w.Write(rec) // may fail (order, validation) but must not panic
	}
	check, verdict := rd.Check(), rd.Verdict()
	if check != nil && (verdict == nil || !errors.Is(verdict, ErrRefused)) {
		t.Errorf("trailer check failed (%v) but the verdict is %v", check, verdict)
	}
	_ = w.Close()
	s := rd.Summary()
	if s.Details > s.DetailLines {
		t.Errorf("more details accepted (%d) than seen (%d)", s.Details, s.DetailLines)
	}
}

func fuzzSetup(f *testing.F, layout string, samples ...string) *Layout {
	l, err := testLoader().Layout(layout)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range samples {
		data, err := os.ReadFile(filepath.Join(configRoot, s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if len(data) > 40 {
			f.Add(data[:len(data)/2])
		}
	}
	return l
}

func FuzzFixedWidth(f *testing.F) {
	boc := fuzzSetup(f, "banks/boc-disbursement.yaml", "banks/testdata/boc-disbursement.txt", "banks/testdata/ceb-disbursement.txt")
	ceb, err := testLoader().Layout("banks/ceb-disbursement.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("D\xc5\r\nT\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, boc, data)
		fuzzRead(t, ceb, data) // GB18030 four-byte sequences
	})
}

func FuzzDelimited(f *testing.F) {
	ccb := fuzzSetup(f, "banks/ccb-disbursement.yaml", "banks/testdata/ccb-disbursement.txt", "banks/testdata/cmb-disbursement.csv", "banks/testdata/bocom-disbursement.txt")
	cmb, err := testLoader().Layout("banks/cmb-disbursement.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("\"a\"\"b\",\"c\n\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, ccb, data)
		fuzzRead(t, cmb, data)
	})
}

func FuzzJSON(f *testing.F) {
	l := fuzzSetup(f, "banks/cmb-disbursement-return.yaml", "banks/testdata/cmb-disbursement-return.json")
	f.Add([]byte(`[{"refNo":1},{"amount":"1.234"},[],"x"]`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, l, data) })
}

func FuzzXML(f *testing.F) {
	l := fuzzSetup(f, "banks/ccb-disbursement-return.yaml", "banks/testdata/ccb-disbursement-return.xml")
	f.Add([]byte(`<CCBReturn><Item><TxnRef>a</TxnRef><Item/></CCBReturn>`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, l, data) })
}

// FuzzLayoutSpec feeds arbitrary YAML to the strict loader and linter:
// errors are fine, panics are not.
func FuzzLayoutSpec(f *testing.F) {
	for _, name := range []string{"banks/boc-disbursement.yaml", "banks/ccb-disbursement.yaml", "banks/boc-disbursement.mapping.yaml", "codetables/boc-status.yaml"} {
		data, err := os.ReadFile(filepath.Join(configRoot, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"f.yaml":  {Data: data},
			"t.yaml":  {Data: []byte("kind: codetable\nname: t\ncodes:\n  - {code: A}\n")},
			"l2.yaml": {Data: []byte("kind: layout\nname: l\nformat: delimited\nseparator: \",\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string}\n")},
		}
		ld := NewLoader(fsys)
		_ = LintFS(ld, "f.yaml")
		if l, err := ld.Layout("f.yaml"); err == nil {
			fuzzRead(t, l, []byte("a,b\nc\n"))
		}
	})
}
