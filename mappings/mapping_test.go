package mappings

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedMappings runs every test declared in the shipped mapping
// files (canonical CSV to each bank file and each return file back).
func TestShippedMappings(t *testing.T) {
	ld := testLoader()
	if *update {
		// The canonical sample every outgoing mapping starts from.
		l, err := ld.Layout("canonical/payment.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := NewWriter(l, &buf, WriterOptions{})
		for _, p := range samplePayments(false) {
			r := NewRecord(l.Detail)
			if err := p.ToRecord(r); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(configRoot, "canonical/testdata/payments.csv"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := fs.Glob(ld.FS(), "banks/*.mapping.yaml")
	if err != nil || len(files) != 24 {
		t.Fatalf("want 24 bank mappings, found %d (%v)", len(files), err)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			m, err := ld.Mapping(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Tests) == 0 {
				t.Fatal("mapping declares no test")
			}
			for i, tc := range m.Tests {
				got, want, err := m.RunTest(context.Background(), i)
				if err != nil {
					t.Fatal(err)
				}
				if *update && strings.HasPrefix(path.Join(path.Dir(name), tc.Expect), "canonical/") {
					if err := os.WriteFile(filepath.Join(configRoot, path.Join(path.Dir(name), tc.Expect)), got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("test %d (%s): output differs from %s:\n got %q\nwant %q", i, tc.Input, tc.Expect, got, want)
				}
			}
		})
	}
}
