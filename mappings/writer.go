package mappings

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
)

// FieldError reports a record the Writer could not write. It matches the
// wrapped sentinel (ErrTooLong, ErrEncode, ErrField, ...).
type FieldError struct {
	// Kind is the record kind.
	Kind RecordKind
	// Field is the field name.
	Field string
	// Excerpt is the masked value.
	Excerpt string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s field %s (%q): %v", e.Kind, e.Field, e.Excerpt, e.Err)
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// WriterOptions tune a Writer.
type WriterOptions struct {
	// OnWarning receives warnings (a Luhn failure, a truncated value).
	OnWarning func(Reject)
	// SkipValidation trusts details to be valid: set it only when every
	// record comes from a Reader of the same layout, which validated it.
	SkipValidation bool
}

// Writer writes records of a layout. Details are validated before they
// are written; a record that fails is not written and Write returns a
// *FieldError. Close computes and writes the trailer. Not safe for
// concurrent use.
//
// A fixed-width record just returned by a Reader of the same layout has
// the fields it still holds as read copied from the line read, when those
// bytes are what the Writer would write for them (a record read and
// written again costs little more than the changed fields).
type Writer struct {
	l       *Layout
	opts    WriterOptions
	ob      outBuf
	line    []byte
	scratch []byte
	field   []byte // a field encoded apart (encodeFixed)
	count   int64
	sums    []int64
	header  *Record
	started bool
	trailer bool
	closed  bool
	sink    recordSink
	written int64
	sumIdx  []int
	env     map[string]any // computed fields
	// last is, per record kind and field, the non-ASCII text written
	// last and its encoding (see encodeFixed).
	last [3][]lastEncoded
}

// recordSink writes JSON and XML records.
type recordSink interface {
	begin(w *Writer) error
	write(w *Writer, rec *Record) error
	end(w *Writer) error
}

// NewWriter returns a writer of layout l to out.
func NewWriter(l *Layout, out io.Writer, opts WriterOptions) *Writer {
	w := &Writer{l: l, opts: opts, ob: outBuf{w: out}, sums: make([]int64, len(l.Detail.Fields))}
	w.sumIdx = l.sumFields
	if i := l.Detail.CanonicalIndex(CanonAmount); i >= 0 && !slices.Contains(w.sumIdx, i) {
		w.sumIdx = append(slices.Clip(w.sumIdx), i)
	}
	switch l.Format {
	case FormatJSON:
		w.sink = &jsonSink{}
	case FormatXML:
		w.sink = &xmlSink{}
	}
	return w
}

// Count returns the number of details written so far.
func (w *Writer) Count() int64 { return w.count }

// Sum returns the sum of the canonical amount of the details written.
func (w *Writer) Sum() int64 {
	if i := w.l.Detail.CanonicalIndex(CanonAmount); i >= 0 {
		return w.sums[i]
	}
	return 0
}

// Write validates and writes one record. A header must come first; its
// aggregate fields (a summary header) must be given by the caller and are
// checked by Close. A trailer's aggregates are computed.
func (w *Writer) Write(rec *Record) error {
	if w.closed || w.trailer {
		return errors.New("mappings: write after trailer or close")
	}
	if err := w.begin(); err != nil {
		return err
	}
	s := rec.schema
	switch rec.Kind {
	case KindHeader:
		if w.count > 0 || w.header != nil {
			return errors.New("mappings: header after details")
		}
		for _, ai := range s.aggs {
			if !rec.Values[ai].Set {
				return &FieldError{Kind: rec.Kind, Field: s.Fields[ai].Name, Err: fmt.Errorf("%w: summary header field must be given (expected count or total)", ErrField)}
			}
		}
		w.header = rec.Clone()
	case KindTrailer:
		w.fillAggregates(rec)
		w.trailer = true
	case KindDetail:
		for _, ai := range s.aggs {
			rec.Values[ai] = Value{Int: w.count + 1, Set: true}
		}
	}
	if len(s.computed) > 0 {
		if w.env == nil {
			w.env = map[string]any{}
		}
		if err := computeFields(rec, w.env); err != nil {
			return err
		}
	}
	k := 0
	if w.opts.SkipValidation && rec.Kind == KindDetail {
		k = len(s.checks)
	}
	for k = s.failing(rec.Values, k); k < len(s.checks); k = s.failing(rec.Values, k+1) {
		i := s.checks[k].i
		f := &s.Fields[i]
		p, warn := validateField(f, &rec.Values[i])
		if p == "" {
			continue
		}
		if !warn {
			return &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, rec.Text(i)), Err: fmt.Errorf("%w: %s", ErrField, p)}
		}
		w.warn(rec, f, p, rec.Text(i))
	}
	if rec.Kind == KindDetail && w.l.headerRow && w.count == 0 && w.sink == nil {
		w.line = w.line[:0]
		for i := range s.Fields {
			if i > 0 {
				w.line = append(w.line, w.l.sep...)
			}
			w.line = append(w.line, s.Fields[i].key...)
		}
		if err := w.emit(w.line); err != nil {
			return err
		}
	}
	var err error
	switch {
	case w.sink != nil:
		err = w.sink.write(w, rec)
	case w.l.Format == FormatFixed:
		err = w.encodeFixed(rec)
	default:
		err = w.encodeDelimited(rec)
	}
	if err != nil {
		return err
	}
	w.written++
	if rec.Kind == KindDetail {
		w.count++
		for _, i := range w.sumIdx {
			w.sums[i] += rec.Values[i].Int
		}
	}
	return nil
}

