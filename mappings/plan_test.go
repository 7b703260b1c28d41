package mappings

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// planLayout has a field of every kind the plan treats differently: fast
// and general numbers, dates with and without literals, through package
// time and with a repeated token, right-aligned and zero-padded text,
// untrimmed text.
const planLayout = `kind: layout
name: plan
format: fixed
charset: %s
line_ending: CRLF
records:
  - kind: header
    select: {prefix: "H"}
    fields:
      - {name: rec_type, type: constant, value: "H", width: 1}
      - {name: stamp, type: datetime, layout: "2006-01-02 15:04:05", width: 19}
      - {name: clock, type: time, layout: "150405", width: 8, pad: " "}
      - {name: day, type: date, layout: "Jan 2 2006", width: 12}
  - kind: detail
    select: {prefix: "D"}
    fields:
      - {name: rec_type, type: constant, value: "D", width: 1}
      - {name: seq, type: integer, width: 6}
      - {name: wide, type: integer, width: 20}
      - {name: fen, type: amount, unit: fen, width: 9, pad: " "}
      - {name: fenleft, type: amount, unit: fen, width: 7, align: left}
      - {name: yuan, type: amount, unit: yuan, width: 10}
      - {name: period, type: date, layout: "200601", width: 8}
      - {name: when, type: datetime, layout: "20060102T150405", width: 15}
      - {name: twice, type: date, layout: "2006-01-02/2006", width: 15}
      - {name: text, type: string, width: 8}
      - {name: cut, type: string, width: 5, truncate: true}
      - {name: right, type: string, width: 6, align: right}
      - {name: zeros, type: string, width: 6, align: right, pad: "0"}
      - {name: star, type: string, width: 4, pad: "*"}
      - {name: raw, type: string, width: 4, no_trim: true}
      - {name: code, type: enum, codes: codes.yaml, width: 2}
`

const planCodes = "kind: codetable\nname: codes\ncodes:\n  - {code: \"01\", value: a}\n  - {code: \"02\", value: b}\n"

