package mappings

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// utf8Input wraps in with the layout's charset decoder: strict, so that
// bytes invalid in the charset stop the file with their line (x/text's
// decoders would turn them into U+FFFD silently, and encoding/json too).
func utf8Input(l *Layout, in io.Reader) io.Reader {
	return &strictReader{r: in, c: l.codec, line: 1}
}

// strictReader decodes a charset to UTF-8, failing with ErrCharset and the
// line on the first invalid sequence.
type strictReader struct {
	r    io.Reader
	c    codec
	line int64  // line of the first byte of pending
	buf  []byte // read, not yet decoded (a character cut by the read)
	out  []byte // decoded, not yet returned
	obuf []byte // out's storage
	err  error  // sticky error, returned once out is drained
}

func (s *strictReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.fill()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// fill reads one chunk and decodes its complete characters.
func (s *strictReader) fill() {
	const chunk = 32 << 10
	start := len(s.buf)
	s.buf = slices.Grow(s.buf, chunk)
	n, rerr := s.r.Read(s.buf[start : start+chunk])
	s.buf = s.buf[:start+n]
	atEOF := rerr != nil
	// Decode up to the last complete character.
	end := 0
	for end < len(s.buf) {
		if s.buf[end] < 0x80 {
			end++
			continue
		}
		k := s.c.charLen(s.buf[end:])
		if k < 0 {
			break
		}
		end += k
	}
	if atEOF && end < len(s.buf) {
		s.err = fmt.Errorf("%w: line %d: %s character cut by the end of the file", ErrCharset, s.line+int64(bytes.Count(s.buf[:end], []byte{'\n'})), s.c.name())
		s.buf = s.buf[:end]
	}
	out, err := s.c.decode(s.obuf[:0], s.buf[:end])
	s.obuf = out
	if err != nil {
		// Find the offending character for its line.
		at := 0
		for at < end {
			k := max(1, s.c.charLen(s.buf[at:]))
			if _, e := s.c.decode(nil, s.buf[at:at+k]); e != nil {
				break
			}
			at += k
		}
		s.out = out[:0]
		s.err = fmt.Errorf("%w: line %d: %s bytes % X", ErrCharset, s.line+int64(bytes.Count(s.buf[:at], []byte{'\n'})), s.c.name(), s.buf[at:min(at+max(1, s.c.charLen(s.buf[at:])), end)])
		return
	}
	s.out = out
	s.line += int64(bytes.Count(s.buf[:end], []byte{'\n'}))
	s.buf = append(s.buf[:0], s.buf[end:]...)
	if rerr != nil && s.err == nil {
		s.err = rerr
	}
}

// boundedReader fails once the consumer has buffered more than max bytes
// beyond the start of the current record, so that one huge record cannot
// exhaust memory.
type boundedReader struct {
	r      io.Reader
	n      int64
	max    int64
	offset func() int64
	// keep, when set, receives a copy of every byte read (the XML source
	// keeps the current record for the reject file).
	keep func([]byte)
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n-b.offset() > b.max {
		return 0, fmt.Errorf("%w: over %d bytes", ErrRecordTooLarge, b.max)
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.keep != nil && n > 0 {
		b.keep(p[:n])
	}
	return n, err
}

// fieldsFor resets rec and sets its fields from key/text pairs.
func fillFromText(rec *Record, get func(key string) (string, bool)) *parseError {
	sch := rec.schema
	rec.Reset()
	var perr *parseError
	for i := range sch.Fields {
		f := &sch.Fields[i]
		s, ok := get(f.key)
		if !ok {
			continue
		}
		v, err := parseText(f, s)
		if err != nil && perr == nil {
			perr = &parseError{kind: sch.Kind, line: rec.Line, field: f.Name, problem: fieldProblem(f, err), excerpt: Mask(f.Sensitive, maskExcerpt(s))}
		}
		if f.Type == TypeConstant && !v.Set {
			continue
		}
		rec.Values[i] = v
	}
	return perr
}

type jsonSource struct {
	l       *Layout
	dec     *json.Decoder
	started bool
	n       int64
	obj     map[string]json.RawMessage
}

func newJSONSource(l *Layout, in io.Reader, max int) *jsonSource {
	s := &jsonSource{l: l}
	br := &boundedReader{r: utf8Input(l, in), max: int64(max)}
	s.dec = json.NewDecoder(br)
	br.offset = s.dec.InputOffset
	return s
}

func (s *jsonSource) next(rd *Reader) (*Record, []byte, *parseError, error) {
	if !s.started {
		s.started = true
		if s.l.jsonArray {
			t, err := s.dec.Token()
			if err != nil {
				return nil, nil, nil, fmt.Errorf("mappings: json: %w", err)
			}
			if d, ok := t.(json.Delim); !ok || d != '[' {
				return nil, nil, nil, fmt.Errorf("%w: json: want a top-level array", ErrRecord)
			}
		}
	}
	if !s.dec.More() {
		if s.l.jsonArray {
			if _, err := s.dec.Token(); err != nil {
				return nil, nil, nil, fmt.Errorf("mappings: json: %w", err)
			}
		}
		return nil, nil, nil, io.EOF
	}
	s.n++
	clear(s.obj)
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		return nil, nil, nil, fmt.Errorf("mappings: json record %d: %w", s.n, err)
	}
	if err := json.Unmarshal(raw, &s.obj); err != nil {
		return nil, raw, &parseError{line: s.n, problem: "not a JSON object"}, nil
	}
	get := func(key string) (string, bool) {
		m, ok := s.obj[key]
		if !ok || len(m) == 0 || string(m) == "null" {
			return "", false
		}
		if m[0] == '"' {
			var str string
			if json.Unmarshal(m, &str) != nil {
				return "", false
			}
			return str, true
		}
		if m[0] == '{' || m[0] == '[' {
			return "", false
		}
		return string(m), true
	}
	sch := s.l.Detail
	for _, c := range []*Schema{s.l.Header, s.l.Trailer} {
		if c != nil && c.selField >= 0 {
			if v, _ := get(c.Fields[c.selField].key); v == c.selValue {
				sch = c
			}
		}
	}
	rec := rd.recs[sch.Kind]
	rec.Line = s.n
	perr := fillFromText(rec, get)
	return rec, raw, perr, nil
}

type xmlSource struct {
	l     *Layout
	dec   *xml.Decoder
	n     int64
	root  bool
	vals  map[string]string
	depth int
	start int64 // input offset where the current record began
	// window holds the input from winBase on: the current record and
	// the decoder's read-ahead, for Reject.Raw.
	window  []byte
	winBase int64
	raw     []byte
}

func newXMLSource(l *Layout, in io.Reader, max int) *xmlSource {
	s := &xmlSource{l: l, vals: map[string]string{}}
	br := &boundedReader{r: utf8Input(l, in), max: int64(max)}
	s.dec = xml.NewDecoder(br)
	s.dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	// Bytes are counted from the start of the current record, so a
	// record with a huge text node fails instead of growing memory.
	br.offset = func() int64 { return s.start }
	br.keep = func(b []byte) { s.window = append(s.window, b...) }
	return s
}

// slide drops the window's bytes before the current record.
func (s *xmlSource) slide() {
	if drop := s.start - s.winBase; drop > 0 && drop <= int64(len(s.window)) {
		n := copy(s.window, s.window[drop:])
		s.window = s.window[:n]
		s.winBase = s.start
	}
}

// rawRecord returns the bytes of the record that began at s.start, in the
// file's charset.
func (s *xmlSource) rawRecord() []byte {
	lo, hi := s.start-s.winBase, s.dec.InputOffset()-s.winBase
	if lo < 0 || hi > int64(len(s.window)) || lo > hi {
		return nil
	}
	raw := bytes.TrimSpace(s.window[lo:hi])
	if _, ok := s.l.codec.(*gbkCodec); ok {
		out, err := s.l.codec.encode(s.raw[:0], string(raw))
		if err != nil {
			return nil
		}
		s.raw = out
		return out
	}
	return raw
}

func (s *xmlSource) schemaFor(name string) *Schema {
	for _, c := range []*Schema{s.l.Header, s.l.Detail, s.l.Trailer} {
		if c != nil && c.Element == name {
			return c
		}
	}
	return nil
}

func (s *xmlSource) next(rd *Reader) (*Record, []byte, *parseError, error) {
	for {
		s.start = s.dec.InputOffset()
		s.slide()
		tok, err := s.dec.Token()
		if err == io.EOF {
			if !s.root {
				return nil, nil, nil, fmt.Errorf("%w: xml: no root element %s", ErrRecord, s.l.root)
			}
			return nil, nil, nil, io.EOF
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mappings: xml: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !s.root {
			if se.Name.Local != s.l.root {
				return nil, nil, nil, fmt.Errorf("%w: xml root is %s, want %s", ErrRecord, se.Name.Local, s.l.root)
			}
			s.root = true
			continue
		}
		s.n++
		sch := s.schemaFor(se.Name.Local)
		if err := s.collect(); err != nil {
			return nil, nil, nil, err
		}
		raw := s.rawRecord()
		if sch == nil {
			return nil, raw, &parseError{line: s.n, problem: "unknown record element " + strconv.Quote(se.Name.Local)}, nil
		}
		rec := rd.recs[sch.Kind]
		rec.Line = s.n
		perr := fillFromText(rec, func(k string) (string, bool) { v, ok := s.vals[k]; return v, ok })
		return rec, raw, perr, nil
	}
}

// collect reads the children of the current record element into vals.
func (s *xmlSource) collect() error {
	clear(s.vals)
	depth := 1
	var key string
	var text bytes.Buffer
	for depth > 0 {
		tok, err := s.dec.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("mappings: xml record %d: %w", s.n, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				key = t.Name.Local
				text.Reset()
			}
		case xml.CharData:
			if depth == 2 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 2 {
				s.vals[key] = text.String()
			}
			depth--
		}
	}
	return nil
}

type jsonSink struct{ n int64 }

func (j *jsonSink) begin(w *Writer) error {
	if w.l.jsonArray {
		return w.writeUTF8([]byte("["))
	}
	return nil
}

func (j *jsonSink) write(w *Writer, rec *Record) error {
	b := w.scratch[:0]
	if w.l.jsonArray {
		// "[", then ",\n" between objects and "\n]" at the end: one object
		// per line without knowing which one is last.
		if j.n > 0 {
			b = append(b, ',')
		}
		b = append(b, w.l.eol...)
	}
	j.n++
	b = append(b, '{')
	first := true
	s := rec.schema
	for i := range s.Fields {
		f := &s.Fields[i]
		v := &rec.Values[i]
		if !v.Set {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		kb, _ := json.Marshal(f.key)
		b = append(b, kb...)
		b = append(b, ':')
		switch {
		case f.Type == TypeInteger || (f.Type == TypeAmount):
			b = appendNumeric(b, f, v.Int)
		case f.Type.numeric():
			b = append(b, '"')
			b = appendNumeric(b, f, v.Int)
			b = append(b, '"')
		default:
			sb, _ := json.Marshal(v.Str)
			b = append(b, sb...)
		}
	}
	b = append(b, '}')
	w.scratch = b
	if w.l.jsonArray {
		return w.writeUTF8(b)
	}
	return w.emitUTF8(b)
}

func (j *jsonSink) end(w *Writer) error {
	if w.l.jsonArray {
		return w.writeUTF8(append(append([]byte{}, w.l.eol...), ']', '\n'))
	}
	return nil
}

type xmlSink struct{}

func (xmlSink) begin(w *Writer) error {
	if err := w.emitUTF8([]byte(`<?xml version="1.0" encoding="` + w.l.Charset + `"?>`)); err != nil {
		return err
	}
	return w.emitUTF8([]byte("<" + w.l.root + ">"))
}

func (xmlSink) write(w *Writer, rec *Record) error {
	s := rec.schema
	b := append(w.scratch[:0], "  <"...)
	b = append(b, s.Element...)
	b = append(b, '>')
	for i := range s.Fields {
		f := &s.Fields[i]
		v := &rec.Values[i]
		if !v.Set {
			continue
		}
		b = append(b, '<')
		b = append(b, f.key...)
		b = append(b, '>')
		if f.Type.numeric() {
			b = appendNumeric(b, f, v.Int)
		} else {
			var buf bytes.Buffer
			_ = xml.EscapeText(&buf, []byte(v.Str))
			b = append(b, buf.Bytes()...)
		}
		b = append(b, "</"...)
		b = append(b, f.key...)
		b = append(b, '>')
	}
	b = append(b, "</"...)
	b = append(b, s.Element...)
	b = append(b, '>')
	w.scratch = b
	return w.emitUTF8(b)
}

func (xmlSink) end(w *Writer) error { return w.emitUTF8([]byte("</" + w.l.root + ">")) }

// writeUTF8 encodes UTF-8 text to the layout charset and writes it as is.
func (w *Writer) writeUTF8(b []byte) error {
	out, err := w.l.codec.encode(w.line[:0], string(b))
	if err != nil {
		return &FieldError{Field: "(record)", Err: err}
	}
	w.line = out
	_, err = w.ob.Write(out)
	return err
}

// emitUTF8 encodes a UTF-8 line to the layout charset and writes it.
func (w *Writer) emitUTF8(b []byte) error {
	line, err := w.l.codec.encode(w.line[:0], string(b))
	if err != nil {
		return &FieldError{Field: "(record)", Err: err}
	}
	w.line = line
	return w.emit(line)
}
