package mappings

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// ccbParts writes the sample returns as CCB XML parts: part k gets the
// payments with index in idx[k], in that (non-sent) order.
func ccbParts(t *testing.T, l *Layout, total int64, idx ...[]int) []io.Reader {
	t.Helper()
	ps := samplePayments(true)
	var out []io.Reader
	for k, ix := range idx {
		var buf bytes.Buffer
		w := NewWriter(l, &buf, WriterOptions{})
		h := NewRecord(l.Header)
		for _, kv := range [][2]string{{"batch_no", "MZ1"}, {"file_date", "2026-11-28"}} {
			if err := h.Set(kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		_ = h.Set("part_no", int64(k+1))
		_ = h.Set("part_total", total)
		if err := w.Write(h); err != nil {
			t.Fatal(err)
		}
		for _, i := range ix {
			r := NewRecord(l.Detail)
			if err := ps[i].ToRecord(r); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out = append(out, &buf)
	}
	return out
}

func TestReadReturnsCCBSplit(t *testing.T) {
	l, err := testLoader().Layout("banks/ccb-disbursement-return.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		total int64
		parts [][]int
		want  error
		n     int
	}{
		{"two parts out of order", 2, [][]int{{4, 1, 2}, {0, 3}}, nil, 5},
		{"missing part", 3, [][]int{{4, 1, 2}, {0, 3}}, ErrIncompleteReturn, 5},
		{"single file", 1, [][]int{{0, 1, 2, 3, 4}}, nil, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]PaymentRecord{}
			parts, err := ReadReturns(context.Background(), l, ccbParts(t, l, tc.total, tc.parts...), ReaderOptions{}, func(_ int64, p PaymentRecord) error {
				got[p.Reference] = p
				return nil
			})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(got) != tc.n || len(parts) != len(tc.parts) {
				t.Fatalf("got %d returns in %d parts", len(got), len(parts))
			}
			// Matched by reference, whatever the order.
			for _, p := range samplePayments(true) {
				g := got[p.Reference]
				if g.Status != p.Status || g.AmountFen != p.AmountFen || g.Account != p.Account {
					t.Errorf("%s: got %+v", p.Reference, g)
				}
			}
		})
	}
}

// TestReadReturnsPartTrailer: one part whose summary disagrees makes the
// set unacceptable.
func TestReadReturnsPartTrailer(t *testing.T) {
	l, err := testLoader().Layout("banks/ccb-disbursement-return.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parts := ccbParts(t, l, 2, []int{0, 1}, []int{2, 3, 4})
	b := parts[1].(*bytes.Buffer)
	bad := bytes.Replace(b.Bytes(), []byte("<Count>3</Count>"), []byte("<Count>4</Count>"), 1)
	parts[1] = bytes.NewReader(bad)
	_, err = ReadReturns(context.Background(), l, parts, ReaderOptions{}, func(int64, PaymentRecord) error { return nil })
	if !errors.Is(err, ErrTrailerMismatch) {
		t.Fatalf("err = %v", err)
	}
}