// planLayouts returns planLayout in each charset and every fixed-width
// layout shipped in configs/mappings.
func planLayouts(t *testing.T) []*Layout {
	t.Helper()
	var ls []*Layout
	for _, cs := range []string{"GBK", "GB18030", "UTF-8"} {
		fsys := fstest.MapFS{
			"l.yaml":     {Data: []byte(strings.Replace(planLayout, "%s", cs, 1))},
			"codes.yaml": {Data: []byte(planCodes)},
		}
		l, err := NewLoader(fsys).Layout("l.yaml")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	ld := testLoader()
	err := fs.WalkDir(os.DirFS(configRoot), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" || strings.HasSuffix(p, ".mapping.yaml") {
			return err
		}
		data, err := fs.ReadFile(os.DirFS(configRoot), p)
		if err != nil || !bytes.Contains(data, []byte("format: fixed")) || !bytes.Contains(data, []byte("kind: layout")) {
			return err
		}
		l, err := ld.Layout(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		ls = append(ls, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) < 10 {
		t.Fatalf("only %d layouts", len(ls))
	}
	return ls
}

func schemas(l *Layout) []*Schema {
	var ss []*Schema
	for _, s := range []*Schema{l.Header, l.Detail, l.Trailer} {
		if s != nil {
			ss = append(ss, s)
		}
	}
	return ss
}

// fieldBytes returns width bytes for a field of a fixed-width line: often
// well-formed, often not.
// randomLine makes a line of s with each field's bytes from gen or, one
// time in three when there is a line before, the same bytes as in prev.
func randomLine(rng *rand.Rand, l *Layout, s *Schema, prev []byte, gen func(*rand.Rand, *Layout, *Field) []byte) []byte {
	var line []byte
	for i := range s.Fields {
		f := &s.Fields[i]
		if prev != nil && rng.IntN(3) == 0 {
			line = append(line, prev[f.Offset:f.Offset+f.Width]...)
			continue
		}
		line = append(line, gen(rng, l, f)...)
	}
	return line
}

func fieldBytes(rng *rand.Rand, l *Layout, f *Field) []byte {
	w := f.Width
	var text string
	switch rng.IntN(12) {
	case 0:
		return bytes.Repeat([]byte{' '}, w)
	case 1: // random bytes of every kind
		b := make([]byte, w)
		for i := range b {
			b[i] = "0123456789 -+.:/T*Xx\x80\xff\xb0\xa1\xd5\xc5\x81\x30"[rng.IntN(28)]
		}
		return b
	case 2: // digits, sometimes signed, sometimes too many
		n := rng.IntN(w + 1)
		text = ""
		for range n {
			text += string(rune('0' + rng.IntN(10)))
		}
		if rng.IntN(4) == 0 && len(text) > 0 {
			text = "-" + text[1:]
		}
	case 3: // Chinese
		text = strings.Repeat("张伟欧阳秀英老年综合津贴", 3)[:3*rng.IntN(w/2+2)]
	case 4: // a character cut at the end of the field
		b := bytes.Repeat([]byte{'0'}, w)
		b[w-1] = 0xD5
		return b
	}
	if text == "" {
		// A value as the writer would put it.
		r := NewRecord(&Schema{Fields: []Field{*f}})
		v := randomValue(rng, f)
		r.Values[0] = v
		var probe Writer
		probe.l = l
		if line, err := probe.encodeField(nil, r, 0); err == nil && len(line) == w {
			return line
		}
		text = "7"
	}
	b, err := l.codec.encode(nil, text)
	if err != nil {
		b = []byte(text)
	}
	pad := byte(' ')
	if rng.IntN(3) == 0 {
		pad = f.pad
	}
	for len(b) < w {
		if rng.IntN(2) == 0 {
			b = append(b, pad)
		} else {
			b = append([]byte{pad}, b...)
		}
	}
	return b[:w]
}

// randomValue returns a value for f: in range, out of range, odd.
func randomValue(rng *rand.Rand, f *Field) Value {
	if rng.IntN(10) == 0 {
		return Value{}
	}
	if f.num {
		var n int64
		switch rng.IntN(8) {
		case 0: // negative, of every magnitude
			n = -rng.Int64N(pow10(1 + rng.IntN(17)))
		case 1:
			n = rng.Int64()
		case 2:
			n = 0
		case 3:
			n = rng.Int64N(1_000_000)
		default:
			if f.date != nil {
				y, m, d := 1900+rng.Int64N(200), 1+rng.Int64N(12), 1+rng.Int64N(28)
				h, mi, s := rng.Int64N(24), rng.Int64N(60), rng.Int64N(60)
				switch f.Type {
				case TypeDate:
					n = y*10000 + m*100 + d
				case TypeTime:
					n = h*10000 + mi*100 + s
				default:
					n = (y*10000+m*100+d)*1000000 + h*10000 + mi*100 + s
				}
			} else {
				n = rng.Int64N(10_000_000_000)
			}
		}
		return Value{Int: n, Set: true}
	}
	var s string
	switch rng.IntN(9) {
	case 8: // short, ending in a character outside ASCII or a bad byte
		s = strings.Repeat("a", rng.IntN(7)) + [...]string{"é", "\xff"}[rng.IntN(2)]
	case 0:
		s = "张伟"
	case 1:
		s = strings.Repeat("欧阳秀英", 1+rng.IntN(4))
	case 2:
		s = "😀"
	case 3:
		s = "ab\xffc"
	case 4:
		s = "a张" + strings.Repeat("x", rng.IntN(f.Width+2))
	case 5:
		s = f.constant
	default:
		n := rng.IntN(f.Width + 3)
		for range n {
			s += string(rune("0123456789ABCXYZ -"[rng.IntN(18)]))
		}
	}
	return Value{Str: s, Set: true}
}

// TestPlanParseMatchesReference parses random lines of every fixed-width
// layout with the plan and with the general parser it replaced: the same
// values (text, number, set) and the same problem.
func TestPlanParseMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, l := range planLayouts(t) {
		for _, s := range schemas(l) {
			fast := &lineSource{l: l}
			ref := &lineSource{l: l}
			a, b := NewRecord(s), NewRecord(s)
			var prev []byte
			for range 1000 {
				line := randomLine(rng, l, s, prev, fieldBytes)
				prev = line
				pa := fast.parseFixed(s, line, a)
				pb := ref.parseFixedRef(s, line, b)
				if !reflect.DeepEqual(a.Values, b.Values) || !reflect.DeepEqual(pa, pb) {
					t.Fatalf("%s %s %q:\nplan      %+v %+v\nreference %+v %+v", l.Name, s.Kind, line, a.Values, pa, b.Values, pb)
				}
				n++
			}
		}
	}
	t.Logf("%d lines", n)
}

// TestPlanEncodeMatchesReference writes random records of every
// fixed-width layout with the plan and with the general encoder it
// replaced: the same bytes, errors and warnings.
func TestPlanEncodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, whole := 0, 0
	for _, l := range planLayouts(t) {
		for _, s := range schemas(l) {
			var warnA, warnB []Reject
			var out bytes.Buffer
			fast := NewWriter(l, &out, WriterOptions{OnWarning: func(r Reject) { warnA = append(warnA, r) }})
			ref := NewWriter(l, nil, WriterOptions{OnWarning: func(r Reject) { warnB = append(warnB, r) }})
			rec := NewRecord(s)
			for range 1000 {
				clean := rng.IntN(2) == 0
				for i := range s.Fields {
					if rng.IntN(3) == 0 && encodes(l, rec, i) {
						continue // the value of the record before
					}
					rec.Values[i] = randomValue(rng, &s.Fields[i])
					// Half the records have only values that
					// encode, so that whole lines are compared.
					for try := 0; clean && try < 20 && !encodes(l, rec, i); try++ {
						rec.Values[i] = randomValue(rng, &s.Fields[i])
					}
				}
				if encodeBoth(t, fast, ref, &out, &warnA, &warnB, rec, fmt.Sprintf("%s %s plan", l.Name, s.Kind)) {
					whole++
				}
				n++
			}
		}
	}
	if whole < n/4 {
		t.Fatalf("only %d of %d records encoded whole", whole, n)
	}
	t.Logf("%d records, %d encoded whole", n, whole)
}

