package mappings

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMask(t *testing.T) {
	cases := []struct{ kind, in, want string }{
		{"id", "31011519550709321X", "310***********321X"},
		{"account", "6222620010002345679", "***************5679"},
		{"account", "123", "***"},
		{"phone", "13812345678", "138****5678"},
		{"name", "欧阳秀英", "欧***"},
		{"name", "张", "*"},
		{"", "plain", "plain"},
		{"id", "", ""},
	}
	for _, tc := range cases {
		if got := Mask(tc.kind, tc.in); got != tc.want {
			t.Errorf("Mask(%s, %s) = %s, want %s", tc.kind, tc.in, got, tc.want)
		}
	}
	ex := maskExcerpt("D00000002MZ2026110000000002  6222620010002345679欧阳秀英  310115195507093214")
	for _, whole := range []string{"6222620010002345679", "欧阳秀英", "2026110000000002"} {
		if strings.Contains(ex, whole) {
			t.Errorf("excerpt %q shows %q", ex, whole)
		}
	}
}

func TestValidators(t *testing.T) {
	ids := []struct {
		id, problem string
	}{
		{"310101194803120421", ""},
		{"31011519550709321x", "check character"},
		{"310115195507093214", ""},
		{"310115195502303214", "birth date"},
		{"31011519550709321", "18 characters"},
		{"3101151955070932A4", "17 digits"},
	}
	for _, tc := range ids {
		if got := CheckResidentID(tc.id); (tc.problem == "" && got != "") || !strings.Contains(got, tc.problem) {
			t.Errorf("CheckResidentID(%s) = %q, want ~%q", tc.id, got, tc.problem)
		}
	}
	luhn := map[string]bool{"6216610000123456780": true, "6216610000123456781": false, "4000123456789012": false, "79927398713": true, "12a4": false}
	for s, want := range luhn {
		if Luhn(s) != want {
			t.Errorf("Luhn(%s) != %v", s, want)
		}
	}
	div := map[string]bool{"310101": true, "310151": true, "310152": false, "310100": false, "320101": false, "31010": false}
	for s, want := range div {
		if ShanghaiDivision(s) != want {
			t.Errorf("ShanghaiDivision(%s) != %v", s, want)
		}
	}
}

func TestParseAmounts(t *testing.T) {
	cases := []struct {
		in   string
		yuan bool
		want int64
		bad  bool
	}{
		{"1234.50", true, 123450, false},
		{"1234.5", true, 123450, false},
		{"0.01", true, 1, false},
		{"-3.20", true, -320, false},
		{"000001234.50", true, 123450, false},
		{"12", true, 1200, false},
		{"1.234", true, 0, true},
		{"1.", true, 0, true},
		{"1e3", true, 0, true},
		{"000000123450", false, 123450, false},
		{"12.5", false, 0, true},
		{"99999999999999999999", false, 0, true},
	}
	for _, tc := range cases {
		f := &Field{Type: TypeAmount, yuan: tc.yuan}
		v, err := parseNumeric(f, tc.in)
		if tc.bad != (err != nil) || (!tc.bad && v.Int != tc.want) {
			t.Errorf("parse %q yuan=%v = %d, %v", tc.in, tc.yuan, v.Int, err)
		}
	}
	for fen, want := range map[int64]string{0: "0.00", 5: "0.05", 123450: "1234.50", -320: "-3.20"} {
		if got := FormatFen(fen); got != want {
			t.Errorf("FormatFen(%d) = %s", fen, got)
		}
	}
}

func TestDateLayouts(t *testing.T) {
	cases := []struct {
		ft     FieldType
		layout string
		in     string
		want   int64
		bad    bool
	}{
		{TypeDate, "20060102", "20261127", 20261127, false},
		{TypeDate, "2006-01-02", "2024-02-29", 20240229, false},
		{TypeDate, "2006-01-02", "2026-02-29", 0, true},
		{TypeDate, "200601", "202611", 20261101, false},
		{TypeTime, "150405", "235959", 235959, false},
		{TypeTime, "150405", "246000", 0, true},
		{TypeDateTime, "20060102150405", "20261127083000", 20261127083000, false},
		{TypeDate, "Jan 2 2006", "Nov 27 2026", 20261127, false}, // slow path
	}
	for _, tc := range cases {
		dl := compileDateLayout(tc.ft, tc.layout)
		got, err := parseDate(dl, tc.in)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("%s %q = %d, %v", tc.layout, tc.in, got, err)
			continue
		}
		if !tc.bad {
			if s := string(dl.format(nil, got)); s != tc.in {
				t.Errorf("format %d with %s = %q, want %q", got, tc.layout, s, tc.in)
			}
		}
	}
	if tm := TimeOf(TypeDate, 20261127); tm.Location() != Shanghai || tm.Day() != 27 {
		t.Errorf("TimeOf = %v", tm)
	}
}

