package mappings_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing/fstest"

	"github.com/shanghai-mca/mzhub/mappings"
)

// A bank return read into canonical payments: rejects are masked, the
// trailer is checked.
func ExampleNewReader() {
	ld := mappings.NewLoader(os.DirFS("../configs/mappings"))
	l, err := ld.Layout("banks/boc-disbursement-return.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	f, err := os.Open("../configs/mappings/banks/testdata/boc-disbursement-return.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	rd := mappings.NewReader(l, f, mappings.ReaderOptions{OnReject: func(r mappings.Reject) { fmt.Println(r) }})
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if rec.Kind == mappings.KindDetail {
			p := mappings.PaymentFromRecord(rec)
			fmt.Println(p.Reference, mappings.Mask("name", p.Name), mappings.FormatFen(p.AmountFen), p.Status, p.ReasonCode)
		}
	}
	fmt.Println("trailer check:", rd.Check())
	// Output:
	// MZ2026110000000001 张* 750.00 paid 0000
	// MZ2026110000000002 欧*** 500.00 paid 0000
	// MZ2026110000000003 李** 1000.00 failed 1001
	// MZ2026110000000004 王** 750.00 paid 0000
	// MZ2026110000000005 陈* 500.50 failed 1001
	// trailer check: <nil>
}

// A mapping converts one layout into another; here a tiny CSV in yuan
// becomes pipe-separated fen with a computed trailer.
func ExampleMapping_Convert() {
	fsys := fstest.MapFS{
		"in.yaml": {Data: []byte(`kind: layout
name: in
format: delimited
separator: ","
records:
  - kind: detail
    fields:
      - {name: ref, type: string, required: true}
      - {name: yuan, type: amount, unit: yuan}
`)},
		"out.yaml": {Data: []byte(`kind: layout
name: out
format: delimited
separator: "|"
records:
  - kind: detail
    select: {field: t, equals: D}
    fields:
      - {name: t, type: constant, value: D}
      - {name: ref, type: string}
      - {name: fen, type: amount, unit: fen}
  - kind: trailer
    select: {field: t, equals: T}
    fields:
      - {name: t, type: constant, value: T}
      - {name: count, type: integer, aggregate: count}
      - {name: total, type: amount, unit: fen, aggregate: sum, of: fen}
`)},
		"m.yaml": {Data: []byte(`kind: mapping
name: yuan-to-fen
source: in.yaml
target: out.yaml
detail:
  - {target: ref, from: ref}
  - {target: fen, from: yuan}
`)},
	}
	m, err := mappings.NewLoader(fsys).Mapping("m.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := m.Convert(context.Background(), strings.NewReader("A1,12.50\nA2,0.07\n,1\n"), os.Stdout, mappings.ConvertOptions{
		OnReject: func(r mappings.Reject) { fmt.Println("reject:", r) },
	})
	fmt.Println(res.Written, res.Rejected, err)
	// Output:
	// reject: line 3 detail field ref: rejected: required field is blank ("")
	// D|A1|1250
	// D|A2|7
	// T|2|1257
	// 2 1 <nil>
}