// encodeBoth writes rec with fast (into out) and with the reference
// encoder of ref, and fails unless bytes, errors and warnings agree; what
// names the case. It reports whether rec was encoded whole (no error).
func encodeBoth(t *testing.T, fast, ref *Writer, out *bytes.Buffer, warnA, warnB *[]Reject, rec *Record, what string) bool {
	t.Helper()
	*warnA, *warnB = (*warnA)[:0], (*warnB)[:0]
	out.Reset()
	errA := fast.encodeFixed(rec)
	if err := fast.ob.flush(); err != nil {
		t.Fatal(err)
	}
	lineB, errB := ref.encodeFixedRef(rec)
	if errA != nil || errB != nil {
		if fmt.Sprint(errA) != fmt.Sprint(errB) || out.Len() != 0 {
			t.Fatalf("%s %+v:\nfast      %v %q\nreference %v", what, rec.Values, errA, out.Bytes(), errB)
		}
	} else if !bytes.Equal(out.Bytes(), lineB) {
		t.Fatalf("%s %+v:\nfast      %q\nreference %q", what, rec.Values, out.Bytes(), lineB)
	}
	if !reflect.DeepEqual(*warnA, *warnB) {
		t.Fatalf("%s %+v: warnings\nfast      %v\nreference %v", what, rec.Values, *warnA, *warnB)
	}
	return errA == nil && errB == nil
}

// TestCopiedFieldsMatchReference parses random lines of every fixed-width
// layout, changes some of the values (a new value, or the same text in
// another string), and writes the records: the fields the Writer copies
// from the line read must give the bytes, errors and warnings of the
// general encoder.
func TestCopiedFieldsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, copied, fields := 0, 0, 0
	for _, l := range planLayouts(t) {
		for _, s := range schemas(l) {
			src := &lineSource{l: l}
			rec := NewRecord(s)
			var warnA, warnB []Reject
			var out bytes.Buffer
			fast := NewWriter(l, &out, WriterOptions{OnWarning: func(r Reject) { warnA = append(warnA, r) }})
			ref := NewWriter(l, nil, WriterOptions{OnWarning: func(r Reject) { warnB = append(warnB, r) }})
			var prev []byte
			for range 2000 {
				line := randomLine(rng, l, s, prev, copyFieldBytes)
				prev = line
				// Most lines have a field that does not parse: it is
				// made again until the line parses.
				perr := src.parseFixed(s, line, rec)
				for try := 0; perr != nil && try < 30; try++ {
					if rec.from != nil {
						t.Fatalf("%s %s %q: rejected line kept for the writer", l.Name, s.Kind, line)
					}
					f := &s.Fields[max(0, s.Index(perr.field))]
					copy(line[f.Offset:], copyFieldBytes(rng, l, f))
					perr = src.parseFixed(s, line, rec)
				}
				if perr != nil {
					continue
				}
				if rec.from == nil {
					t.Fatalf("%s %s %q: line not kept for the writer", l.Name, s.Kind, line)
				}
				for i := range rec.Values {
					if n%4 == 0 {
						break // one record in four as read
					}
					switch rng.IntN(8) {
					case 0:
						rec.Values[i] = randomValue(rng, &s.Fields[i])
					case 1:
						rec.Values[i].Str = strings.Clone(rec.Values[i].Str)
					}
				}
				keep := rec.from.unchanged(rec.Values)
				for k := keep; k != 0; k &= k - 1 {
					copied++
				}
				fields += len(s.Fields)
				encodeBoth(t, fast, ref, &out, &warnA, &warnB, rec, fmt.Sprintf("%s %s %q (copied %b) copied", l.Name, s.Kind, line, keep))
				n++
			}
		}
	}
	if copied < fields/4 {
		t.Fatalf("only %d of %d fields copied", copied, fields)
	}
	t.Logf("%d records, %d of %d fields copied", n, copied, fields)
}

