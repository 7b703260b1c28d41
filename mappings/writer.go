package mappings

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
type Writer struct {
	l       *Layout
	opts    WriterOptions
	bw      *bufio.Writer
	line    []byte
	scratch []byte
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
}

// recordSink writes JSON and XML records.
type recordSink interface {
	begin(w *Writer) error
	write(w *Writer, rec *Record) error
	end(w *Writer) error
}

// NewWriter returns a writer of layout l to out.
func NewWriter(l *Layout, out io.Writer, opts WriterOptions) *Writer {
	w := &Writer{l: l, opts: opts, bw: bufio.NewWriterSize(out, 64<<10), sums: make([]int64, len(l.Detail.Fields))}
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
	for i := range s.Fields {
		if w.opts.SkipValidation && rec.Kind == KindDetail {
			break
		}
		f := &s.Fields[i]
		if !f.checked {
			continue
		}
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
	if err := w.bw.Flush(); err != nil {
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
	_, err := w.bw.Write(line)
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

func (w *Writer) encodeFixed(rec *Record) error {
	s := rec.schema
	codec := w.l.codec
	// Build the line straight in the bufio buffer when it fits: Write then
	// copies it onto itself, and no line buffer is needed.
	line := w.line[:0]
	direct := false
	if w.bw.Available() >= s.Length+len(w.l.eol) {
		line, direct = w.bw.AvailableBuffer(), true
	}
	for i := range s.Fields {
		f := &s.Fields[i]
		v := &rec.Values[i]
		if !v.Set {
			// A blank field is all pad (all spaces for numbers).
			c := f.pad
			if f.num {
				c = ' '
			}
			line = padRun(line, c, f.Width)
			continue
		}
		if !f.num && !f.right {
			// Left-aligned text is encoded straight into the line.
			start := len(line)
			var err error
			line, err = codec.encode(line, v.Str)
			if err != nil {
				return &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, v.Str), Err: err}
			}
			if n := len(line) - start; n > f.Width {
				cut, err := w.truncate(rec, f, i, line[start:])
				if err != nil {
					return err
				}
				line = line[:start+cut]
			}
			line = padRun(line, f.pad, f.Width-(len(line)-start))
			continue
		}
		text := w.scratch[:0]
		if f.num {
			text = appendNumeric(text, f, v.Int)
		} else {
			var err error
			text, err = codec.encode(text, v.Str)
			if err != nil {
				return &FieldError{Kind: rec.Kind, Field: f.Name, Excerpt: Mask(f.Sensitive, v.Str), Err: err}
			}
		}
		w.scratch = text
		if len(text) > f.Width {
			cut, err := w.truncate(rec, f, i, text)
			if err != nil {
				return err
			}
			text = text[:cut]
		}
		padN := f.Width - len(text)
		if f.pad == '0' && len(text) > 0 && text[0] == '-' {
			line = append(line, '-')
			text = text[1:]
		}
		line = padRun(line, f.pad, padN)
		line = append(line, text...)
	}
	if !direct {
		w.line = line
	}
	return w.emit(line)
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
