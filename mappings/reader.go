package mappings

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Reject reports a record that was not accepted (or, with Warning set, a
// record accepted with a warning). Values are masked: Excerpt never holds
// a whole ID, account or phone number.
type Reject struct {
	// Line is the 1-based line (record number for JSON and XML).
	Line int64
	// Kind is the record kind, if it could be told.
	Kind RecordKind
	// Field is the offending field, or empty for a record-level problem.
	Field string
	// Problem says what is wrong.
	Problem string
	// Excerpt is a masked excerpt of the offending value or line.
	Excerpt string
	// Warning marks a problem that did not reject the record.
	Warning bool
	// Part is the 1-based file of a multi-file input (0 for one file).
	Part int
	// Charset marks a record rejected for bytes invalid in the file's
	// charset: the whole file is then refused (see Reader.Verdict).
	Charset bool
	// Raw is the record as it was in the file (charset bytes, no line
	// ending). It is only valid during the OnReject call; it holds
	// unmasked data and may only go to a reject file, never to a log.
	Raw []byte
}

// String formats the reject for messages and logs (masked).
func (r Reject) String() string {
	what := "rejected"
	if r.Warning {
		what = "warning"
	}
	field := ""
	if r.Field != "" {
		field = " field " + r.Field
	}
	part := ""
	if r.Part > 0 {
		part = fmt.Sprintf("part %d ", r.Part)
	}
	return fmt.Sprintf("%sline %d %s%s: %s: %s (%q)", part, r.Line, r.Kind, field, what, r.Problem, r.Excerpt)
}

// ReaderOptions tune a Reader.
type ReaderOptions struct {
	// OnReject is called for each rejected record and each warning. It
	// may be nil (rejects are then only counted).
	OnReject func(Reject)
	// MaxRecordBytes bounds one line or JSON/XML record (default 1 MiB).
	MaxRecordBytes int
	// Part numbers the rejects of one file of a multi-file input
	// (1-based; 0 for a single file).
	Part int
}

// Summary counts what a Reader has seen so far.
type Summary struct {
	// Records is the number of records returned by Next (all kinds).
	Records int64
	// Details is the number of detail records returned.
	Details int64
	// Rejected is the number of rejected records.
	Rejected int64
	// Warnings is the number of warnings.
	Warnings int64
	// DetailLines is the number of detail records seen, rejected or not;
	// trailer counts are checked against it.
	DetailLines int64
	// AmountFen is the sum of the canonical amount of accepted details.
	AmountFen int64
	// Header and Trailer are copies of the header and trailer read, if any.
	Header, Trailer *Record
}

// Reader reads a file of a layout one record at a time. It is not safe for
// concurrent use.
type Reader struct {
	l    *Layout
	opts ReaderOptions
	src  rawSource

	recs    [3]*Record // reused per kind
	sum     Summary
	sums    []int64 // sum of detail field i over all detail lines
	amount  int     // detail index of the canonical amount, or -1
	err     error
	trailer bool // a trailer has been read
	lastRaw []byte
	env     map[string]any // computed fields
	// charsetN counts records rejected for invalid charset bytes;
	// charsetLine is the first one's line.
	charsetN, charsetLine int64
	scratch               [3]*Record
}

// rawSource yields records parsed but not validated. perr reports a field
// or record problem; the record is then rejected.
type rawSource interface {
	next(rd *Reader) (rec *Record, raw []byte, perr *parseError, err error)
}

type parseError struct {
	charset bool // bytes invalid in the charset
	kind    RecordKind
	line    int64
	field   string
	problem string
	excerpt string
}

// NewReader returns a reader of layout l over in.
func NewReader(l *Layout, in io.Reader, opts ReaderOptions) *Reader {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	rd := &Reader{l: l, opts: opts, amount: l.Detail.CanonicalIndex(CanonAmount)}
	for _, s := range []*Schema{l.Detail, l.Header, l.Trailer} {
		if s != nil {
			rd.recs[s.Kind] = NewRecord(s)
		}
	}
	rd.sums = make([]int64, len(l.Detail.Fields))
	switch l.Format {
	case FormatJSON:
		rd.src = newJSONSource(l, in, opts.MaxRecordBytes)
	case FormatXML:
		rd.src = newXMLSource(l, in, opts.MaxRecordBytes)
	default:
		rd.src = newLineSource(l, in, opts.MaxRecordBytes)
	}
	return rd
}

// Next returns the next accepted record, of any kind, or io.EOF at the end
// of the input. Malformed records are reported through OnReject and
// skipped; Next only fails on read errors. The returned record is reused
// by the next call.
func (rd *Reader) Next() (*Record, error) {
	if rd.err != nil {
		return nil, rd.err
	}
	for {
		rec, raw, perr, err := rd.src.next(rd)
		if err != nil {
			rd.err = err
			return nil, err
		}
		if rec != nil && rec.Kind == KindDetail {
			rd.sum.DetailLines++
			for _, i := range rd.l.sumFields {
				rd.sums[i] += rec.Values[i].Int
			}
		}
		if perr != nil {
			rd.reject(Reject{Line: perr.line, Kind: perr.kind, Field: perr.field, Problem: perr.problem, Excerpt: perr.excerpt, Raw: raw, Charset: perr.charset})
			continue
		}
		if rd.validate(rec, raw) {
			continue
		}
		rd.lastRaw = raw
		rd.sum.Records++
		switch rec.Kind {
		case KindDetail:
			rd.sum.Details++
			if rd.amount >= 0 {
				rd.sum.AmountFen += rec.Values[rd.amount].Int
			}
		case KindHeader:
			rd.sum.Header = rec.Clone()
		case KindTrailer:
			rd.sum.Trailer = rec.Clone()
			rd.trailer = true
		}
		return rec, nil
	}
}

// validate runs the validators; it reports whether rec was rejected.
func (rd *Reader) validate(rec *Record, raw []byte) bool {
	s := rec.schema
	if len(s.computed) > 0 {
		if rd.env == nil {
			rd.env = map[string]any{}
		}
		if rd.scratch[s.Kind] == nil {
			rd.scratch[s.Kind] = NewRecord(s)
		}
		if i, p := checkComputed(rec, rd.env, rd.scratch[s.Kind]); p != "" {
			r := Reject{Line: rec.Line, Kind: rec.Kind, Problem: p, Raw: raw}
			if i >= 0 {
				r.Field, r.Excerpt = s.Fields[i].Name, Mask(s.Fields[i].Sensitive, rec.Text(i))
			}
			rd.reject(r)
			return true
		}
	}
	for k := s.failing(rec.Values, 0); k < len(s.checks); k = s.failing(rec.Values, k+1) {
		i := s.checks[k].i
		f := &s.Fields[i]
		p, warn := validateField(f, &rec.Values[i])
		if p == "" {
			continue
		}
		if rd.opts.OnReject == nil {
			// Nobody listens: count without building the masked excerpt.
			rd.reject(Reject{Warning: warn})
		} else {
			rd.reject(Reject{Line: rec.Line, Kind: rec.Kind, Field: f.Name, Problem: p,
				Excerpt: Mask(f.Sensitive, rec.Text(i)), Warning: warn, Raw: raw})
		}
		if !warn {
			return true
		}
	}
	return false
}

func (rd *Reader) reject(r Reject) {
	r.Part = rd.opts.Part
	if r.Charset {
		if rd.charsetN == 0 {
			rd.charsetLine = r.Line
		}
		rd.charsetN++
	}
	if r.Warning {
		rd.sum.Warnings++
	} else {
		rd.sum.Rejected++
	}
	if rd.opts.OnReject != nil {
		rd.opts.OnReject(r)
	}
}

// Raw returns the bytes of the record last returned by Next (the line
// without its ending, or the JSON object); nil for XML. It is valid until
// the next call to Next and holds unmasked data.
func (rd *Reader) Raw() []byte { return rd.lastRaw }

// Summary returns the counts so far.
func (rd *Reader) Summary() Summary { return rd.sum }

// Check compares the aggregate fields of the header and trailer with the
// details read (rejected ones included). Call it after Next returned
// io.EOF. It returns an error matching ErrTrailerMismatch listing every
// difference, or nil.
func (rd *Reader) Check() error {
	var errs []error
	if rd.l.Trailer != nil && rd.sum.Trailer == nil {
		errs = append(errs, fmt.Errorf("%w: no valid trailer record", ErrTrailerMismatch))
	}
	if h := rd.l.Header; h != nil && len(h.aggs) > 0 && rd.sum.Header == nil {
		// A summary header carries the file's count and total: a file
		// without one (empty, or cut before it) cannot be checked.
		errs = append(errs, fmt.Errorf("%w: no valid summary header record", ErrTrailerMismatch))
	}
	for _, rec := range []*Record{rd.sum.Header, rd.sum.Trailer} {
		if rec == nil {
			continue
		}
		for _, ai := range rec.schema.aggs {
			f := &rec.schema.Fields[ai]
			got := rec.Values[ai].Int
			want := rd.sum.DetailLines
			if f.Aggregate == "sum" {
				want = rd.sums[f.ofIdx]
			}
			if got != want {
				errs = append(errs, fmt.Errorf("%w: %s %s is %s, details give %s", ErrTrailerMismatch,
					rec.Kind, f.Name, aggText(f, got), aggText(f, want)))
			}
		}
	}
	return errors.Join(errs...)
}

// Verdict tells whether the file read may be accepted as a whole. Call it
// after Next returned io.EOF. It returns nil, or an error matching
// ErrRefused (and ErrTrailerMismatch or ErrCharset as the case may be) that
// names every reason:
//
//   - no detail record at all: an empty file, or one cut before its first record;
//   - the header or trailer count or total differs from the details, or the
//     trailer or summary header is missing (a truncated file; see Check);
//   - records with bytes invalid in the charset (the first one's line).
//
// Other malformed records are only quarantined (rejected one by one); the
// cycle and `mzhub map` both decide through this one method.
func (rd *Reader) Verdict() error {
	var why []error
	if rd.sum.DetailLines == 0 && rd.sum.Rejected == 0 {
		why = append(why, errors.New("no detail records (an empty file, or one cut before its first record)"))
	}
	if err := rd.Check(); err != nil {
		why = append(why, err)
	}
	if rd.charsetN > 0 {
		why = append(why, fmt.Errorf("%w: %d records in %s, the first at line %d", ErrCharset, rd.charsetN, rd.l.Charset, rd.charsetLine))
	}
	return Refusal(why...)
}

// Refusal returns nil for no reasons, else an error matching ErrRefused and
// each reason, whose text joins the reasons with "; " (one line, for a
// status table or an event).
func Refusal(reasons ...error) error {
	var rs []error
	for _, r := range reasons {
		if r == nil {
			continue
		}
		var nested *refusal
		if errors.As(r, &nested) {
			rs = append(rs, nested.reasons...)
			continue
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil
	}
	return &refusal{reasons: rs}
}

type refusal struct{ reasons []error }

func (r *refusal) Error() string {
	var sb strings.Builder
	sb.WriteString(ErrRefused.Error())
	sb.WriteString(": ")
	for i, e := range r.reasons {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(strings.ReplaceAll(e.Error(), "\n", "; "))
	}
	return sb.String()
}

func (r *refusal) Unwrap() []error { return append([]error{ErrRefused}, r.reasons...) }

func aggText(f *Field, v int64) string {
	if f.Type == TypeAmount {
		return FormatFen(v) + " yuan"
	}
	return strconv.FormatInt(v, 10)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineSource reads fixed-width and delimited files.
type lineSource struct {
	l       *Layout
	br      *bufio.Reader
	max     int
	lineNo  int64
	cur     []byte
	ahead   []byte // look-ahead line (when the layout needs it)
	nextNo  int64
	hasNext bool
	eof     bool
	started bool // a non-blank line was seen
	colsRow bool // the column-names row was seen
	toks    []string
	spans   []int
	dbuf    []byte // decoded delimited line
	// text is the arena fixed-width text fields are decoded into: bytes
	// below len are referenced by strings handed out and never written
	// again.
	text []byte
	// last is, per record kind and field, the non-ASCII text field's
	// value in the record before (see parseFixed).
	last [3][]lastText
	// parsed is, per record kind, the line last parsed (see parsedLine).
	parsed [3]parsedLine
}

func newLineSource(l *Layout, in io.Reader, max int) *lineSource {
	return &lineSource{l: l, br: bufio.NewReaderSize(in, 64<<10), max: max}
}

// readLine returns the next non-blank line, its number, or io.EOF. When
// copyLine is false the line may alias the bufio buffer (valid until the
// next read); otherwise it is copied into buf.
func (s *lineSource) readLine(buf []byte, copyLine bool) ([]byte, int64, error) {
	for {
		if s.eof {
			return nil, 0, io.EOF
		}
		buf = buf[:0]
		tooLong := false
		var line []byte
		for first := true; ; first = false {
			chunk, err := s.br.ReadSlice('\n')
			if first && err == nil && !copyLine && len(chunk) <= s.max {
				line = chunk
				break
			}
			if len(buf)+len(chunk) > s.max {
				tooLong = true
			} else {
				buf = append(buf, chunk...)
			}
			line = buf
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				s.eof = true
				break
			}
			if err != nil {
				return nil, 0, err
			}
			break
		}
		s.lineNo++
		if tooLong {
			return buf[:0], -s.lineNo, nil
		}
		n := len(line)
		for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
			n--
		}
		if n == 0 || (n == 1 && line[0] == 0x1A) {
			// Blank lines, and the DOS end-of-file mark (Ctrl-Z) some
			// older bank systems still append, are not records.
			continue
		}
		return line[:n], s.lineNo, nil
	}
}

func (s *lineSource) next(rd *Reader) (*Record, []byte, *parseError, error) {
	var line []byte
	var no int64
	var err error
	last := false
	if s.l.lookahead {
		if !s.hasNext {
			s.ahead, s.nextNo, err = s.readLine(s.ahead, true)
			if err == io.EOF {
				return nil, nil, nil, io.EOF
			}
			if err != nil {
				return nil, nil, nil, err
			}
		}
		s.cur, s.ahead = s.ahead, s.cur
		no = s.nextNo
		line = s.cur
		s.ahead, s.nextNo, err = s.readLine(s.ahead, true)
		switch {
		case err == io.EOF:
			s.hasNext, last = false, true
		case err != nil:
			return nil, nil, nil, err
		default:
			s.hasNext = true
		}
	} else {
		line, no, err = s.readLine(s.cur, false)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	first := !s.started
	s.started = true
	if first && s.l.Charset == CharsetUTF8 && bytes.HasPrefix(line, utf8BOM) {
		// Files saved by spreadsheet tools often start with a BOM.
		line = line[len(utf8BOM):]
	}
	if no < 0 {
		return nil, nil, &parseError{line: -no, problem: fmt.Sprintf("line longer than %d bytes", s.max)}, nil
	}
	l := s.l
	if l.Format == FormatDelimited {
		return s.nextDelimited(rd, line, no, first, last)
	}
	sch := s.classifyFixed(line, first, last)
	if sch == nil {
		return nil, line, &parseError{line: no, problem: "unknown record type", excerpt: excerptOf(l, line)}, nil
	}
	rec := rd.recs[sch.Kind]
	rec.Line = no
	if len(line) != sch.Length {
		return nil, line, &parseError{kind: sch.Kind, line: no,
			problem: fmt.Sprintf("line is %d bytes, %s records are %d", len(line), sch.Kind, sch.Length),
			excerpt: excerptOf(l, line)}, nil
	}
	perr := s.parseFixed(sch, line, rec)
	if perr != nil {
		perr.line = no
		return rec, line, perr, nil
	}
	return rec, line, nil, nil
}

func excerptOf(l *Layout, line []byte) string {
	if len(line) > 80 {
		line = line[:80]
	}
	u, _ := l.codec.decode(nil, line)
	return maskExcerpt(string(u))
}

// matches reports whether line is a record of sch given its position.
func (s *lineSource) matchesFixed(sch *Schema, line []byte, first, last bool) bool {
	switch {
	case sch.prefix != nil:
		return bytes.HasPrefix(line, sch.prefix)
	case sch.selField >= 0:
		f := &sch.Fields[sch.selField]
		if len(line) < f.Offset+f.Width {
			return false
		}
		return string(bytes.TrimSpace(line[f.Offset:f.Offset+f.Width])) == sch.selValue
	case sch.position == "first":
		return first
	case sch.position == "last":
		return last
	}
	return true
}

func (s *lineSource) classifyFixed(line []byte, first, last bool) *Schema {
	l := s.l
	if l.Header != nil && s.matchesFixed(l.Header, line, first, last) {
		return l.Header
	}
	if l.Trailer != nil && s.matchesFixed(l.Trailer, line, first, last) {
		return l.Trailer
	}
	if s.matchesFixed(l.Detail, line, first, last) {
		return l.Detail
	}
	return nil
}

// textChunk is the size of a text arena chunk: the decoded text of about a
// hundred bank records. A string kept from a record keeps its chunk.
const textChunk = 8 << 10

// isCharsetErr tells whether a decode error is about the bytes themselves
// (invalid for the charset, or a character cut by the end of a field).
func isCharsetErr(err error) bool {
	return errors.Is(err, ErrCharset) || errors.Is(err, ErrSplitMultibyte)
}

func trimSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// parseNumeric parses the trimmed text of a numeric field.
func parseNumeric[T string | []byte](f *Field, b T) (Value, error) {
	if len(b) == 0 {
		return Value{}, nil
	}
	var n int64
	var err error
	switch {
	case f.date != nil:
		n, err = parseDate(f.date, b)
	case f.yuan:
		n, err = parseYuan(b)
	default:
		n, err = parseInt(b)
	}
	if err != nil {
		return Value{}, err
	}
	return Value{Int: n, Set: true}, nil
}
