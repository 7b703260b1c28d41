package mappings

import (
	"unsafe"
)

// The general fixed-width parser and encoder as they were before the
// per-layout plan (plan.go): the fast paths must give the same values,
// bytes, errors and warnings (plan_test.go).

// parseFixedRef is the general parser the plan's fast paths replaced,
// kept as the reference they are compared with: it decodes every field of
// a fixed-width line. Text fields are
// decoded into the source's text arena and handed out as views of it, so
// that records share one allocation per arena chunk instead of costing one
// each.
func (s *lineSource) parseFixedRef(sch *Schema, line []byte, rec *Record) *parseError {
	codec := s.l.codec
	// A character decodes to at most three UTF-8 bytes per byte of input
	// (GB18030's single 0x80 is U+20AC); with that room, appending never
	// moves the chunk. (Were it moved, the strings already handed out would
	// keep the old chunk, which is no longer written: still safe.)
	if need := 3 * len(line); cap(s.text)-len(s.text) < need {
		s.text = make([]byte, 0, max(textChunk, need))
	}
	buf := s.text
	base := len(buf)
	if cap(s.spans) < 2*len(sch.Fields) {
		s.spans = make([]int, 2*len(sch.Fields))
	}
	spans := s.spans[:2*len(sch.Fields)]
	var perr *parseError
	fail := func(f *Field, problem, excerpt string) {
		if perr == nil {
			perr = &parseError{kind: sch.Kind, field: f.Name, problem: problem, excerpt: excerpt}
		}
	}
	for i := range sch.Fields {
		f := &sch.Fields[i]
		raw := line[f.Offset : f.Offset+f.Width]
		if f.num {
			spans[2*i] = -1
			v, err := parseNumeric(f, trimSpaces(raw))
			if err != nil {
				fail(f, fieldProblem(f, err), Mask(f.Sensitive, maskExcerpt(string(raw))))
			}
			rec.Values[i] = v
			continue
		}
		if f.trim {
			raw = trimPad(raw, f.pad, f.right)
		}
		start := len(buf)
		var err error
		buf, err = codec.decode(buf, raw)
		if err != nil {
			buf = buf[:start]
			fail(f, err.Error(), "")
			perr.charset = perr.charset || isCharsetErr(err)
		}
		spans[2*i], spans[2*i+1] = start-base, len(buf)-base
	}
	var str string
	if len(buf) > base {
		// The bytes from base on are never written again: the next record
		// appends after them, and a new chunk is allocated when this one
		// is full.
		str = unsafe.String(&buf[base], len(buf)-base)
	}
	s.text = buf
	for i := range sch.Fields {
		if st := spans[2*i]; st >= 0 {
			end := spans[2*i+1]
			rec.Values[i] = Value{Str: str[st:end], Set: end > st}
		}
	}
	return perr
}

// encodeFixedRef encodes every field of rec through encodeField, the
// general path that encodeFixed's fast paths fall back to and must agree
// with. It returns the line (with its ending) instead of writing it.
func (w *Writer) encodeFixedRef(rec *Record) ([]byte, error) {
	var line []byte
	for i := range rec.schema.Fields {
		var err error
		if line, err = w.encodeField(line, rec, i); err != nil {
			return nil, err
		}
	}
	return append(line, w.l.eol...), nil
}

// trimPad is the byte-at-a-time trim that trimPadWords replaced, kept as
// its reference.
func trimPad(b []byte, pad byte, right bool) []byte {
	if right {
		for len(b) > 0 && b[0] == pad {
			b = b[1:]
		}
		return b
	}
	for len(b) > 0 && b[len(b)-1] == pad {
		b = b[:len(b)-1]
	}
	return b
}