func (w *Writer) begin() error {
	if w.started {
		return nil
	}
	w.started = true
	if w.sink != nil {
		return w.sink.begin(w)
	}
	return nil
}

func (w *Writer) warn(rec *Record, f *Field, problem, value string) {
	if w.opts.OnWarning != nil {
		w.opts.OnWarning(Reject{Line: w.written + 1, Kind: rec.Kind, Field: f.Name, Problem: problem, Excerpt: Mask(f.Sensitive, value), Warning: true})
	}
}

func (w *Writer) fillAggregates(rec *Record) {
	for _, ai := range rec.schema.aggs {
		f := &rec.schema.Fields[ai]
		v := w.count
		if f.Aggregate == "sum" {
			v = w.sums[f.ofIdx]
		}
		rec.Values[ai] = Value{Int: v, Set: true}
	}
}

// Close writes the trailer (if the layout has one and none was written),
// flushes, and checks a summary header against the details. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.begin(); err != nil {
		return err
	}
	var errs []error
	if w.l.Trailer != nil && !w.trailer {
		if err := w.Write(NewRecord(w.l.Trailer)); err != nil {
			errs = append(errs, err)
		}
	}
	w.closed = true
	if w.sink != nil {
		if err := w.sink.end(w); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.ob.flush(); err != nil {
		errs = append(errs, fmt.Errorf("mappings: flush: %w", err))
	}
	if w.header != nil {
		for _, ai := range w.header.schema.aggs {
			f := &w.header.schema.Fields[ai]
			want := w.count
			if f.Aggregate == "sum" {
				want = w.sums[f.ofIdx]
			}
			if got := w.header.Values[ai].Int; got != want {
				errs = append(errs, fmt.Errorf("%w: header %s says %s, details written give %s", ErrTrailerMismatch, f.Name, aggText(f, got), aggText(f, want)))
			}
		}
	}
	return errors.Join(errs...)
}

// SetHeaderAggregates fills the aggregate fields of a summary header with
// the expected count and total (e.g. from the payment letter). sum is used
// for every sum field.
func SetHeaderAggregates(rec *Record, count, sum int64) {
	for _, ai := range rec.schema.aggs {
		v := count
		if rec.schema.Fields[ai].Aggregate == "sum" {
			v = sum
		}
		rec.Values[ai] = Value{Int: v, Set: true}
	}
}

func (w *Writer) emit(line []byte) error {
	line = append(line, w.l.eol...)
	_, err := w.ob.Write(line)
	return err
}

// appendNumeric appends the text of a numeric value.
func appendNumeric(dst []byte, f *Field, v int64) []byte {
	switch {
	case f.date != nil:
		return f.date.format(dst, v)
	case f.yuan:
		return appendYuan(dst, v)
	}
	return strconv.AppendInt(dst, v, 10)
}

// padRun appends n copies of c.
func padRun(dst []byte, c byte, n int) []byte {
	const run = "                                                                "
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	for n > 0 {
		k := min(n, len(run))
		switch c {
		case ' ':
			dst = append(dst, run[:k]...)
		case '0':
			dst = append(dst, zeros[:k]...)
		default:
			for j := 0; j < k; j++ {
				dst = append(dst, c)
			}
		}
		n -= k
	}
	return dst
}

