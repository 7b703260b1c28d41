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
	// edge is the index in the field of the byte padding would be in
	// (the last, or the first when right-aligned).
	edge int
	// words has bit w set for each eight bytes of the line (8w to 8w+7)
	// the field overlaps; all bits for a field beyond 512 bytes.
	words uint64
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
			right: f.right, trim: f.trim, edge: f.Width - 1, words: ^uint64(0)}
		if f.right {
			op.edge = 0
		}
		if op.end <= 64*8 {
			op.words = 0
			for w := op.off / 8; w <= (op.end-1)/8; w++ {
				op.words |= 1 << uint(w)
			}
		}
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
// Runs of eight digits are tested and converted a word at a time.
func parseDigits(b []byte) (n int64, ok bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	k := len(b) % 8
	for _, c := range b[:k] {
		d := c - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int64(d)
	}
	for b = b[k:]; len(b) >= 8; b = b[8:] {
		x := binary.LittleEndian.Uint64(b)
		if !digits8(x) {
			return 0, false
		}
		n = n*100_000_000 + int64(eightDigits(x))
	}
	return n, true
}

// eightDigits converts eight ASCII digits, read as a little-endian word
// (the first digit in the lowest byte), to their value: pairs of digits,
// then pairs of pairs, then the two halves, each step one multiplication.
func eightDigits(x uint64) uint64 {
	x &= 0x0F0F0F0F0F0F0F0F
	x = (x * (10<<8 + 1)) >> 8 & 0x00FF00FF00FF00FF
	x = (x * (100<<16 + 1)) >> 16 & 0x0000FFFF0000FFFF
	return (x * (10000<<32 + 1)) >> 32
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
	k := len(s.text)
	s.text = append(s.text, line...)
	line = s.text[k:len(s.text):len(s.text)]
	var perr *parseError
	// canon has bit i set when field i's bytes are what encodeFixed
	// writes for the value parsed from them.
	var canon uint64
	// hi has bit w set when bytes 8w to 8w+7 of the line may hold a
	// non-ASCII byte: a text field none of whose words is marked is ASCII
	// without a closer look.
	hi := ^uint64(0)
	if len(line) <= 64*8 && len(line) >= 8 {
		hi = 0
		w := 0
		for ; w <= len(line)-8; w += 8 {
			if binary.LittleEndian.Uint64(line[w:w+8])&0x8080808080808080 != 0 {
				hi |= 1 << (uint(w/8) & 63)
			}
		}
		if w < len(line) && binary.LittleEndian.Uint64(line[len(line)-8:])&0x8080808080808080 != 0 {
			hi |= 1 << (uint(w/8) & 63)
		}
	}
	ops := sch.ops
	vals := rec.Values[:len(ops)]
	for i := range ops {
		op := &ops[i]
		raw := line[op.off:op.end]
		if op.kind != opText {
			raw = trimSpaces(raw)
			if op.kind == opInt {
				if n, ok := parseDigits(raw); ok {
					vals[i] = Value{Int: n, Set: true}
					// Written back as op.pad then the digits without
					// leading zeros.
					if (op.pad == ' ' && line[op.end-1] != ' ' && (raw[0] != '0' || len(raw) == 1)) ||
						(op.pad == '0' && len(raw) == op.width) {
						canon |= 1 << (uint(i) & 63)
					}
					continue
				}
			}
			if op.dateSame {
				// parseDate's positional path, straight.
				if n, err := parseFast(sch.Fields[i].date, raw); err == nil {
					vals[i] = Value{Int: n, Set: true}
					canon |= 1 << (uint(i) & 63)
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
				canon |= 1 << (uint(i) & 63)
			}
			vals[i] = v
			continue
		}
		if op.trim && raw[op.edge] == op.pad {
			raw = trimPadWords(raw, op.pad, op.right)
		}
		if len(raw) == 0 {
			vals[i] = Value{}
			canon |= 1 << (uint(i) & 63)
			continue
		}
		if hi&op.words == 0 || isASCII(raw) {
			// ASCII is the same bytes in every supported charset.
			vals[i] = Value{Str: unsafe.String(&raw[0], len(raw)), Set: true}
			// Written back padded, except that encodeField puts a
			// minus before zero padding.
			if !op.right || op.pad != '0' || raw[0] != '-' {
				canon |= 1 << (uint(i) & 63)
			}
			continue
		}
		v, same, err := s.decodeText(sch, i, raw)
		vals[i] = v
		if err != nil {
			if perr == nil {
				perr = &parseError{kind: sch.Kind, field: sch.Fields[i].Name, problem: err.Error()}
			}
			perr.charset = perr.charset || isCharsetErr(err)
			continue
		}
		// Written back as it is when the codec encodes the text back to
		// the same bytes, except that encodeField puts a minus before
		// zero padding.
		if same && (!op.right || op.pad != '0' || raw[0] != '-') {
			canon |= 1 << (uint(i) & 63)
		}
	}
	if len(ops) > 64 {
		canon = 0
	}
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

// decodeText returns the value of the non-ASCII text raw of field i of
// sch, decoded into the text arena, and whether the codec
// encodes it back to raw. Names and remarks are often the same as in the
// record before: its string (never written again) is handed out again.
func (s *lineSource) decodeText(sch *Schema, i int, raw []byte) (Value, bool, error) {
	last := s.last[sch.Kind]
	if last == nil {
		last = make([]lastText, len(sch.ops))
		s.last[sch.Kind] = last
	}
	m := &last[i]
	if m.ok && len(raw) == len(m.src) && sameTail(raw, m.src) && string(raw) == string(m.src) {
		return Value{Str: m.str, Set: true}, m.same, nil
	}
	start := len(s.text)
	buf, same, err := s.l.codec.decodeSame(s.text, raw)
	if err != nil {
		s.text = buf[:start]
		return Value{}, false, err
	}
	s.text = buf
	if len(buf) == start {
		return Value{}, false, nil
	}
	str := unsafe.String(&buf[start], len(buf)-start)
	m.str, m.same, m.ok = str, same, true
	m.src = append(m.src[:0], raw...)
	return Value{Str: str, Set: true}, same, nil
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
	// A record untouched since it was read is the same bytes as the copy
	// of its values (same strings, numbers and flags): one comparison.
	// Otherwise, field by field (values of equal fields whose padding
	// bytes differ are compared there).
	if len(vals) > 0 {
		size := len(vals) * int(unsafe.Sizeof(vals[0]))
		a := unsafe.String((*byte)(unsafe.Pointer(&vals[0])), size)
		b := unsafe.String((*byte)(unsafe.Pointer(&p.vals[0])), size)
		if a == b {
			return p.canon
		}
	}
	var keep uint64
	for i := range vals {
		a, b := &vals[i], &p.vals[i]
		if a.Int == b.Int && a.Set == b.Set && len(a.Str) == len(b.Str) &&
			unsafe.StringData(a.Str) == unsafe.StringData(b.Str) {
			keep |= 1 << (uint(i) & 63)
		}
	}
	return keep & p.canon
}

// lastText is a non-ASCII text field's value in the record before, for
// parseFixed.
type lastText struct {
	str  string // the value handed out
	src  []byte // the field's bytes (trimmed)
	same bool   // the codec encodes str back to src
	ok   bool
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

// padLine returns a line of the fields of ops with each field all its pad:
// encodeFixed copies it and writes each value over its field, so that
// padding costs nothing per field.
func padLine(ops []fixedOp) []byte {
	if len(ops) == 0 {
		return nil
	}
	line := make([]byte, ops[len(ops)-1].end)
	for i := range ops {
		fillRun(line[ops[i].off:ops[i].end], ops[i].pad)
	}
	return line
}

// fillRun sets every byte of b to c.
func fillRun(b []byte, c byte) {
	for i := range b {
		b[i] = c
	}
}

// digitPairs holds "00" to "99" in turn.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// putDigits writes the decimal digits of x ≥ 0 at the end of out, two at a
// time, and leaves the bytes before them as they are; out must be long
// enough.
func putDigits(out []byte, x int64) {
	j := len(out)
	for x >= 100 {
		q := x / 100
		r := 2 * (x - 100*q)
		j -= 2
		out[j], out[j+1] = digitPairs[r], digitPairs[r+1]
		x = q
	}
	if x >= 10 {
		out[j-2], out[j-1] = digitPairs[2*x], digitPairs[2*x+1]
		return
	}
	out[j-1] = byte('0' + x)
}

// putASCII copies s to the start of out (at least as long) and reports
// whether s is ASCII; when it is not, out has been written over anyway.
// It moves the bytes in words (the last one overlapping the one before),
// testing their high bits on the way.
func putASCII(out []byte, s string) bool {
	n := len(s)
	b := unsafe.Slice(unsafe.StringData(s), n)
	out = out[:n]
	switch {
	case n >= 8:
		var acc uint64
		for i := 0; i+8 <= n; i += 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			acc |= x
			binary.LittleEndian.PutUint64(out[i:], x)
		}
		x := binary.LittleEndian.Uint64(b[n-8:])
		binary.LittleEndian.PutUint64(out[n-8:], x)
		return (acc|x)&0x8080808080808080 == 0
	case n >= 4:
		x, y := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[n-4:])
		binary.LittleEndian.PutUint32(out, x)
		binary.LittleEndian.PutUint32(out[n-4:], y)
		return (x|y)&0x80808080 == 0
	case n >= 2:
		x, y := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[n-2:])
		binary.LittleEndian.PutUint16(out, x)
		binary.LittleEndian.PutUint16(out[n-2:], y)
		return (x|y)&0x8080 == 0
	case n == 1:
		out[0] = b[0]
		return b[0] < 0x80
	}
	return true
}
