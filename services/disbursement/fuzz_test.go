package disbursement

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadList feeds arbitrary list files to the list reader: it must not
// panic, must number the records from 1 without gaps, and must give each
// record at most the list's nine columns.
func FuzzReadList(f *testing.F) {
	f.Add([]byte(ListHeader + "\n310101192501010008,王伟,6216610000000000000,boc,310101,7500,A65,2026-10,\n"))
	f.Add([]byte("a,b\n\n,,,,,,,,,,,,\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "list.csv")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var last int64
		err := readList(p, func(seq int64, r *listRecord) error {
			if seq != last+1 || r.n > len(r.f) {
				t.Fatalf("seq %d after %d, %d columns", seq, last, r.n)
			}
			last = seq
			_ = r.amount()
			return nil
		})
		if err != nil && !bytes.Contains(data, []byte("\n")) && len(data) < 1<<20 {
			t.Fatalf("small single-line input failed: %v", err)
		}
	})
}