// copyFieldBytes is fieldBytes, or often a value as the Writer puts it with
// one byte changed: a digit for another (a second year that differs from
// the first, a leading zero), a pad for a space or a space for a pad; or
// GBK characters that do not encode back to the same bytes.
func copyFieldBytes(rng *rand.Rand, l *Layout, f *Field) []byte {
	if rng.IntN(2) == 0 {
		return fieldBytes(rng, l, f)
	}
	if !f.num && f.Width >= 4 && rng.IntN(8) == 0 {
		// GBK characters that x/text encodes as other bytes (A3A0
		// is U+3000, written A1A1; A2E3 is U+20AC, written 80).
		b := bytes.Repeat([]byte{f.pad}, f.Width)
		copy(b, []string{"\xa3\xa0", "\xa2\xe3", "\xa1\xa1", "\x80"}[rng.IntN(4)])
		return b
	}
	r := NewRecord(&Schema{Fields: []Field{*f}})
	r.Values[0] = randomValue(rng, f)
	probe := Writer{l: l}
	b, err := probe.encodeField(nil, r, 0)
	if err != nil || len(b) != f.Width {
		return fieldBytes(rng, l, f)
	}
	i := rng.IntN(len(b))
	switch c := b[i]; {
	case c >= '0' && c <= '9':
		b[i] = byte('0' + rng.IntN(10))
	case c == ' ':
		b[i] = f.pad
	case c == f.pad:
		b[i] = ' '
	}
	return b
}

// TestPlanDatesMatchPartLoop compares the positional date parser and
// formatter with the part loops over random input.
func TestPlanDatesMatchPartLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	layouts := []struct {
		ft     FieldType
		layout string
	}{
		{TypeDate, "20060102"}, {TypeDate, "200601"}, {TypeDate, "2006-01-02"}, {TypeDate, "01/02/2006"},
		{TypeTime, "150405"}, {TypeTime, "15:04:05"}, {TypeTime, "1504"},
		{TypeDateTime, "20060102150405"}, {TypeDateTime, "2006-01-02 15:04:05"}, {TypeDateTime, "2006-01-02T15:04"},
	}
	for _, tc := range layouts {
		fast := compileDateLayout(tc.ft, tc.layout)
		if fast.mask == "" {
			t.Fatalf("%s: no positional form", tc.layout)
		}
		loop := *fast
		loop.mask = ""
		for range 20000 {
			b := []byte(tc.layout)
			for i := range b {
				switch rng.IntN(6) {
				case 0:
					b[i] = "0123456789-/: Tx"[rng.IntN(16)]
				default:
					if b[i] >= '0' && b[i] <= '9' {
						b[i] = byte('0' + rng.IntN(10))
					}
				}
			}
			if rng.IntN(50) == 0 {
				b = b[:rng.IntN(len(b))]
			}
			va, ea := parseDate(fast, b)
			vb, eb := parseDate(&loop, b)
			if va != vb || fmt.Sprint(ea) != fmt.Sprint(eb) {
				t.Fatalf("%s %q: positional %d %v, loop %d %v", tc.layout, b, va, ea, vb, eb)
			}
			v := rng.Int64N(100_000_000_000_000) - 1000
			if fa, fb := fast.format(nil, v), loop.format(nil, v); !bytes.Equal(fa, fb) {
				t.Fatalf("%s format %d: positional %q, loop %q", tc.layout, v, fa, fb)
			}
		}
	}
}

