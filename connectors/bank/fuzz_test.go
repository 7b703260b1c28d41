package bank

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/shanghai-mca/mzhub/mappings"
)

// accountLayouts compiles every bank's account request and result layouts.
func accountLayouts(f *testing.F) []*mappings.Layout {
	cfgs, err := LoadConfigs(filepath.Join("..", "..", "configs", "partners", "banks"))
	if err != nil {
		f.Fatal(err)
	}
	var out []*mappings.Layout
	for _, c := range cfgs {
		fs, err := LoadFileSet(os.DirFS(mappingsRoot), c.Layouts)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, fs.Account, fs.AccountReturn)
	}
	return out
}

// FuzzReadAccountFiles feeds arbitrary bytes to the readers of every bank's
// account request and result layouts: no panic, every record handed over
// has a valid operation and a reference, and results a known outcome.
func FuzzReadAccountFiles(f *testing.F) {
	ls := accountLayouts(f)
	for i, l := range ls {
		b, err := os.ReadFile(filepath.Join(mappingsRoot, "banks", "testdata", l.Name+Ext(l)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)/2])
	}
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		l := ls[int(which)%len(ls)]
		if l.Detail.Index("status") >= 0 {
			_, _ = ReadAccountResults(l, bytes.NewReader(data), nil, func(r *AccountResult) error {
				if !r.Op.Valid() || r.Reference == "" || r.Outcome == "" {
					t.Fatalf("%s: bad result handed over: op %q ref %q outcome %q", l.Name, r.Op, r.Reference, r.Outcome)
				}
				return nil
			})
			return
		}
		_, _ = ReadAccountRequests(l, bytes.NewReader(data), nil, func(q *AccountRequest) error {
			if !q.Op.Valid() || q.Reference == "" || q.PersonID == "" {
				t.Fatalf("%s: bad request handed over: op %q ref %q", l.Name, q.Op, q.Reference)
			}
			return nil
		})
	})
}