// encodeFixed writes a fixed-width record, building the line straight in
// the output buffer: a copy of the schema's padLine (or of the line read,
// see below), each value then written over its field. Each field goes
// through the plan's fast path when it has one (ASCII left-aligned text
// that fits, non-negative integers that fit, blanks, dates by position)
// and through encodeField otherwise.
func (w *Writer) encodeFixed(rec *Record) error {
	s := rec.schema
	need := s.Length + len(w.l.eol)
	if err := w.ob.reserve(need); err != nil {
		return err
	}
	var last []lastEncoded
	// A field still holding the value a Reader of this layout parsed from
	// bytes that encode it (parsedLine.canon) is copied from the line it
	// was read from: keep marks those fields. The line starts as a copy of
	// the line read, and each other field is set to its pad first.
	from := rec.from
	var keep uint64
	if from != nil && from.l == w.l && from.schema == s {
		keep = from.unchanged(rec.Values)
	}
	base := len(w.ob.buf)
	var line []byte
	if keep != 0 {
		line = append(w.ob.buf, from.line[:s.Length]...)
	} else {
		line = append(w.ob.buf, s.padLine...)
	}
	rl := line[base:len(line):len(line)]
	ops := s.ops
	vals := rec.Values[:len(ops)]
	for i := 0; i < len(ops); i++ {
		if keep != 0 {
			// Skip the run of fields copied.
			if k := keep >> uint(i); k&1 != 0 {
				if i += bits.TrailingZeros64(^k); i >= len(ops) {
					break
				}
			}
		}
		op := &ops[i]
		if keep != 0 {
			copy(rl[op.off:op.end], s.padLine[op.off:op.end])
		}
		v := &vals[i]
		if !v.Set {
			if op.blank != op.pad {
				fillRun(rl[op.off:op.end], op.blank)
			}
			continue
		}
		switch op.kind {
		case opText:
			if op.right {
				break
			}
			if len(v.Str) <= op.width {
				if putASCII(rl[op.off:], v.Str) {
					// ASCII is the same bytes in every supported charset.
					continue
				}
				copy(rl[op.off:op.end], s.padLine[op.off:op.end])
			}
			// Other text (names, remarks) is often the same as in the
			// record before: its encoding is kept.
			if last == nil {
				if w.last[s.Kind] == nil {
					w.last[s.Kind] = make([]lastEncoded, len(s.ops))
				}
				last = w.last[s.Kind]
			}
			if m := &last[i]; m.ok && v.Str == m.str {
				copy(rl[op.off:], m.enc)
				continue
			}
			// Else it is encoded; if that fails or does not fit,
			// encodeField does it again and reports or truncates.
			if enc, err := w.l.codec.encode(w.field[:0], v.Str); err == nil && len(enc) <= op.width {
				w.field = enc
				m := &last[i]
				m.str, m.enc, m.ok = v.Str, append(m.enc[:0], enc...), true
				copy(rl[op.off:], enc)
				continue
			}
		case opInt:
			if x := v.Int; x >= 0 && (op.limit == 0 || x < op.limit) {
				putDigits(rl[:op.end], x)
				continue
			}
		case opDate:
			if f := &s.Fields[i]; f.date.mask != "" && len(f.date.mask) <= op.width {
				padN := op.width - len(f.date.mask)
				out := rl[op.off+padN : op.end]
				copy(out, f.date.mask)
				f.date.putDigits(out, v.Int)
				if padN == 0 || op.pad != '0' || out[0] != '-' {
					continue
				}
				// A leading minus goes before zero padding: the
				// general path's rule.
			}
		}
		// The general path writes the whole field.
		enc, err := w.encodeField(w.field[:0], rec, i)
		if err != nil {
			return err
		}
		w.field = enc
		copy(rl[op.off:op.end], enc)
	}
	w.ob.buf = append(line, w.l.eol...)
	return w.ob.flushFull()
}

