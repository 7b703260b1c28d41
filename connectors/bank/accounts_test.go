package bank

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/mappings"
)

var update = flag.Bool("update", false, "rewrite the account files' golden samples")

const mappingsRoot = "../../configs/mappings"

// sampleRequests are realistic verification requests (IDs pass GB 11643,
// accounts pass Luhn).
func sampleRequests() []AccountRequest {
	return []AccountRequest{
		{Reference: "ZH202612020000000001", Op: OpVerify, PersonID: "310101194803120421", Name: "张伟", Account: "6216610000123456780", Division: "310101"},
		{Reference: "ZH202612020000000002", Op: OpVerify, PersonID: "310115195507093214", Name: "欧阳秀英", Account: "6222620010002345679", Division: "310115"},
		{Reference: "ZH202612020000000003", Op: OpVerify, PersonID: "310110195612308828", Name: "王建国", Account: "6225880007654321097", Division: "310110"},
		{Reference: "ZH202612020000000004", Op: OpVerify, PersonID: "310151195902281018", Name: "陈玥", Account: "6217000009876543211", Division: "310151"},
	}
}

// sampleResults answer an opening file: two opened, a name mismatch and a
// failed ID check.
func sampleResults(l *mappings.Layout) []AccountResult {
	d := time.Date(2026, 12, 3, 0, 0, 0, 0, clock.Shanghai)
	rs := []AccountResult{
		{Reference: "ZH202612020000000011", Op: OpOpen, Account: "6216610000123456780", Name: "张伟", PersonID: "310101194803120421", Outcome: OutcomeOK},
		{Reference: "ZH202612020000000012", Op: OpOpen, Name: "欧阳秀英", PersonID: "310115195507093214", Outcome: OutcomeMismatch},
		{Reference: "ZH202612020000000013", Op: OpOpen, Account: "6225880007654321097", Name: "王建国", PersonID: "310110195612308828", Outcome: OutcomeOK},
		{Reference: "ZH202612020000000014", Op: OpOpen, Name: "陈玥", PersonID: "310151195902281018", Outcome: OutcomeIDInvalid},
	}
	codes := l.Detail.Fields[l.Detail.Index("status")].Codes
	for i := range rs {
		rs[i].Code, _ = codes.CodeFor(rs[i].Outcome)
		e, _ := codes.Lookup(rs[i].Code)
		rs[i].Text, rs[i].Date = e.Text, d
		// What the layout does not carry is not expected back.
		if l.Detail.Index("name") < 0 {
			rs[i].Name = ""
		}
		if l.Detail.Index("person_id") < 0 {
			rs[i].PersonID = ""
		}
	}
	return rs
}

