package disbursement

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// TestCSVCells: the cycle's CSV files quote what needs quoting and never
// hand a spreadsheet a formula (a bank's reason text, a name).
func TestCSVCells(t *testing.T) {
	cells := []string{"=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "\tx", "账户已销户, 请核实", "a\"b", "line\nbreak", "310101", ""}
	var buf bytes.Buffer
	w, err := newCSVFile(&buf, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.row(append([]string(nil), cells...)...); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("\uFEFF")) {
		t.Error("no byte order mark")
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte("\uFEFF")))).ReadAll()
	if err != nil || len(recs) != 2 || len(recs[1]) != len(cells) {
		t.Fatalf("read back %q: %v", recs, err)
	}
	for i, c := range cells {
		got := recs[1][i]
		switch {
		case c != "" && strings.ContainsRune("=+-@\t", rune(c[0])):
			if got != "'"+c {
				t.Errorf("cell %q written as %q: a spreadsheet runs it", c, got)
			}
		case got != c:
			t.Errorf("cell %q read back as %q", c, got)
		}
	}
}

// TestListBOM: a list saved by a spreadsheet program (byte order mark,
// CRLF line ends) reads like the plain one.
func TestListBOM(t *testing.T) {
	dir := t.TempDir()
	var plain bytes.Buffer
	if err := WriteList(&plain, GenerateOptions{Persons: 50, Seed: 2, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	saved := append([]byte("\uFEFF"), bytes.ReplaceAll(plain.Bytes(), []byte("\n"), []byte("\r\n"))...)
	read := func(data []byte) []listRecord {
		p := filepath.Join(dir, "list.csv")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out []listRecord
		if err := readList(p, func(_ int64, r *listRecord) error { out = append(out, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := read(plain.Bytes()), read(saved)
	if len(got) != 50 || len(want) != 50 {
		t.Fatalf("read %d and %d records, want 50", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: %q, want %q", i+1, got[i].f, want[i].f)
		}
	}
	if !synth.ValidID(got[0].id()) {
		t.Fatalf("first record's ID %q", got[0].id())
	}
}