// encodeField appends field i of rec, padded to its width: the general
// path of encodeFixed.
func (w *Writer) encodeField(line []byte, rec *Record, i int) ([]byte, error) {
	f := &rec.schema.Fields[i]
	v := &rec.Values[i]
	codec := w.l.codec
	if !v.Set {
		// A blank field is all pad (all spaces for numbers).
		c := f.pad
		if f.num {
			c = ' '
		}
		return padRun(line, c, f.Width), nil
	}
	if !f.num && !f.right {
		// Left-aligned text is encoded straight into the line.
		start := len(line)
		var err error
		line, err = codec.encode(line, v.Str)
		if err != nil {
			return line, &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, v.Str), Err: err}
		}
		if n := len(line) - start; n > f.Width {
			cut, err := w.truncate(rec, f, i, line[start:])
			if err != nil {
				return line, err
			}
			line = line[:start+cut]
		}
		return padRun(line, f.pad, f.Width-(len(line)-start)), nil
	}
	text := w.scratch[:0]
	if f.num {
		text = appendNumeric(text, f, v.Int)
	} else {
		var err error
		text, err = codec.encode(text, v.Str)
		if err != nil {
			return line, &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, v.Str), Err: err}
		}
	}
	w.scratch = text
	if len(text) > f.Width {
		cut, err := w.truncate(rec, f, i, text)
		if err != nil {
			return line, err
		}
		text = text[:cut]
	}
	padN := f.Width - len(text)
	if f.pad == '0' && len(text) > 0 && text[0] == '-' {
		line = append(line, '-')
		text = text[1:]
	}
	line = padRun(line, f.pad, padN)
	return append(line, text...), nil
}

// truncate returns how many bytes of the encoded text fit field f without
// splitting a character, or a *FieldError when f does not allow
// truncation.
func (w *Writer) truncate(rec *Record, f *Field, i int, text []byte) (int, error) {
	codec := w.l.codec
	if f.num || !f.truncate {
		return 0, &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, rec.Text(i)),
			Err: fmt.Errorf("%w: %d bytes in %s, width %d", ErrTooLong, len(text), codec.name(), f.Width)}
	}
	cut := 0
	for cut < len(text) {
		n := codec.charLen(text[cut:])
		if n <= 0 || cut+n > f.Width {
			break
		}
		cut += n
	}
	if cut < f.Width {
		w.warn(rec, f, fmt.Sprintf("%v: truncated to %d of %d bytes", ErrSplitMultibyte, cut, f.Width), rec.Values[i].Str)
	} else {
		w.warn(rec, f, fmt.Sprintf("truncated to %d bytes", cut), rec.Values[i].Str)
	}
	return cut, nil
}

func (w *Writer) encodeDelimited(rec *Record) error {
	s := rec.schema
	text := w.scratch[:0]
	for i := range s.Fields {
		f := &s.Fields[i]
		v := &rec.Values[i]
		if i > 0 {
			text = append(text, w.l.sep...)
		}
		if !v.Set {
			continue
		}
		if f.num {
			text = appendNumeric(text, f, v.Int)
		} else {
			text = appendDelimitedField(text, v.Str, w.l.sep, w.l.quote)
		}
	}
	if w.l.trailSep {
		text = append(text, w.l.sep...)
	}
	w.scratch = text
	line, err := w.l.codec.encode(w.line[:0], string(text))
	if err != nil {
		return &FieldError{Kind: rec.Kind, Field: "(record)", Err: err}
	}
	w.line = line
	return w.emit(line)
}

// outBufSize is the size of a Writer's output buffer.
const outBufSize = 64 << 10

// outBuf buffers a Writer's output. Fixed-width lines are built in place in
// it (see encodeFixed), which bufio.Writer cannot do without copying each
// line once more. A write error is kept and returned by every later call.
type outBuf struct {
	w   io.Writer
	buf []byte
	err error
}

// reserve makes room for n more bytes, writing the buffer out first if
// they do not fit.
func (b *outBuf) reserve(n int) error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, max(outBufSize, n))
	}
	if cap(b.buf)-len(b.buf) < n && len(b.buf) > 0 {
		return b.flush()
	}
	return nil
}

// flushFull writes the buffer out once it holds outBufSize bytes.
func (b *outBuf) flushFull() error {
	if len(b.buf) >= outBufSize {
		return b.flush()
	}
	return nil
}

// Write appends p (and writes the buffer out when full).
func (b *outBuf) Write(p []byte) (int, error) {
	if err := b.reserve(len(p)); err != nil {
		return 0, err
	}
	b.buf = append(b.buf, p...)
	if err := b.flushFull(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes out what is buffered.
func (b *outBuf) flush() error {
	if b.err != nil {
		return b.err
	}
	if len(b.buf) == 0 {
		return nil
	}
	n, err := b.w.Write(b.buf)
	if err == nil && n < len(b.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = err
		return err
	}
	b.buf = b.buf[:0]
	return nil
}

// lastEncoded is a text value a Writer encoded, with its encoding.
type lastEncoded struct {
	str string
	enc []byte
	ok  bool
}
