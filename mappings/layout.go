package mappings

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"regexp"
	"slices"

	"github.com/expr-lang/expr/vm"
	"strings"
)

// Format is a layout's file format.
type Format uint8

// File formats.
const (
	FormatFixed Format = iota + 1
	FormatDelimited
	FormatJSON
	FormatXML
)

// RecordKind is header, detail or trailer.
type RecordKind uint8

// Record kinds.
const (
	KindDetail RecordKind = iota
	KindHeader
	KindTrailer
)

// String returns the YAML name of the kind.
func (k RecordKind) String() string {
	switch k {
	case KindHeader:
		return "header"
	case KindTrailer:
		return "trailer"
	}
	return "detail"
}

// Layout is a compiled, immutable layout, safe for concurrent use by many
// readers and writers.
type Layout struct {
	// Name is the layout name.
	Name string
	// Description is the layout's description.
	Description string
	// Format is the file format.
	Format Format
	// Charset is the canonical charset name.
	Charset string
	// Match is line or reference (how returns match sent records).
	Match string
	// Header, Detail and Trailer are the record schemas; Header and
	// Trailer may be nil.
	Header, Detail, Trailer *Schema

	codec     codec
	eol       []byte
	sep       string
	quote     byte
	headerRow bool
	trailSep  bool
	jsonArray bool
	root      string
	// lookahead is set when a record is selected by position last.
	lookahead bool
	// sumFields are the detail fields summed by an aggregate.
	sumFields []int
}

// Schema is a compiled record kind: its fields and how to recognise it.
type Schema struct {
	// Kind is the record kind.
	Kind RecordKind
	// Fields are the fields in file order.
	Fields []Field
	// Length is the byte length of a fixed-width line.
	Length int
	// Element is the XML element or JSON type value of the record.
	Element string

	index    map[string]int
	canon    map[string]int
	position string
	prefix   []byte
	selField int
	selValue string
	aggs     []int
	computed []int // fields with expr or when
	envIdx   []int // fields their expressions read
	// checks are the fields that have a validator, in order, each with a
	// quick test that a value passes (see valCheck).
	checks []valCheck
	// ops is the fixed-width plan: one entry per field (see plan.go).
	ops []fixedOp
	// packed: the fixed-width fields follow each other from the start of
	// the line, in order, without gaps.
	packed bool
	// padLine is a fixed-width line with every field all its pad (the
	// pad of a set value): encodeFixed starts from it and writes each
	// field's text over it (see padLine).
	padLine []byte
}

// Field is a compiled field.
type Field struct {
	// Name is the field name.
	Name string
	// Type is the field type.
	Type FieldType
	// Width is the width in bytes (fixed-width).
	Width int
	// Offset is the 0-based byte offset (fixed-width).
	Offset int
	// Sensitive is id, account, phone, name or empty.
	Sensitive string
	// Canonical is the canonical payment field carried, or empty.
	Canonical string
	// Aggregate is count, sum or empty.
	Aggregate string
	// Codes is the code table of an enum field.
	Codes *CodeTable

	key       string
	right     bool
	pad       byte
	trim      bool
	yuan      bool
	date      *dateLayout
	constant  string
	deflt     *Value
	required  bool
	minLen    int
	maxLen    int
	pattern   *regexp.Regexp
	min, max  *int64
	check     string
	checkKind uint8
	of        string
	ofIdx     int
	truncate  bool
	checked   bool // has at least one validator
	num       bool // Type.numeric(), precomputed for the hot paths
	expr      *vm.Program
	when      *vm.Program
}

