package mappings

import (
	"fmt"
	"strings"
)

// nextDelimited decodes a delimited line to UTF-8 once, splits it and
// parses the fields.
func (s *lineSource) nextDelimited(rd *Reader, line []byte, no int64, first, last bool) (*Record, []byte, *parseError, error) {
	l := s.l
	u, err := l.codec.decode(s.dbuf[:0], line)
	s.dbuf = u
	if err != nil {
		return nil, line, &parseError{line: no, problem: err.Error(), excerpt: excerptOf(l, line), charset: isCharsetErr(err)}, nil
	}
	text := string(u)
	if l.trailSep {
		text = strings.TrimSuffix(text, l.sep)
	}
	s.toks, err = splitDelimited(s.toks[:0], text, l.sep, l.quote)
	if err != nil {
		return nil, line, &parseError{line: no, problem: err.Error(), excerpt: maskExcerpt(text)}, nil
	}
	sch := s.classifyDelimited(s.toks, first, last)
	if sch == nil {
		return nil, line, &parseError{line: no, problem: "unknown record type", excerpt: maskExcerpt(text)}, nil
	}
	if sch.Kind == KindDetail && l.headerRow && !s.colsRow {
		s.colsRow = true
		for i := range l.Detail.Fields {
			if i >= len(s.toks) || s.toks[i] != l.Detail.Fields[i].key {
				return nil, line, &parseError{line: no, problem: "column names row differs from the layout", excerpt: maskExcerpt(text)}, nil
			}
		}
		return s.next(rd)
	}
	rec := rd.recs[sch.Kind]
	rec.Line = no
	if len(s.toks) != len(sch.Fields) {
		return nil, line, &parseError{kind: sch.Kind, line: no,
			problem: fmt.Sprintf("%d fields, %s records have %d", len(s.toks), sch.Kind, len(sch.Fields)),
			excerpt: maskExcerpt(text)}, nil
	}
	var perr *parseError
	for i := range sch.Fields {
		f := &sch.Fields[i]
		v, err := parseText(f, s.toks[i])
		if err != nil && perr == nil {
			perr = &parseError{kind: sch.Kind, line: no, field: f.Name, problem: fieldProblem(f, err), excerpt: Mask(f.Sensitive, maskExcerpt(s.toks[i]))}
		}
		rec.Values[i] = v
	}
	return rec, line, perr, nil
}

// parseText parses the UTF-8 text of a field (delimited, JSON, XML).
func parseText(f *Field, s string) (Value, error) {
	if f.trim {
		s = strings.TrimSpace(s)
	}
	if f.Type.numeric() {
		return parseNumeric(f, s)
	}
	return Value{Str: s, Set: s != ""}, nil
}

func (s *lineSource) classifyDelimited(toks []string, first, last bool) *Schema {
	l := s.l
	match := func(sch *Schema) bool {
		switch {
		case sch.prefix != nil:
			return len(toks) > 0 && strings.HasPrefix(toks[0], string(sch.prefix))
		case sch.selField >= 0:
			return sch.selField < len(toks) && strings.TrimSpace(toks[sch.selField]) == sch.selValue
		case sch.position == "first":
			return first
		case sch.position == "last":
			return last
		}
		return true
	}
	if l.Header != nil && match(l.Header) {
		return l.Header
	}
	if l.Trailer != nil && match(l.Trailer) {
		return l.Trailer
	}
	if match(l.Detail) {
		return l.Detail
	}
	return nil
}

// splitDelimited splits line at sep. With quote set, a field starting with
// the quote runs to the closing quote; a doubled quote inside is one quote.
func splitDelimited(dst []string, line, sep string, quote byte) ([]string, error) {
	for {
		if quote != 0 && len(line) > 0 && line[0] == quote {
			var b strings.Builder
			i := 1
			closed := false
			for i < len(line) {
				c := line[i]
				if c == quote {
					if i+1 < len(line) && line[i+1] == quote {
						b.WriteByte(quote)
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return dst, fmt.Errorf("%w: unterminated quote", ErrRecord)
			}
			dst = append(dst, b.String())
			line = line[i:]
			if len(line) == 0 {
				return dst, nil
			}
			if !strings.HasPrefix(line, sep) {
				return dst, fmt.Errorf("%w: text after closing quote", ErrRecord)
			}
			line = line[len(sep):]
			continue
		}
		i := strings.Index(line, sep)
		if i < 0 {
			return append(dst, line), nil
		}
		dst = append(dst, line[:i])
		line = line[i+len(sep):]
	}
}

// appendDelimitedField appends s, quoted if needed.
func appendDelimitedField(dst []byte, s, sep string, quote byte) []byte {
	if quote == 0 || (!strings.Contains(s, sep) && strings.IndexByte(s, quote) < 0) {
		return append(dst, s...)
	}
	dst = append(dst, quote)
	for i := 0; i < len(s); i++ {
		if s[i] == quote {
			dst = append(dst, quote)
		}
		dst = append(dst, s[i])
	}
	return append(dst, quote)
}