const unitLayout = `kind: layout
name: unit
format: fixed
charset: %s
records:
  - kind: detail
    fields:
      - {name: name, type: string, width: 7, truncate: true}
      - {name: strict, type: string, width: 4}
      - {name: amount, type: amount, unit: yuan, width: 9, pad: " "}
`

func unitFixed(t *testing.T, charset string) *Layout {
	t.Helper()
	l, err := NewLoader(fstest.MapFS{"l.yaml": {Data: []byte(strings.Replace(unitLayout, "%s", charset, 1))}}).Layout("l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWriterFixedWidth covers widths in bytes of the charset, truncation at
// a character boundary, refusal of too-long values and unencodable runes.
func TestWriterFixedWidth(t *testing.T) {
	cases := []struct {
		charset, name, strict string
		fen                   int64
		want                  string // UTF-8 view of the line
		err                   error
		warn                  string
	}{
		{"GBK", "张三", "ab", 150, "张三   ab       1.50\n", nil, ""},
		{"GBK", "欧阳秀英", "ab", 150, "欧阳秀 ab       1.50\n", nil, "multibyte"},
		{"UTF-8", "欧阳秀英", "ab", 150, "欧阳 ab       1.50\n", nil, "multibyte"},
		{"GBK", "张三", "abcde", 1, "", ErrTooLong, ""},
		{"GBK", "张三", "ab", 123456789, "", ErrTooLong, ""},
		{"GBK", "😀", "ab", 1, "", ErrEncode, ""},
		{"GB18030", "😀", "ab", -5, "😀   ab      -0.05\n", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.charset+"/"+tc.name+"/"+tc.strict, func(t *testing.T) {
			l := unitFixed(t, tc.charset)
			var buf bytes.Buffer
			var warns []string
			w := NewWriter(l, &buf, WriterOptions{OnWarning: func(r Reject) { warns = append(warns, r.Problem) }})
			r := NewRecord(l.Detail)
			_ = r.Set("name", tc.name)
			_ = r.Set("strict", tc.strict)
			_ = r.Set("amount", tc.fen)
			err := w.Write(r)
			if tc.err != nil {
				var fe *FieldError
				if !errors.Is(err, tc.err) || !errors.As(err, &fe) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := l.codec.decode(nil, buf.Bytes())
			if err != nil || string(got) != tc.want {
				t.Errorf("line %q (%v), want %q", got, err, tc.want)
			}
			if tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)) {
				t.Errorf("warnings %v, want %q", warns, tc.warn)
			}
			// And it reads back.
			rd := NewReader(l, bytes.NewReader(buf.Bytes()), ReaderOptions{})
			rec, err := rd.Next()
			if err != nil || rec.Int("amount") != tc.fen {
				t.Errorf("read back %v %v", rec, err)
			}
		})
	}
}

func TestSplitDelimited(t *testing.T) {
	cases := []struct {
		line string
		want []string
		bad  bool
	}{
		{`a,b,c`, []string{"a", "b", "c"}, false},
		{`"a,1","b""q",`, []string{"a,1", `b"q`, ""}, false},
		{`"open,b`, nil, true},
		{`"a"x,b`, nil, true},
		{`,,`, []string{"", "", ""}, false},
	}
	for _, tc := range cases {
		got, err := splitDelimited(nil, tc.line, ",", '"')
		if tc.bad != (err != nil) || (!tc.bad && strings.Join(got, "|") != strings.Join(tc.want, "|")) {
			t.Errorf("split %q = %q, %v", tc.line, got, err)
		}
		if !tc.bad {
			var b []byte
			for i, s := range got {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendDelimitedField(b, s, ",", '"')
			}
			again, _ := splitDelimited(nil, string(b), ",", '"')
			if strings.Join(again, "|") != strings.Join(got, "|") {
				t.Errorf("quote round trip of %q: %q", got, again)
			}
		}
	}
}

// TestGBKSeparatorInTrailByte: a GBK character whose second byte is '|'
// (0x7C) must not split a delimited field.
func TestGBKSeparatorInTrailByte(t *testing.T) {
	c := gbkTables(false)
	var ch string
	if r := c.dec2[(0xD8-0x81)*191+0x7C-0x40]; r != 0 {
		ch = string(r)
	}
	if ch == "" {
		t.Skip("no GBK character with trail byte 0x7C in the table")
	}
	l, err := NewLoader(fstest.MapFS{"l.yaml": {Data: []byte("kind: layout\nname: d\nformat: delimited\ncharset: GBK\nseparator: \"|\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string}\n      - {name: b, type: string}\n")}}).Layout("l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := c.encode(nil, "王"+ch+"|x\n")
	rd := NewReader(l, bytes.NewReader(line), ReaderOptions{})
	rec, err := rd.Next()
	if err != nil || rec.Str("a") != "王"+ch || rec.Str("b") != "x" {
		t.Fatalf("got %v %v", rec, err)
	}
}

// TestMappingRules covers filter, when, expr, value and code translation.
func TestMappingRules(t *testing.T) {
	fsys := fstest.MapFS{
		"src.yaml": {Data: []byte(`kind: layout
name: src
format: delimited
separator: ","
records:
  - kind: detail
    fields:
      - {name: ref, type: string}
      - {name: fen, type: amount, unit: fen}
      - {name: st, type: enum, codes: a.yaml}
      - {name: day, type: date, layout: "20060102"}
`)},
		"dst.yaml": {Data: []byte(`kind: layout
name: dst
format: delimited
separator: "|"
records:
  - kind: detail
    fields:
      - {name: ref, type: string}
      - {name: yuan, type: amount, unit: yuan}
      - {name: st, type: enum, codes: b.yaml}
      - {name: note, type: string}
      - {name: big, type: string}
      - {name: day, type: date, layout: "2006-01-02"}
`)},
		"a.yaml": {Data: []byte("kind: codetable\nname: a\ncodes:\n  - {code: \"0\", value: paid}\n  - {code: \"9\", value: failed}\n")},
		"b.yaml": {Data: []byte("kind: codetable\nname: b\ncodes:\n  - {code: S, value: paid}\n  - {code: F, value: failed}\n")},
		"m.yaml": {Data: []byte(`kind: mapping
name: m
source: src.yaml
target: dst.yaml
filter: fen > 0
params: {tag: x}
detail:
  - {target: ref, expr: 'params.tag + "-" + ref'}
  - {target: yuan, expr: fen * 2}
  - {target: st, from: st}
  - {target: note, value: 固定}
  - {target: big, value: "yes", when: fen >= 1000}
  - {target: day, from: day}
`)},
	}
	m, err := NewLoader(fsys).Mapping("m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := m.Convert(context.Background(), strings.NewReader("r1,150,0,20261127\nr2,0,0,20261127\nr3,2000,9,20261128\n"), &out, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "x-r1|3.00|S|固定||2026-11-27\nx-r3|40.00|F|固定|yes|2026-11-28\n"
	if out.String() != want || res.Skipped != 1 || res.Written != 2 {
		t.Errorf("got %q (%+v), want %q", out.String(), res, want)
	}
}

// TestSensitiveParseErrorMasked: a sensitive numeric field that does not
// parse is reported without its value.
func TestSensitiveParseErrorMasked(t *testing.T) {
	l, err := NewLoader(fstest.MapFS{"l.yaml": {Data: []byte("kind: layout\nname: s\nformat: delimited\nseparator: \",\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: phone, type: integer, sensitive: phone}\n")}}).Layout("l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rejects []Reject
	rd := NewReader(l, strings.NewReader("1381234567x\n"), ReaderOptions{OnReject: func(r Reject) { rejects = append(rejects, r) }})
	if _, err := rd.Next(); err == nil {
		t.Fatal("want EOF")
	}
	if len(rejects) != 1 || strings.Contains(rejects[0].String(), "1381234567") {
		t.Fatalf("rejects %v", rejects)
	}
}

// TestComputedFields: expr fields are filled by the writer and checked by
// the reader; when leaves a field blank.
func TestComputedFields(t *testing.T) {
	l, err := NewLoader(fstest.MapFS{"l.yaml": {Data: []byte(`kind: layout
name: c
format: delimited
separator: "|"
records:
  - kind: detail
    fields:
      - {name: amount, type: amount, unit: fen}
      - {name: flag, type: string, expr: 'amount >= 500000 ? "1" : "0"'}
      - {name: note, type: string, when: amount < 0}
      - {name: double, type: amount, unit: fen, expr: amount * 2}
`)}}).Layout("l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(l, &buf, WriterOptions{})
	for _, fen := range []int64{100, 600000} {
		r := NewRecord(l.Detail)
		_ = r.Set("amount", fen)
		_ = r.Set("note", "x")
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "100|0||200\n600000|1||1200000\n"; buf.String() != want {
		t.Fatalf("wrote %q, want %q", buf.String(), want)
	}
	var rejects []Reject
	rd := NewReader(l, strings.NewReader(buf.String()+"100|1||200\n"), ReaderOptions{OnReject: func(r Reject) { rejects = append(rejects, r) }})
	n := 0
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		n++
	}
	if n != 2 || len(rejects) != 1 || rejects[0].Field != "flag" || rejects[0].Line != 3 {
		t.Fatalf("read %d, rejects %v", n, rejects)
	}
}

// TestRecordSizeLimit: one huge JSON or XML record ends the file with
// ErrRecordTooLarge instead of growing memory.
func TestRecordSizeLimit(t *testing.T) {
	ld := testLoader()
	big := strings.Repeat("9", 1<<20)
	cases := []struct{ layout, data string }{
		{"banks/cmb-disbursement-return.yaml", `[{"refNo":"` + big + `"}]`},
		{"banks/ccb-disbursement-return.yaml", `<CCBReturn><Item><TxnRef>` + big + `</TxnRef></Item></CCBReturn>`},
	}
	for _, tc := range cases {
		l, err := ld.Layout(tc.layout)
		if err != nil {
			t.Fatal(err)
		}
		rd := NewReader(l, strings.NewReader(tc.data), ReaderOptions{MaxRecordBytes: 64 << 10})
		var rerr error
		for rerr == nil {
			_, rerr = rd.Next()
		}
		if !errors.Is(rerr, ErrRecordTooLarge) {
			t.Errorf("%s: err = %v", tc.layout, rerr)
		}
	}
}

// TestPositionSelectors: header first and trailer last without any prefix
// (the reader looks one line ahead to know the last one).
func TestPositionSelectors(t *testing.T) {
	l, err := NewLoader(fstest.MapFS{"l.yaml": {Data: []byte(`kind: layout
name: p
format: fixed
charset: GBK
line_ending: CRLF
records:
  - kind: header
    fields:
      - {name: batch, type: string, width: 6}
  - kind: detail
    fields:
      - {name: name, type: string, width: 6}
      - {name: fen, type: amount, unit: fen, width: 6}
  - kind: trailer
    fields:
      - {name: count, type: integer, width: 4, aggregate: count}
      - {name: total, type: amount, unit: fen, width: 8, aggregate: sum, of: fen}
`)}}).Layout("l.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gbk := func(s string) string { b, _ := gbkTables(false).encode(nil, s); return string(b) }
	in := "B0001 \r\n" + gbk("张三  ") + "000100\r\n" + gbk("李四  ") + "000250\r\n\r\n" + "000200000350"
	rd := NewReader(l, strings.NewReader(in), ReaderOptions{})
	var kinds []string
	var raws []string
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		kinds = append(kinds, rec.Kind.String()+":"+rec.Text(0))
		raws = append(raws, string(rd.Raw()))
	}
	if got := strings.Join(kinds, ","); got != "header:B0001,detail:张三,detail:李四,trailer:2" {
		t.Fatalf("kinds %s", got)
	}
	if raws[2] != gbk("李四  ")+"000250" {
		t.Errorf("raw of line 3 = %q", raws[2])
	}
	if err := rd.Check(); err != nil {
		t.Error(err)
	}
}

// TestUTF8BOM: a CSV saved with a byte-order mark still matches its
// column row.
func TestUTF8BOM(t *testing.T) {
	l, err := testLoader().Layout("banks/cmb-disbursement.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../configs/mappings/banks/testdata/cmb-disbursement.csv")
	if err != nil {
		t.Fatal(err)
	}
	var rejects []Reject
	rd := NewReader(l, bytes.NewReader(append([]byte("\xEF\xBB\xBF"), data...)), ReaderOptions{OnReject: func(r Reject) {
		if !r.Warning {
			rejects = append(rejects, r)
		}
	}})
	n := 0
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		n++
	}
	if n != 5 || len(rejects) != 0 {
		t.Errorf("read %d, rejects %v", n, rejects)
	}
}

// TestXMLRejectRaw: a rejected XML record carries its own bytes (in the
// file's charset) for the reject file.
func TestXMLRejectRaw(t *testing.T) {
	l, err := testLoader().Layout("banks/ccb-disbursement-return.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../configs/mappings/banks/testdata/ccb-disbursement-return.xml")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("<AmtFen>100000</AmtFen>"), []byte("<AmtFen>1000x0</AmtFen>"), 1)
	var rejects []Reject
	rd := NewReader(l, bytes.NewReader(bad), ReaderOptions{OnReject: func(r Reject) {
		r.Raw = append([]byte(nil), r.Raw...)
		rejects = append(rejects, r)
	}})
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
	}
	if len(rejects) != 1 {
		t.Fatalf("rejects %v", rejects)
	}
	raw := rejects[0].Raw
	if !bytes.HasPrefix(raw, []byte("<Item>")) || !bytes.HasSuffix(raw, []byte("</Item>")) || !bytes.Contains(raw, []byte("1000x0")) || !bytes.Contains(bad, raw) {
		t.Errorf("raw %q", raw)
	}
}