// TestAccountLayoutsGolden writes each bank's account request and result
// samples from records, expects the files under
// configs/mappings/banks/testdata byte for byte, and reads them back into
// the same records.
func TestAccountLayoutsGolden(t *testing.T) {
	cfgs, err := LoadConfigs(filepath.Join("..", "..", "configs", "partners", "banks"))
	if err != nil {
		t.Fatal(err)
	}
	hdr := AccountHeader{BatchNo: "ZH2026120201", FileDate: time.Date(2026, 12, 2, 0, 0, 0, 0, clock.Shanghai), PayerName: "上海市民政局", PartNo: 1, PartTotal: 1}
	for _, c := range cfgs {
		fs, err := LoadFileSet(os.DirFS(mappingsRoot), c.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		if fs.Account == nil || fs.AccountReturn == nil {
			t.Fatalf("%s: no account layouts", c.Code)
		}
		t.Run(c.Code+"/request", func(t *testing.T) {
			qs := sampleRequests()
			var buf bytes.Buffer
			h := hdr
			h.Op, h.Count = OpVerify, int64(len(qs))
			w, err := NewAccountWriter(fs.Account, &buf, h)
			if err != nil {
				t.Fatal(err)
			}
			for i := range qs {
				if err := w.Write(&qs[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			golden(t, fs.Account, buf.Bytes())
			var got []AccountRequest
			res, err := ReadAccountRequests(fs.Account, bytes.NewReader(buf.Bytes()), func(r mappings.Reject) { t.Errorf("reject: %s", r) },
				func(q *AccountRequest) error { got = append(got, *q); return nil })
			if err != nil || res.Refused != nil || res.CheckErr != nil {
				t.Fatalf("read: %v, refused %v, check %v", err, res.Refused, res.CheckErr)
			}
			if !reflect.DeepEqual(got, qs) {
				t.Errorf("read back:\n got %+v\nwant %+v", got, qs)
			}
		})
		t.Run(c.Code+"/result", func(t *testing.T) {
			rs := sampleResults(fs.AccountReturn)
			var buf bytes.Buffer
			h := hdr
			h.Op, h.Count = OpOpen, int64(len(rs))
			w, err := NewAccountWriter(fs.AccountReturn, &buf, h)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rs {
				if err := w.WriteResult(&rs[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			golden(t, fs.AccountReturn, buf.Bytes())
			var got []AccountResult
			res, err := ReadAccountResults(fs.AccountReturn, bytes.NewReader(buf.Bytes()), func(r mappings.Reject) { t.Errorf("reject: %s", r) },
				func(r *AccountResult) error { got = append(got, *r); return nil })
			if err != nil || res.Refused != nil || res.CheckErr != nil {
				t.Fatalf("read: %v, refused %v, check %v", err, res.Refused, res.CheckErr)
			}
			if !reflect.DeepEqual(got, rs) {
				t.Errorf("read back:\n got %+v\nwant %+v", got, rs)
			}
			if got[1].OK() || !got[0].OK() {
				t.Errorf("outcomes: %+v", got)
			}
		})
	}
}

// golden compares data with the layout's sample (rewritten with -update).
func golden(t *testing.T, l *mappings.Layout, data []byte) {
	t.Helper()
	p := filepath.Join(mappingsRoot, "banks", "testdata", l.Name+Ext(l))
	if *update {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s differs from its golden sample:\n got %q\nwant %q", l.Name, data, want)
	}
}

// TestAccountResultsBadInput: malformed results are rejected with their
// line and never handed over; a miscounted file is refused; a record of
// another operation than the file's is rejected.
func TestAccountResultsBadInput(t *testing.T) {
	fs, err := LoadFileSet(os.DirFS(mappingsRoot), Layouts{Disbursement: "banks/boc-disbursement.yaml", Return: "banks/boc-disbursement-return.yaml",
		Account: "banks/boc-account.yaml", AccountReturn: "banks/boc-account-return.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(mappingsRoot, "banks", "testdata", "boc-account-return.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(sample), "\r\n")
	for _, tc := range []struct {
		name       string
		edit       func([]string) []string
		wantRead   int
		wantReject int
		refused    bool
	}{
		{"intact", func(l []string) []string { return l }, 4, 0, false},
		{"unknown result code", func(l []string) []string { l[2] = l[2][:88] + "7777" + l[2][92:]; return l }, 3, 1, false},
		{"another operation", func(l []string) []string { l[3] = l[3][:29] + "06" + l[3][31:]; return l }, 3, 1, false},
		{"trailer count", func(l []string) []string { l[5] = "T0000000009"; return l }, 4, 0, true},
		{"a line lost", func(l []string) []string { return append(l[:2], l[3:]...) }, 3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := tc.edit(append([]string(nil), lines...))
			var n, rej int
			res, err := ReadAccountResults(fs.AccountReturn, strings.NewReader(strings.Join(ls, "\r\n")),
				func(r mappings.Reject) {
					rej++
					if r.Line == 0 {
						t.Errorf("reject without a line: %s", r)
					}
				}, func(r *AccountResult) error { n++; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.wantRead || rej != tc.wantReject {
				t.Errorf("read %d rejected %d, want %d and %d", n, rej, tc.wantRead, tc.wantReject)
			}
			if (res.Refused != nil) != tc.refused {
				t.Errorf("refused %v, want %v", res.Refused, tc.refused)
			}
			if tc.refused && !errors.Is(res.Refused, mappings.ErrRefused) {
				t.Errorf("refusal %v does not match ErrRefused", res.Refused)
			}
		})
	}
}

func TestOpFileNames(t *testing.T) {
	c := DefaultConfig()
	c.Code = "boc"
	for _, op := range AccountOps {
		n := c.FileNameFor(op.Kind(), "20261202-07", ".txt")
		got, ok := OpOfFileName(n)
		if !ok || got != op {
			t.Errorf("%s: %s reads as %q", op, n, got)
		}
		if op.Flow() == "" || op.Chinese() == "" {
			t.Errorf("%s: no flow or name", op)
		}
	}
	if n := c.FileNameFor(OpOpen.Kind(), "20261202-07", ".txt"); n != "BOC_KH_2026120207.txt" {
		t.Errorf("file name %s", n)
	}
	if _, ok := OpOfFileName("BOC_DF_202612.txt"); ok {
		t.Error("a disbursement file read as an account file")
	}
}
