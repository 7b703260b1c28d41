package mappings

import (
	"encoding/binary"
	"unsafe"
)

// fixedOp is one field of a fixed-width schema as the hot paths need it:
// where it is, what kind of value it holds and how it is padded, resolved
// once when the layout is compiled. Fields the plan has no fast path for
// (yuan amounts, dates through package time, right-aligned text, negative
// numbers, non-ASCII text) go through the general per-field code, which the
// fast paths must agree with byte for byte (see plan_test.go).
type fixedOp struct {
	off, end int
	width    int
	kind     uint8
	pad      byte // pad of a set value
	blank    byte // pad of a blank value (spaces for numbers)
	right    bool
	trim     bool
	// limit is 10^width for an opInt field narrower than 19 digits: a
	// value below it fits; 0 when every int64 fits.
	limit int64
}

// Kinds of fixedOp.
const (
	opText uint8 = iota // string, enum, constant: through the codec
	opInt               // integer, or amount in fen
	opDate              // date, time or datetime
	opNum               // other numeric (amount in yuan)
)

func planFixed(s *Schema) []fixedOp {
	ops := make([]fixedOp, len(s.Fields))
	for i := range s.Fields {
		f := &s.Fields[i]
		op := fixedOp{off: f.Offset, end: f.Offset + f.Width, width: f.Width, pad: f.pad, blank: f.pad,
			right: f.right, trim: f.trim}
		switch {
		case !f.num:
			op.kind = opText
		case f.date != nil:
			op.kind = opDate
		case f.yuan:
			op.kind = opNum
		default:
			op.kind = opInt
		}
		if f.num {
			op.blank = ' '
			if f.Width < 19 {
				op.limit = 1
				for j := 0; j < f.Width; j++ {
					op.limit *= 10
				}
			}
		}
		ops[i] = op
	}
	return ops
}

// parseDigits parses 1 to 18 ASCII digits (no sign, no spaces); ok is false
// for anything else, which the general parser then handles (or rejects).
func parseDigits(b []byte) (n int64, ok bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, c := range b {
		d := c - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int64(d)
	}
	return n, true
}

// parseFixed decodes every field of a fixed-width line. Text fields are
// copied (ASCII, most of a bank record: references, accounts, IDs, codes)
// or decoded into the source's text arena and handed out as views of it, so
// that records share one allocation per arena chunk instead of costing one
// each.
func (s *lineSource) parseFixed(sch *Schema, line []byte, rec *Record) *parseError {
	// At most three UTF-8 bytes per byte of input (GB18030's single 0x80
	// is U+20AC): with that room reserved, appending never moves the
	// chunk, so the strings made along the way stay views of bytes that
	// are never written again (the next record appends after them; a new
	// chunk is allocated when this one is full).
	if need := 3 * len(line); cap(s.text)-len(s.text) < need {
		s.text = make([]byte, 0, max(textChunk, need))
	}
	buf := s.text
	var perr *parseError
	var last []lastText
	for i := range sch.ops {
		op := &sch.ops[i]
		raw := line[op.off:op.end]
		if op.kind != opText {
			raw = trimSpaces(raw)
			if op.kind == opInt {
				if n, ok := parseDigits(raw); ok {
					rec.Values[i] = Value{Int: n, Set: true}
					continue
				}
			}
			f := &sch.Fields[i]
			v, err := parseNumeric(f, raw)
			if err != nil && perr == nil {
				perr = &parseError{kind: sch.Kind, field: f.Name, problem: fieldProblem(f, err),
					excerpt: Mask(f.Sensitive, maskExcerpt(string(line[op.off:op.end])))}
			}
			rec.Values[i] = v
			continue
		}
		if op.trim {
			raw = trimPadWords(raw, op.pad, op.right)
		}
		if len(raw) == 0 {
			rec.Values[i] = Value{}
			continue
		}
		// Codes, dates, remarks are often the same as in the record
		// before: its string (never written again) is handed out again.
		if last == nil {
			if s.last[sch.Kind] == nil {
				s.last[sch.Kind] = make([]lastText, len(sch.ops))
			}
			last = s.last[sch.Kind]
		}
		m := &last[i]
		if key := m.raw(); m.ok && len(raw) == len(key) && sameTail(raw, key) && string(raw) == key {
			rec.Values[i] = Value{Str: m.str, Set: true}
			continue
		}
		start := len(buf)
		if isASCII(raw) {
			// ASCII is the same bytes in every supported charset.
			buf = append(buf, raw...)
			str := unsafe.String(&buf[start], len(raw))
			rec.Values[i] = Value{Str: str, Set: true}
			m.str, m.ascii, m.ok = str, true, true
			continue
		}
		var err error
		buf, err = s.l.codec.decode(buf, raw)
		if err != nil {
			buf = buf[:start]
			if perr == nil {
				perr = &parseError{kind: sch.Kind, field: sch.Fields[i].Name, problem: err.Error()}
			}
			perr.charset = perr.charset || isCharsetErr(err)
			rec.Values[i] = Value{}
			continue
		}
		if len(buf) == start {
			rec.Values[i] = Value{}
			continue
		}
		str := unsafe.String(&buf[start], len(buf)-start)
		rec.Values[i] = Value{Str: str, Set: true}
		m.str, m.ascii, m.ok = str, false, true
		m.src = append(m.src[:0], raw...)
	}
	s.text = buf
	return perr
}

// lastText is a text field's value in the record before, for parseFixed.
type lastText struct {
	str   string // the value handed out
	ascii bool   // str is also the field's bytes (trimmed)
	src   []byte // else the field's bytes
	ok    bool
}

// raw returns the field bytes str was read from.
func (m *lastText) raw() string {
	if m.ascii {
		return m.str
	}
	return unsafe.String(unsafe.SliceData(m.src), len(m.src))
}

// trimPadWords is trimPad eight bytes at a time: a field is often mostly
// padding (a short name in a wide field).
func trimPadWords(b []byte, pad byte, right bool) []byte {
	word := uint64(pad) * 0x0101010101010101
	if right {
		for len(b) >= 8 && binary.LittleEndian.Uint64(b) == word {
			b = b[8:]
		}
		for len(b) > 0 && b[0] == pad {
			b = b[1:]
		}
		return b
	}
	for len(b) >= 8 && binary.LittleEndian.Uint64(b[len(b)-8:]) == word {
		b = b[:len(b)-8]
	}
	for len(b) > 0 && b[len(b)-1] == pad {
		b = b[:len(b)-1]
	}
	return b
}

// sameTail reports whether the last eight bytes of a and b (of equal
// length) are equal, or true when they are shorter: a cheap first test
// before comparing whole fields, since values that differ (references,
// accounts, IDs) mostly differ at the end.
func sameTail(a []byte, b string) bool {
	n := len(a)
	if n < 8 || len(b) != n {
		return true
	}
	return binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(b), n)[n-8:])
}