// Index returns the position of the named field, or -1.
func (s *Schema) Index(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// CanonicalIndex returns the position of the field carrying the canonical
// name, or -1.
func (s *Schema) CanonicalIndex(name string) int {
	if i, ok := s.canon[name]; ok {
		return i
	}
	return -1
}

// Problem is one spec error at a line of a file.
type Problem struct {
	// Line is the 1-based line in the YAML file (0 if unknown).
	Line int
	// Msg describes the problem.
	Msg string
}

// compileLayout checks spec and builds a Layout. tables resolves an enum's
// code table path. lines maps a YAML path to its line.
func compileLayout(spec *LayoutSpec, tables func(string) (*CodeTable, error), lines func(path ...any) int) (*Layout, []Problem) {
	var probs []Problem
	bad := func(line int, format string, args ...any) {
		probs = append(probs, Problem{line, fmt.Sprintf(format, args...)})
	}
	if spec.Kind != "layout" {
		bad(lines("kind"), "kind is %q, want layout", spec.Kind)
	}
	l := &Layout{Name: spec.Name, Description: spec.Description, Match: spec.Match, eol: []byte("\n"), root: spec.Root}
	switch spec.Format {
	case "fixed":
		l.Format = FormatFixed
	case "delimited":
		l.Format = FormatDelimited
	case "json":
		l.Format = FormatJSON
	case "xml":
		l.Format = FormatXML
	default:
		bad(lines("format"), "format %q: want fixed, delimited, json or xml", spec.Format)
	}
	c, err := codecFor(spec.Charset)
	if err != nil {
		bad(lines("charset"), "%v", err)
		c = utf8Codec{}
	}
	l.codec, l.Charset = c, c.name()
	switch strings.ToUpper(spec.LineEnding) {
	case "", "LF":
	case "CRLF":
		l.eol = []byte("\r\n")
	default:
		bad(lines("line_ending"), "line_ending %q: want CRLF or LF", spec.LineEnding)
	}
	switch spec.Match {
	case "":
		l.Match = "line"
	case "line", "reference":
	default:
		bad(lines("match"), "match %q: want line or reference", spec.Match)
	}
	if l.Format == FormatDelimited {
		if spec.Separator == "" {
			bad(lines("separator"), "delimited layout needs a separator")
		}
		l.sep = spec.Separator
		switch len(spec.Quote) {
		case 0:
		case 1:
			l.quote = spec.Quote[0]
		default:
			bad(lines("quote"), "quote must be one character")
		}
		l.headerRow = spec.HeaderRow
		l.trailSep = spec.TrailingSeparator
	}
	if l.Format == FormatJSON {
		switch spec.JSONStyle {
		case "", "lines":
		case "array":
			l.jsonArray = true
		default:
			bad(lines("json_style"), "json_style %q: want array or lines", spec.JSONStyle)
		}
	}
	if l.Format == FormatXML && l.root == "" {
		bad(lines("root"), "xml layout needs a root element")
	}
	for i := range spec.Records {
		rs := &spec.Records[i]
		at := func(p ...any) int { return lines(append([]any{"records", i}, p...)...) }
		s, ps := compileSchema(l, rs, tables, at)
		probs = append(probs, ps...)
		if s == nil {
			continue
		}
		slot := &l.Detail
		switch s.Kind {
		case KindHeader:
			slot = &l.Header
		case KindTrailer:
			slot = &l.Trailer
		}
		if *slot != nil {
			bad(at("kind"), "more than one %s record", s.Kind)
			continue
		}
		*slot = s
		if s.position == "last" {
			l.lookahead = true
		}
	}
	if l.Detail == nil {
		bad(lines("records"), "layout has no detail record")
		return l, probs
	}
	// Aggregates refer to detail fields.
	for _, s := range []*Schema{l.Header, l.Trailer} {
		if s == nil {
			continue
		}
		for _, ai := range s.aggs {
			f := &s.Fields[ai]
			if f.Aggregate != "sum" {
				continue
			}
			f.ofIdx = l.Detail.Index(f.of)
			if f.ofIdx < 0 || !l.Detail.Fields[f.ofIdx].Type.numeric() {
				bad(0, "%s field %s: aggregate sum of %q: no such numeric detail field", s.Kind, f.Name, f.of)
				continue
			}
			if !slices.Contains(l.sumFields, f.ofIdx) {
				l.sumFields = append(l.sumFields, f.ofIdx)
			}
		}
	}
	return l, probs
}

func compileSchema(l *Layout, rs *RecordSpec, tables func(string) (*CodeTable, error), at func(p ...any) int) (*Schema, []Problem) {
	var probs []Problem
	bad := func(line int, format string, args ...any) {
		probs = append(probs, Problem{line, fmt.Sprintf(format, args...)})
	}
	s := &Schema{index: map[string]int{}, canon: map[string]int{}, Element: rs.Element, selField: -1}
	switch rs.Kind {
	case "header":
		s.Kind = KindHeader
	case "detail":
		s.Kind = KindDetail
	case "trailer":
		s.Kind = KindTrailer
	default:
		bad(at("kind"), "record kind %q: want header, detail or trailer", rs.Kind)
		return nil, probs
	}
	if len(rs.Fields) == 0 {
		bad(at("fields"), "%s record has no fields", rs.Kind)
	}
	offset := 0
	for j := range rs.Fields {
		fs := &rs.Fields[j]
		fat := func(p ...any) int { return at(append([]any{"fields", j}, p...)...) }
		f, ps := compileField(l, s.Kind, fs, tables, fat)
		probs = append(probs, ps...)
		if _, dup := s.index[f.Name]; dup || f.Name == "" {
			bad(fat("name"), "field name %q empty or duplicate", f.Name)
		}
		if l.Format == FormatFixed {
			if fs.Start != 0 && fs.Start-1 != offset {
				what := "overlaps the previous field"
				if fs.Start-1 > offset {
					what = "leaves a gap after the previous field"
				}
				bad(fat("start"), "field %s starts at byte %d but the previous fields end at byte %d: it %s", f.Name, fs.Start, offset, what)
			}
			f.Offset = offset
			offset += f.Width
		}
		s.index[f.Name] = len(s.Fields)
		if f.Canonical != "" {
			if _, dup := s.canon[f.Canonical]; dup {
				bad(fat("canonical"), "canonical %q carried by two fields", f.Canonical)
			}
			s.canon[f.Canonical] = len(s.Fields)
		}
		if f.Aggregate != "" {
			s.aggs = append(s.aggs, len(s.Fields))
		}
		s.Fields = append(s.Fields, f)
	}
	probs = append(probs, compileComputed(s, rs, at)...)
	if l.Format == FormatFixed {
		s.Length = offset
		if rs.Length != 0 && rs.Length != offset {
			bad(at("length"), "%s record: field widths add up to %d bytes, length says %d", rs.Kind, offset, rs.Length)
		}
	}
	sel := rs.Select
	switch sel.Position {
	case "", "first", "last":
		s.position = sel.Position
	default:
		bad(at("select", "position"), "position %q: want first or last", sel.Position)
	}
	if sel.Position == "" && sel.Prefix == "" && sel.Field == "" {
		switch s.Kind {
		case KindHeader:
			s.position = "first"
		case KindTrailer:
			s.position = "last"
		}
	}
	if sel.Prefix != "" {
		p, err := l.codec.encode(nil, sel.Prefix)
		if err != nil {
			bad(at("select", "prefix"), "prefix: %v", err)
		}
		s.prefix = p
	}
	if sel.Field != "" {
		s.selField = s.Index(sel.Field)
		s.selValue = sel.Equals
		if s.selField < 0 {
			bad(at("select", "field"), "select field %q is not a field of the %s record", sel.Field, rs.Kind)
		}
	}
	for i := range s.Fields {
		f := &s.Fields[i]
		if f.checked {
			s.checks = append(s.checks, quickCheck(f, i))
		}
	}
	if l.Format == FormatFixed {
		s.ops = planFixed(s)
		s.packed = packedOps(s.ops)
		s.padLine = padLine(s.ops)
	}
	if (l.Format == FormatXML || (l.Format == FormatJSON && s.Kind != KindDetail)) && s.Element == "" && l.Format == FormatXML {
		bad(at("element"), "xml %s record needs an element", rs.Kind)
	}
	return s, probs
}

// Named validators, resolved once so that validation does not compare
// strings.
const (
	checkNone uint8 = iota
	checkGB11643
	checkLuhn
	checkDivision
)

var checkKinds = map[string]uint8{"gb11643": checkGB11643, "luhn": checkLuhn, "division": checkDivision}

// maxFieldWidth bounds a fixed-width field, so that a layout cannot make
// the writer pad gigabytes.
const maxFieldWidth = 4096

var (
	knownChecks    = map[string]bool{"gb11643": true, "luhn": true, "division": true}
	knownSensitive = map[string]bool{"id": true, "account": true, "phone": true, "name": true}
)

func compileField(l *Layout, kind RecordKind, fs *FieldSpec, tables func(string) (*CodeTable, error), at func(p ...any) int) (Field, []Problem) {
	var probs []Problem
	bad := func(line int, format string, args ...any) {
		probs = append(probs, Problem{line, fmt.Sprintf("field %s: %s", fs.Name, fmt.Sprintf(format, args...))})
	}
	f := Field{Name: fs.Name, Width: fs.Width, Sensitive: fs.Sensitive, Canonical: fs.Canonical,
		Aggregate: fs.Aggregate, key: fs.Key, trim: !fs.NoTrim, constant: fs.Value, required: fs.Required,
		minLen: fs.MinLen, maxLen: fs.MaxLen, min: fs.Min, max: fs.Max, check: fs.Check, truncate: fs.Truncate, ofIdx: -1}
	if f.key == "" {
		f.key = f.Name
	}
	t, ok := fieldTypeNames[fs.Type]
	if !ok {
		bad(at("type"), "type %q: want string, integer, amount, date, time, datetime, enum or constant", fs.Type)
		t = TypeString
	}
	f.Type = t
	if l.Format == FormatFixed && (fs.Width <= 0 || fs.Width > maxFieldWidth) {
		bad(at("width"), "fixed-width field needs a width from 1 to %d bytes", maxFieldWidth)
		f.Width = 0
	}
	if l.Format != FormatFixed && (fs.Width != 0 || fs.Start != 0) {
		bad(at("width"), "width and start are for fixed-width layouts only")
	}
	switch fs.Align {
	case "":
		f.right = t.numeric()
	case "left":
	case "right":
		f.right = true
	default:
		bad(at("align"), "align %q: want left or right", fs.Align)
	}
	f.pad = ' '
	if f.right && t.numeric() && l.Format == FormatFixed {
		f.pad = '0'
	}
	if fs.Pad != "" {
		if len(fs.Pad) != 1 {
			bad(at("pad"), "pad must be one ASCII character")
		} else {
			f.pad = fs.Pad[0]
		}
	}
	switch t {
	case TypeAmount:
		switch fs.Unit {
		case "yuan":
			f.yuan = true
		case "fen":
		default:
			bad(at("unit"), "amount unit %q: want yuan or fen", fs.Unit)
		}
	case TypeDate, TypeTime, TypeDateTime:
		if fs.Layout == "" {
			bad(at("layout"), "%s field needs a layout such as 20060102", fs.Type)
		}
		f.date = compileDateLayout(t, fs.Layout)
	case TypeEnum:
		if fs.Codes == "" {
			bad(at("codes"), "enum field needs a code table (codes: path)")
		} else if ct, err := tables(fs.Codes); err != nil {
			bad(at("codes"), "unknown code table %q: %v", fs.Codes, shortErr(err))
		} else {
			f.Codes = ct
		}
	case TypeConstant:
		if fs.Value == "" {
			bad(at("value"), "constant field needs a value")
		}
	}
	if fs.Default != "" {
		v, err := parseText(&f, fs.Default)
		if err != nil {
			bad(at("default"), "default: %v", err)
		}
		f.deflt = &v
	}
	if t != TypeConstant && fs.Value != "" {
		bad(at("value"), "value is for constant fields only (use default)")
	}
	if t != TypeAmount && fs.Unit != "" {
		bad(at("unit"), "unit is for amount fields only")
	}
	if fs.Pattern != "" {
		re, err := regexp.Compile("^(?:" + fs.Pattern + ")$")
		if err != nil {
			bad(at("pattern"), "pattern: %v", err)
		}
		f.pattern = re
	}
	if fs.Check != "" && !knownChecks[fs.Check] {
		bad(at("check"), "check %q: want gb11643, luhn or division", fs.Check)
	}
	if fs.Sensitive != "" && !knownSensitive[fs.Sensitive] {
		bad(at("sensitive"), "sensitive %q: want id, account, phone or name", fs.Sensitive)
	}
	if fs.Canonical != "" && !isCanonical(fs.Canonical) {
		bad(at("canonical"), "canonical %q is not a canonical payment field", fs.Canonical)
	}
	switch fs.Aggregate {
	case "":
		if fs.Of != "" {
			bad(at("of"), "of is for aggregate sum only")
		}
	case "count":
		if t != TypeInteger {
			bad(at("aggregate"), "aggregate count needs an integer field")
		}
	case "sum":
		if t != TypeInteger && t != TypeAmount {
			bad(at("aggregate"), "aggregate sum needs an integer or amount field")
		}
		if fs.Of == "" {
			bad(at("of"), "aggregate sum needs of: <detail field>")
		}
		f.of = fs.Of
	case "sequence":
		if t != TypeInteger {
			bad(at("aggregate"), "aggregate sequence needs an integer field")
		}
		if kind != KindDetail {
			bad(at("aggregate"), "aggregate sequence belongs to a detail record")
		}
	default:
		bad(at("aggregate"), "aggregate %q: want count, sum or sequence", fs.Aggregate)
	}
	if (fs.Aggregate == "count" || fs.Aggregate == "sum") && kind == KindDetail {
		bad(at("aggregate"), "count and sum belong to a header or trailer record")
	}
	f.num = t.numeric()
	f.checkKind = checkKinds[f.check]
	f.checked = f.required || f.minLen > 0 || f.maxLen > 0 || f.pattern != nil || f.min != nil ||
		f.max != nil || f.check != "" || t == TypeEnum || t == TypeConstant
	return f, probs
}

// LineEnding returns the layout's line ending ("\r\n" or "\n").
func (l *Layout) LineEnding() string { return string(l.eol) }

// shortErr drops the path repetition of a missing-file error.
func shortErr(err error) error {
	if errors.Is(err, iofs.ErrNotExist) {
		return iofs.ErrNotExist
	}
	return err
}
