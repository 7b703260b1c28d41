package mappings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// canonicalCSV writes n canonical payments; amount(i) gives the fen.
func canonicalCSV(t testing.TB, n int, amount func(i int) int64) []byte {
	t.Helper()
	l, err := testLoader().Layout("canonical/payment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(l, &buf, WriterOptions{})
	ps := samplePayments(false)
	r := NewRecord(l.Detail)
	for i := 0; i < n; i++ {
		p := ps[i%len(ps)]
		p.Reference = fmt.Sprintf("MZ%016d", i)
		p.AmountFen = amount(i)
		r.Reset()
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
	return buf.Bytes()
}

// TestConvertRejectsAcrossBatches: records the target refuses (amount above
// the BOC maximum) are rejected with their source line while the others,
// spread over many batches, are written in order with a correct trailer.
func TestConvertRejectsAcrossBatches(t *testing.T) {
	m, err := testLoader().Mapping("banks/boc-disbursement.mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * convBatchSize * convBatches / 2
	in := canonicalCSV(t, n, func(i int) int64 {
		if i%100 == 7 {
			return 20000000 // above the BOC maximum of 100000.00 yuan
		}
		return 100
	})
	var out bytes.Buffer
	var rejects []Reject
	res, err := m.Convert(context.Background(), bytes.NewReader(in), &out, ConvertOptions{
		Params: map[string]string{"batch_no": "B1", "file_date": "2026-11-27", "payer_account": "123"},
		OnReject: func(r Reject) {
			if !r.Warning {
				r.Raw = append([]byte(nil), r.Raw...)
				rejects = append(rejects, r)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRej := 0
	for i := 0; i < n; i++ {
		if i%100 == 7 {
			wantRej++
		}
	}
	if len(rejects) != wantRej || res.Rejected != int64(wantRej) || res.Written != int64(n-wantRej) {
		t.Fatalf("rejects %d (result %d), written %d; want %d rejects", len(rejects), res.Rejected, res.Written, wantRej)
	}
	for k, r := range rejects {
		// Source line = column row + record index + 1.
		if want := int64(k*100 + 7 + 2); r.Line != want || r.Field != "amount" || !bytes.Contains(r.Raw, []byte(fmt.Sprintf("MZ%016d", k*100+7))) {
			t.Fatalf("reject %d: %s raw %q, want line %d", k, r, r.Raw, want)
		}
	}
	if res.WrittenFen != int64(n-wantRej)*100 {
		t.Errorf("written total %d", res.WrittenFen)
	}
	// The output reads back with a matching trailer and in input order.
	l := m.Target
	rd := NewReader(l, &out, ReaderOptions{})
	prev := int64(-1)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindDetail {
			var i int64
			fmt.Sscanf(strings.TrimPrefix(rec.Str("reference"), "MZ"), "%d", &i)
			if i <= prev {
				t.Fatalf("record %d after %d: order lost", i, prev)
			}
			prev = i
		}
	}
	if err := rd.Check(); err != nil {
		t.Error(err)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n += len(p)
	if f.n > 100000 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestConvertWriteError: an I/O error stops the conversion with an error
// (and does not hang the pipeline).
func TestConvertWriteError(t *testing.T) {
	m, err := testLoader().Mapping("banks/boc-disbursement.mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := canonicalCSV(t, 20000, func(int) int64 { return 100 })
	_, err = m.Convert(context.Background(), bytes.NewReader(in), &failingWriter{}, ConvertOptions{
		Params: map[string]string{"batch_no": "B1", "file_date": "2026-11-27", "payer_account": "123"}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
}

// TestConvertCancel: a cancelled context stops the conversion.
func TestConvertCancel(t *testing.T) {
	m, err := testLoader().Mapping("banks/boc-disbursement.mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.Convert(ctx, bytes.NewReader(canonicalCSV(t, 10, func(int) int64 { return 1 })), io.Discard, ConvertOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestConvertMemoryFlat: converting ten times more records does not need
// more memory (the input is generated on the fly, the output discarded).
func TestConvertMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	m, err := testLoader().Mapping("banks/boc-disbursement.mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	row := canonicalCSV(t, 1, func(int) int64 { return 100 })
	nl := bytes.IndexByte(row, '\n')
	header, line := row[:nl+1], row[nl+1:]
	// peak is the heap and stack memory obtained from the OS after a run
	// (it does not shrink when the heap empties, so it tracks the peak).
	peak := func(n int) int64 {
		in := io.MultiReader(bytes.NewReader(header), &repeatReader{line: line, n: n})
		res, err := m.Convert(context.Background(), in, io.Discard, ConvertOptions{
			Params: map[string]string{"batch_no": "B1", "file_date": "2026-11-27", "payer_account": "123"}})
		if err != nil || res.Written != int64(n) {
			t.Fatalf("%v %+v", err, res)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapSys + ms.StackSys)
	}
	// Keeping anything per record would cost 90k × ≥100 bytes ≥ 9 MiB; the
	// margin absorbs the GC's pacing on a loaded machine (one more heap
	// arena of 4 MiB was seen under -count=5).
	small, large := peak(10000), peak(100000)
	if large > small+8<<20 {
		t.Errorf("heap grew by %d KiB for 100k records, %d KiB for 10k", large>>10, small>>10)
	}
}

// repeatReader yields line n times.
type repeatReader struct {
	line []byte
	n    int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	w := 0
	for w < len(p) {
		if r.n == 0 {
			if w == 0 {
				return 0, io.EOF
			}
			break
		}
		c := copy(p[w:], r.line[r.off:])
		w += c
		r.off += c
		if r.off == len(r.line) {
			r.off = 0
			r.n--
		}
	}
	return w, nil
}
