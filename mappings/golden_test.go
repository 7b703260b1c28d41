package mappings

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files and bank samples")

// configRoot is the shipped configuration, relative to this package.
const configRoot = "../configs/mappings"

func testLoader() *Loader { return NewLoader(os.DirFS(configRoot)) }

// samplePayments are realistic, valid payments (IDs pass GB 11643, cards
// pass Luhn except the passbook account of the third, which gives a
// warning).
func samplePayments(returns bool) []PaymentRecord {
	ps := []PaymentRecord{
		{PersonID: "310101194803120421", Name: "张伟", Account: "6216610000123456780", BankCode: "104", AmountFen: 75000, Period: "2026-11", Reference: "MZ2026110000000001", Division: "310101"},
		{PersonID: "310115195507093214", Name: "欧阳秀英", Account: "6222620010002345679", BankCode: "104", AmountFen: 50000, Period: "2026-11", Reference: "MZ2026110000000002", Division: "310115"},
		{PersonID: "310105193801015661", Name: "李淑珍", Account: "4000123456789012", BankCode: "104", AmountFen: 100000, Period: "2026-11", Reference: "MZ2026110000000003", Division: "310105"},
		{PersonID: "310110195612308828", Name: "王建国", Account: "6225880007654321097", BankCode: "104", AmountFen: 75000, Period: "2026-11", Reference: "MZ2026110000000004", Division: "310110"},
		{PersonID: "310151195902281018", Name: "陈玥", Account: "6217000009876543211", BankCode: "104", AmountFen: 50050, Period: "2026-11", Reference: "MZ2026110000000005", Division: "310151"},
	}
	if returns {
		paid := time.Date(2026, 11, 28, 0, 0, 0, 0, Shanghai)
		for i := range ps {
			ps[i].Status, ps[i].PayDate = StatusPaid, paid
		}
		ps[2].Status = StatusFailed
		ps[4].Status = StatusFailed
		ps[2].PayDate, ps[4].PayDate = time.Time{}, time.Time{}
	}
	return ps
}

// sampleHeader holds the header values used to build samples, by field
// name, in canonical notation.
var sampleHeader = map[string]string{
	"batch_no":      "MZ20261100001",
	"payer_account": "31001234500050001234",
	"payer_name":    "上海市民政局",
	"file_date":     "2026-11-27",
	"part_no":       "1",
	"part_total":    "1",
	"currency":      "CNY",
}

// bankLayouts lists every shipped bank layout with its sample.
var bankLayouts = []struct{ layout, sample string }{
	{"banks/boc-disbursement.yaml", "banks/testdata/boc-disbursement.txt"},
	{"banks/boc-disbursement-return.yaml", "banks/testdata/boc-disbursement-return.txt"},
	{"banks/boc-deduction.yaml", "banks/testdata/boc-deduction.txt"},
	{"banks/boc-deduction-return.yaml", "banks/testdata/boc-deduction-return.txt"},
	{"banks/bocom-disbursement.yaml", "banks/testdata/bocom-disbursement.txt"},
	{"banks/bocom-disbursement-return.yaml", "banks/testdata/bocom-disbursement-return.txt"},
	{"banks/bocom-deduction.yaml", "banks/testdata/bocom-deduction.txt"},
	{"banks/bocom-deduction-return.yaml", "banks/testdata/bocom-deduction-return.txt"},
	{"banks/ceb-disbursement.yaml", "banks/testdata/ceb-disbursement.txt"},
	{"banks/ceb-disbursement-return.yaml", "banks/testdata/ceb-disbursement-return.txt"},
	{"banks/ceb-deduction.yaml", "banks/testdata/ceb-deduction.txt"},
	{"banks/ceb-deduction-return.yaml", "banks/testdata/ceb-deduction-return.txt"},
	{"banks/cmb-disbursement.yaml", "banks/testdata/cmb-disbursement.csv"},
	{"banks/cmb-disbursement-return.yaml", "banks/testdata/cmb-disbursement-return.json"},
	{"banks/cmb-deduction.yaml", "banks/testdata/cmb-deduction.csv"},
	{"banks/cmb-deduction-return.yaml", "banks/testdata/cmb-deduction-return.json"},
	{"banks/spdb-disbursement.yaml", "banks/testdata/spdb-disbursement.txt"},
	{"banks/spdb-disbursement-return.yaml", "banks/testdata/spdb-disbursement-return.txt"},
	{"banks/spdb-deduction.yaml", "banks/testdata/spdb-deduction.txt"},
	{"banks/spdb-deduction-return.yaml", "banks/testdata/spdb-deduction-return.txt"},
	{"banks/ccb-disbursement.yaml", "banks/testdata/ccb-disbursement.txt"},
	{"banks/ccb-disbursement-return.yaml", "banks/testdata/ccb-disbursement-return.xml"},
	{"banks/ccb-deduction.yaml", "banks/testdata/ccb-deduction.txt"},
	{"banks/ccb-deduction-return.yaml", "banks/testdata/ccb-deduction-return.xml"},
}

