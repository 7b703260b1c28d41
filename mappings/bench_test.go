package mappings

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/shanghai-mca/mzhub/clock"
)

// benchFile returns n detail lines of the BOC disbursement layout (12
// fields, GBK, Chinese names) with header and trailer.
func benchFile(tb testing.TB, l *Layout, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := NewWriter(l, &buf, WriterOptions{})
	h := NewRecord(l.Header)
	for i, f := range l.Header.Fields {
		if v, ok := sampleHeader[f.Name]; ok {
			_ = h.setText(i, v)
		}
	}
	if err := w.Write(h); err != nil {
		tb.Fatal(err)
	}
	ps := samplePayments(false)
	r := NewRecord(l.Detail)
	for i := 0; i < n; i++ {
		p := ps[i%len(ps)]
		r.Reset()
		if err := p.ToRecord(r); err != nil {
			tb.Fatal(err)
		}
		if err := w.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkFixedWidthGBK decodes, validates and re-encodes 12-field GBK
// fixed-width detail records; one op is one record. The writer trusts the
// reader's validation (validate once); the Revalidate variant validates
// again on write.
// A record read and written in the same layout has its unchanged fields
// copied from the line read (Writer); the EncodeAll variant writes each
// record as if it came from elsewhere, so every field is encoded, as in a
// conversion between layouts.
func BenchmarkFixedWidthGBK(b *testing.B) { benchFixed(b, true, false) }

// BenchmarkFixedWidthGBKRevalidate validates on read and again on write.
func BenchmarkFixedWidthGBKRevalidate(b *testing.B) { benchFixed(b, false, false) }

// BenchmarkFixedWidthGBKEncodeAll decodes, validates and encodes every
// field again (no field copied from the line read).
func BenchmarkFixedWidthGBKEncodeAll(b *testing.B) { benchFixed(b, true, true) }

func benchFixed(b *testing.B, skip, encodeAll bool) {
	l, err := testLoader().Layout("banks/boc-disbursement.yaml")
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	data := benchFile(b, l, n)
	b.SetBytes(int64(len(data) / n))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := clock.ProcessCPU().Nanoseconds()
	done := 0
	for done < b.N {
		rd := NewReader(l, bytes.NewReader(data), ReaderOptions{})
		w := NewWriter(l, io.Discard, WriterOptions{SkipValidation: skip})
		for done < b.N {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if rec.Kind != KindDetail {
				continue
			}
			if encodeAll {
				rec.from = nil
			}
			if err := w.Write(rec); err != nil {
				b.Fatal(err)
			}
			done++
		}
	}
	reportCPU(b, cpu0)
}

// BenchmarkConvertCanonicalToBOC maps canonical CSV payments to the BOC
// disbursement file through the shipped mapping; one op is one record.
func BenchmarkConvertCanonicalToBOC(b *testing.B) {
	m, err := testLoader().Mapping("banks/boc-disbursement.mapping.yaml")
	if err != nil {
		b.Fatal(err)
	}
	l := m.Source
	var buf bytes.Buffer
	w := NewWriter(l, &buf, WriterOptions{})
	ps := samplePayments(false)
	r := NewRecord(l.Detail)
	for i := 0; i < b.N; i++ {
		r.Reset()
		p := ps[i%len(ps)]
		if err := p.ToRecord(r); err != nil {
			b.Fatal(err)
		}
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	params := map[string]string{"batch_no": "MZ1", "file_date": "2026-11-27", "payer_account": "31001234500050001234"}
	b.SetBytes(int64(buf.Len() / b.N))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := clock.ProcessCPU().Nanoseconds()
	res, err := m.Convert(context.Background(), bytes.NewReader(buf.Bytes()), io.Discard, ConvertOptions{Params: params})
	if err != nil || res.Written != int64(b.N) {
		b.Fatalf("%v %+v", err, res)
	}
	reportCPU(b, cpu0)
}

// reportCPU reports wall-clock records/s and the CPU time per record (all
// threads, GC included) with the records/s one core sustains at that cost.
func reportCPU(b *testing.B, cpu0 int64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu := clock.ProcessCPU().Nanoseconds() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/(float64(cpu)/1e9), "records/cpu-s")
	}
}

// TestFixedWidthAllocs guards the one-allocation-per-record hot path.
func TestFixedWidthAllocs(t *testing.T) {
	l, err := testLoader().Layout("banks/boc-disbursement.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	data := benchFile(t, l, n)
	rd := NewReader(l, bytes.NewReader(data), ReaderOptions{})
	w := NewWriter(l, io.Discard, WriterOptions{SkipValidation: true})
	for i := 0; i < 10; i++ { // warm up buffers
		rec, _ := rd.Next()
		_ = w.Write(rec)
	}
	allocs := testing.AllocsPerRun(n-100, func() {
		rec, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%.1f allocations per record, want at most 1", allocs)
	}
}
