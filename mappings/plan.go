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
	// dateSame: an opDate field whose layout fills it and holds nothing
	// its type drops, so that a date parsed from it is written back as
	// the same bytes.
	dateSame bool
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
			op.dateSame = dateWrittenBack(f.date, f.Width)
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

// packedOps reports whether the fields of ops follow each other from
// offset 0, in order, without gaps.
func packedOps(ops []fixedOp) bool {
	end := 0
	for i := range ops {
		if ops[i].off != end {
			return false
		}
		end = ops[i].end
	}
	return len(ops) > 0
}

// dateWrittenBack reports whether a value parsed from a field of width
// bytes by dl's positional parser is formatted again as the same bytes.
func dateWrittenBack(dl *dateLayout, width int) bool {
	if dl.mask == "" || len(dl.mask) != width {
		return false
	}
	switch dl.ft {
	case TypeDate: // no time of day
		return dl.pos[3] < 0 && dl.pos[4] < 0 && dl.pos[5] < 0
	case TypeTime: // no date
		return dl.pos[0] < 0 && dl.pos[1] < 0 && dl.pos[2] < 0
	}
	return true
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

// parseFixed decodes every field of a fixed-width line. The line is first
// copied into the source's text arena: ASCII text fields (most of a bank
// record: references, accounts, IDs, codes) are handed out as views of the
// copy, other text is decoded into the arena after it, so that records
// share one allocation per arena chunk instead of costing one each. The
// copy is also kept, with the values, for a Writer of the same layout (see
// parsedLine).
func (s *lineSource) parseFixed(sch *Schema, line []byte, rec *Record) *parseError {
	// The copy, then at most three UTF-8 bytes per byte of input
	// (GB18030's single 0x80 is U+20AC): with that room reserved,
	// appending never moves the chunk, so the strings made along the way
	// stay views of bytes that are never written again (the next record
	// appends after them; a new chunk is allocated when this one is full).
	if need := 4 * len(line); cap(s.text)-len(s.text) < need {
		s.text = make([]byte, 0, max(textChunk, need))
	}
	buf := s.text
	k := len(buf)
	buf = append(buf, line...)
	line = buf[k:len(buf):len(buf)]
	var perr *parseError
	var last []lastText
	// canon has bit i set when field i's bytes are what encodeFixed
	// writes for the value parsed from them.
	var canon uint64
	for i := range sch.ops {
		op := &sch.ops[i]
		raw := line[op.off:op.end]
		if op.kind != opText {
			raw = trimSpaces(raw)
			if op.kind == opInt {
				if n, ok := parseDigits(raw); ok {
					rec.Values[i] = Value{Int: n, Set: true}
					// Written back as op.pad then the digits without
					// leading zeros.
					if (op.pad == ' ' && line[op.end-1] != ' ' && (raw[0] != '0' || len(raw) == 1)) ||
						(op.pad == '0' && len(raw) == op.width) {
						canon |= 1 << uint(i)
					}
					continue
				}
			}
			f := &sch.Fields[i]
			v, err := parseNumeric(f, raw)
			if err != nil {
				if perr == nil {
					perr = &parseError{kind: sch.Kind, field: f.Name, problem: fieldProblem(f, err),
						excerpt: Mask(f.Sensitive, maskExcerpt(string(line[op.off:op.end])))}
				}
			} else if len(raw) == 0 || (op.dateSame && len(raw) == op.width) {
				// A blank is written back as spaces; a date whose
				// layout fills the field, digit by digit.
				canon |= 1 << uint(i)
			}
			rec.Values[i] = v
			continue
		}
		if op.trim {
			raw = trimPadWords(raw, op.pad, op.right)
		}
		if len(raw) == 0 {
			rec.Values[i] = Value{}
			canon |= 1 << uint(i)
			continue
		}
		if isASCII(raw) {
			// ASCII is the same bytes in every supported charset.
			rec.Values[i] = Value{Str: unsafe.String(&raw[0], len(raw)), Set: true}
			// Written back padded, except that encodeField puts a
			// minus before zero padding.
			if !op.right || op.pad != '0' || raw[0] != '-' {
				canon |= 1 << uint(i)
			}
			continue
		}
		// Names and remarks are often the same as in the record before:
		// its string (never written again) is handed out again.
		if last == nil {
			if s.last[sch.Kind] == nil {
				s.last[sch.Kind] = make([]lastText, len(sch.ops))
			}
			last = s.last[sch.Kind]
		}
		m := &last[i]
		if m.ok && len(raw) == len(m.src) && sameTail(raw, m.src) && string(raw) == string(m.src) {
			rec.Values[i] = Value{Str: m.str, Set: true}
			continue
		}
		start := len(buf)
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
		m.str, m.ok = str, true
		m.src = append(m.src[:0], raw...)
	}
	s.text = buf
	if perr != nil {
		rec.from = nil
		return perr
	}
	p := &s.parsed[sch.Kind]
	p.l, p.schema, p.line, p.canon = s.l, sch, line, canon
	p.vals = append(p.vals[:0], rec.Values...)
	rec.from = p
	return nil
}

// parsedLine is a fixed-width line as a lineSource parsed it, kept for a
// Writer of the same layout: a field whose value is still the one parsed,
// and whose bytes are what the Writer would write for it (canon), is copied
// from the line instead of being encoded again. It is owned by the source
// and overwritten by the next line of the same kind, as is the Record that
// points to it.
type parsedLine struct {
	l      *Layout
	schema *Schema
	line   []byte  // in the text arena: never written again
	vals   []Value // the values parsed from line
	canon  uint64  // bit i: field i is written back as it was read
}

// unchanged returns the fields of vals that encodeFixed may copy from the
// line: those whose bytes are written back as they were read (canon) and
// whose value is still the one parsed, with the same string (not only equal
// text: the strings parsed are views of the line or of text decoded from
// it). It returns 0 unless the schema's fields follow each other from the
// start of the line, so that the bytes between two fields encoded anew are
// those of the fields copied.
func (p *parsedLine) unchanged(vals []Value) uint64 {
	if !p.schema.packed || len(vals) != len(p.vals) {
		return 0
	}
	var keep uint64
	for i := range vals {
		a, b := &vals[i], &p.vals[i]
		if a.Int == b.Int && a.Set == b.Set && len(a.Str) == len(b.Str) &&
			unsafe.StringData(a.Str) == unsafe.StringData(b.Str) {
			keep |= 1 << uint(i)
		}
	}
	return keep & p.canon
}

// lastText is a non-ASCII text field's value in the record before, for
// parseFixed.
type lastText struct {
	str string // the value handed out
	src []byte // the field's bytes (trimmed)
	ok  bool
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
func sameTail(a, b []byte) bool {
	n := len(a)
	if n < 8 || len(b) != n {
		return true
	}
	return binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
}