// writeSample builds a sample file for a layout from samplePayments.
func writeSample(t *testing.T, l *Layout, returns bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(l, &buf, WriterOptions{})
	ps := samplePayments(returns)
	if l.Header != nil {
		h := NewRecord(l.Header)
		for i, f := range l.Header.Fields {
			if v, ok := sampleHeader[f.Name]; ok {
				if err := h.setText(i, v); err != nil {
					t.Fatalf("header %s: %v", f.Name, err)
				}
			}
		}
		var sum int64
		for _, p := range ps {
			sum += p.AmountFen
		}
		SetHeaderAggregates(h, int64(len(ps)), sum)
		if err := w.Write(h); err != nil {
			t.Fatalf("header: %v", err)
		}
	}
	for _, p := range ps {
		r := NewRecord(l.Detail)
		if err := p.ToRecord(r); err != nil {
			t.Fatalf("ToRecord: %v", err)
		}
		fillReasonText(r)
		if err := w.Write(r); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return buf.Bytes()
}

// TestBankLayoutsGolden reads each sample into canonical payments, writes
// them back and expects the sample byte for byte.
func TestBankLayoutsGolden(t *testing.T) {
	ld := testLoader()
	for _, tc := range bankLayouts {
		t.Run(tc.layout, func(t *testing.T) {
			l, err := ld.Layout(tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(configRoot, tc.sample)
			returns := l.Detail.CanonicalIndex(CanonStatus) >= 0
			if *update {
				if err := os.WriteFile(path, writeSample(t, l, returns), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var rejects []Reject
			rd := NewReader(l, bytes.NewReader(want), ReaderOptions{OnReject: func(r Reject) { rejects = append(rejects, r) }})
			var buf bytes.Buffer
			w := NewWriter(l, &buf, WriterOptions{})
			var got []PaymentRecord
			for {
				rec, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch rec.Kind {
				case KindHeader:
					if err := w.Write(rec); err != nil {
						t.Fatal(err)
					}
				case KindDetail:
					p := PaymentFromRecord(rec)
					got = append(got, p)
					out := NewRecord(l.Detail)
					if err := p.ToRecord(out); err != nil {
						t.Fatal(err)
					}
					if err := w.Write(out); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := rd.Check(); err != nil {
				t.Errorf("trailer check: %v", err)
			}
			for _, r := range rejects {
				if !r.Warning {
					t.Errorf("unexpected reject: %s", r)
				}
			}
			want5 := samplePayments(returns)
			if len(got) != len(want5) {
				t.Fatalf("read %d payments, want %d", len(got), len(want5))
			}
			for i := range got {
				// The expected payment is the sample payment as far as the
				// layout carries it.
				r := NewRecord(l.Detail)
				if err := want5[i].ToRecord(r); err != nil {
					t.Fatal(err)
				}
				fillReasonText(r)
				w := PaymentFromRecord(r)
				if (got[i].Name == "" && l.Detail.CanonicalIndex(CanonName) >= 0) || got[i].Reference != want5[i].Reference || got[i].AmountFen != want5[i].AmountFen {
					t.Errorf("payment %d lost its reference, amount or name: %+v", i, got[i])
				}
				if !reflect.DeepEqual(got[i], w) {
					t.Errorf("payment %d:\n got %+v\nwant %+v", i, got[i], w)
				}
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("round trip differs from the sample:\n got %q\nwant %q", buf.Bytes(), want)
			}
		})
	}
}

// fillReasonText gives a sample return the bank's text for its result
// code, as a bank would.
func fillReasonText(r *Record) {
	s := r.Schema()
	si, ti := s.CanonicalIndex(CanonStatus), s.CanonicalIndex(CanonReasonText)
	if si < 0 || ti < 0 || s.Fields[si].Codes == nil || r.Values[ti].Set {
		return
	}
	if e, ok := s.Fields[si].Codes.Lookup(r.Values[si].Str); ok && e.Value == string(StatusFailed) {
		r.Values[ti] = Value{Str: e.Text, Set: true}
	}
}