// TestChecksMatchReference compares Luhn and CheckResidentID with plain
// implementations over random and valid numbers.
func TestChecksMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	luhnRef := func(s string) bool {
		if len(s) < 2 {
			return false
		}
		sum := 0
		for i := 0; i < len(s); i++ {
			d := int(s[len(s)-1-i]) - '0'
			if d < 0 || d > 9 {
				return false
			}
			if i%2 == 1 {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
		}
		return sum%10 == 0
	}
	idRef := func(s string) string {
		if len(s) != 18 {
			return "resident ID must have 18 characters"
		}
		w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
		sum := 0
		for i := 0; i < 17; i++ {
			if s[i] < '0' || s[i] > '9' {
				return "resident ID must be 17 digits and a check character"
			}
			sum += int(s[i]-'0') * w[i]
		}
		var y, m, d int
		fmt.Sscanf(s[6:14], "%4d%2d%2d", &y, &m, &d)
		if y < 1900 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
			return "resident ID has an invalid birth date"
		}
		if got := strings.ToUpper(s[17:]); got != string("10X98765432"[sum%11]) {
			return "resident ID check character is wrong"
		}
		return ""
	}
	valid, luhnOK := 0, 0
	for range 200000 {
		n := rng.IntN(22)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
			if rng.IntN(40) == 0 {
				b[i] = "x X/:a\xff"[rng.IntN(7)]
			}
		}
		if n == 18 && rng.IntN(2) == 0 {
			copy(b[6:], fmt.Sprintf("%04d%02d%02d", 1890+rng.IntN(150), rng.IntN(14), rng.IntN(33)))
		}
		s := string(b)
		if got, want := Luhn(s), luhnRef(s); got != want {
			t.Fatalf("Luhn(%q) = %v, want %v", s, got, want)
		}
		if got, want := CheckResidentID(s), idRef(s); got != want {
			t.Fatalf("CheckResidentID(%q) = %q, want %q", s, got, want)
		}
		if got, want := validResidentID(s), idRef(s) == ""; got != want {
			t.Fatalf("validResidentID(%q) = %v, want %v", s, got, want)
		}
		if n == 18 && idRef(s) == "" {
			valid++
		}
		if luhnRef(s) {
			luhnOK++
		}
	}
	if valid < 100 || luhnOK < 1000 {
		t.Fatalf("too few valid numbers generated: %d IDs, %d Luhn", valid, luhnOK)
	}
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// encodes reports whether field i of rec encodes without error.
func encodes(l *Layout, rec *Record, i int) bool {
	probe := Writer{l: l}
	_, err := probe.encodeField(nil, rec, i)
	return err == nil
}

// TestTrimPadWords compares the word-at-a-time trim with trimPad for every
// length up to 40 and every run of padding at either end.
func TestTrimPadWords(t *testing.T) {
	for n := 0; n <= 40; n++ {
		for k := 0; k <= n; k++ {
			for _, right := range []bool{false, true} {
				for _, pad := range []byte{' ', '0', '*'} {
					b := bytes.Repeat([]byte{'a'}, n)
					for i := 0; i < k; i++ {
						if right {
							b[i] = pad
						} else {
							b[n-1-i] = pad
						}
					}
					if got, want := trimPadWords(b, pad, right), trimPad(b, pad, right); !bytes.Equal(got, want) {
						t.Fatalf("trimPadWords(%q, %q, %v) = %q, want %q", b, pad, right, got, want)
					}
				}
			}
		}
	}
}

// TestQuickChecksMatchValidateField checks that the quick test of each
// field with validators (Schema.failing) passes exactly the values
// validateField finds no problem with (none of a field it does not reduce).
func TestQuickChecksMatchValidateField(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	quick := map[uint8]int{}
	for _, l := range planLayouts(t) {
		for _, s := range schemas(l) {
			for k := range s.checks {
				c := &s.checks[k]
				f := &s.Fields[c.i]
				for range 3000 {
					v := checkedValue(rng, f)
					p, _ := validateField(f, &v)
					vals := make([]Value, len(s.Fields))
					vals[c.i] = v
					got := s.failing(vals, k) != k
					if got && p != "" || !got && p == "" && c.kind != vGeneral {
						t.Fatalf("%s %s field %s (kind %d) %+v: passes %v, validateField %q", l.Name, s.Kind, f.Name, c.kind, v, got, p)
					}
					if got && v.Set {
						quick[c.kind]++
					}
				}
			}
		}
	}
	for _, k := range []uint8{vAny, vRange, vCode, vConst, vID, vLuhn, vDivision} {
		if quick[k] < 100 {
			t.Errorf("kind %d: only %d values passed quickly", k, quick[k])
		}
	}
}

// checkedValue returns a value for f, often one that passes its
// validators: a code of its table, its constant, a valid resident ID, a
// number passing the Luhn check, a Shanghai division, a number at a bound; sometimes with one
// character changed.
func checkedValue(rng *rand.Rand, f *Field) Value {
	var s string
	switch {
	case f.num && (f.min != nil || f.max != nil) && rng.IntN(2) == 0:
		// At and around the bounds.
		b := f.min
		if b == nil || (f.max != nil && rng.IntN(2) == 0) {
			b = f.max
		}
		return Value{Int: *b + int64(rng.IntN(3)) - 1, Set: true}
	case f.num || rng.IntN(4) == 0:
		return randomValue(rng, f)
	case f.Codes != nil:
		s = f.Codes.Entries[rng.IntN(len(f.Codes.Entries))].Code
	case f.Type == TypeConstant:
		s = f.constant
	case f.checkKind == checkGB11643:
		b := fmt.Appendf(nil, "310101%04d%02d%02d%03d", 1890+rng.IntN(140), 1+rng.IntN(12), 1+rng.IntN(31), rng.IntN(1000))
		w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
		sum := 0
		for i, c := range b {
			sum += int(c-'0') * w[i]
		}
		s = string(append(b, "10X98765432"[sum%11]))
		if s[17] == 'X' && rng.IntN(2) == 0 {
			s = s[:17] + "x"
		}
	case f.checkKind == checkLuhn:
		b := fmt.Appendf(nil, "62%014d", rng.Int64N(1e14))
		for d := byte('0'); d <= '9'; d++ {
			if Luhn(string(append(b, d))) {
				s = string(append(b, d))
			}
		}
	case f.checkKind == checkDivision:
		s = fmt.Sprintf("3101%02d", rng.IntN(60))
	default:
		return randomValue(rng, f)
	}
	if rng.IntN(3) == 0 && len(s) > 0 {
		b := []byte(s)
		b[rng.IntN(len(b))] = "0123456789Xx -"[rng.IntN(14)]
		s = string(b)
	}
	return Value{Str: s, Set: true}
}

// TestKeptStringsStayIntact keeps the strings of every record read (the
// Record documents that they are never overwritten) and compares them at
// the end with copies taken when each record was returned: the arena's
// writes and the reuse of repeated values must not touch bytes already
// handed out.
func TestKeptStringsStayIntact(t *testing.T) {
	for _, name := range []string{"banks/boc-disbursement.yaml"} {
		l, err := testLoader().Layout(name)
		if err != nil {
			t.Fatal(err)
		}
		data := benchFile(t, l, 3000)
		rd := NewReader(l, bytes.NewReader(data), ReaderOptions{})
		var kept, copies []string
		for {
			rec, err := rd.Next()
			if err != nil {
				break
			}
			for _, v := range rec.Values {
				kept = append(kept, v.Str)
				copies = append(copies, strings.Clone(v.Str))
			}
		}
		if len(kept) < 3000*10 {
			t.Fatalf("%s: only %d values read", name, len(kept))
		}
		for i := range kept {
			if kept[i] != copies[i] {
				t.Fatalf("%s: value %d changed from %q to %q", name, i, copies[i], kept[i])
			}
		}
	}
}

// TestParseDigits compares parseDigits with strconv.ParseUint over random
// strings of every length up to 20, of digits and the bytes around them
// ('/' is '0'-1, ':' is '9'+1).
func TestParseDigits(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for range 200000 {
		b := make([]byte, rng.IntN(21))
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
			if rng.IntN(30) == 0 {
				b[i] = "/: +-\x00\xb0\x7f"[rng.IntN(8)]
			}
		}
		got, ok := parseDigits(b)
		want, err := strconv.ParseUint(string(b), 10, 64)
		wantOK := err == nil && len(b) <= 18 && bytes.IndexAny(b, "+-") < 0
		if ok != wantOK || (ok && uint64(got) != want) {
			t.Fatalf("parseDigits(%q) = %d, %v; want %d, %v", b, got, ok, want, wantOK)
		}
	}
}
