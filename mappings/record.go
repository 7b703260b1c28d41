package mappings

import (
	"fmt"
	"strconv"
	"time"
)

// Record is one record of a layout: a value per field, indexed by field
// position (Schema.Index gives the position of a name).
//
// A Reader reuses the Record it returns: it is valid until the next call to
// Next. Use Clone to keep it. The strings inside are never overwritten and
// may be kept.
type Record struct {
	// Kind is the record kind.
	Kind RecordKind
	// Line is the 1-based line (or record number for JSON and XML) the
	// record was read from; 0 for records built in memory.
	Line int64
	// Values holds one value per field of the schema.
	Values []Value

	schema *Schema
	// from is the line the record was read from, if a lineSource parsed
	// it (see parsedLine); a copy of the record does not keep it.
	from *parsedLine
}

// NewRecord returns an empty record of schema s. Constant fields are
// preset.
func NewRecord(s *Schema) *Record {
	r := &Record{Kind: s.Kind, schema: s, Values: make([]Value, len(s.Fields))}
	r.Reset()
	return r
}

// Schema returns the record's schema.
func (r *Record) Schema() *Schema { return r.schema }

// Reset clears every value except constants.
func (r *Record) Reset() {
	for i := range r.Values {
		f := &r.schema.Fields[i]
		if f.Type == TypeConstant {
			r.Values[i] = Value{Str: f.constant, Set: true}
		} else if f.deflt != nil {
			r.Values[i] = *f.deflt
		} else {
			r.Values[i] = Value{}
		}
	}
}

// Clone returns a copy that is not reused by any reader.
func (r *Record) Clone() *Record {
	c := &Record{Kind: r.Kind, Line: r.Line, schema: r.schema, Values: make([]Value, len(r.Values))}
	copy(c.Values, r.Values)
	return c
}

// Get returns the value of the named field.
func (r *Record) Get(name string) (Value, bool) {
	i := r.schema.Index(name)
	if i < 0 {
		return Value{}, false
	}
	return r.Values[i], true
}

// Str returns the text of the named field ("" if absent).
func (r *Record) Str(name string) string {
	v, _ := r.Get(name)
	return v.Str
}

// Int returns the integer, amount in fen or packed date of the named field.
func (r *Record) Int(name string) int64 {
	v, _ := r.Get(name)
	return v.Int
}

// Time returns a date/time field as a time in Asia/Shanghai.
func (r *Record) Time(name string) (time.Time, bool) {
	i := r.schema.Index(name)
	if i < 0 || !r.Values[i].Set || !r.schema.Fields[i].Type.numeric() || r.schema.Fields[i].date == nil {
		return time.Time{}, false
	}
	return TimeOf(r.schema.Fields[i].Type, r.Values[i].Int), true
}

// Text returns the field at position i as text in the hub's canonical
// notation: amounts in fen, dates as 2006-01-02, times as 15:04:05.
func (r *Record) Text(i int) string {
	v := r.Values[i]
	if !v.Set {
		return ""
	}
	f := &r.schema.Fields[i]
	switch f.Type {
	case TypeInteger, TypeAmount:
		return strconv.FormatInt(v.Int, 10)
	case TypeDate:
		return TimeOf(f.Type, v.Int).Format(time.DateOnly)
	case TypeTime:
		return TimeOf(f.Type, v.Int).Format(time.TimeOnly)
	case TypeDateTime:
		return TimeOf(f.Type, v.Int).Format(time.DateTime)
	}
	return v.Str
}

// Set sets the named field from Go values: string for text fields, int64
// (or int) for integers and amounts in fen, time.Time for dates. A string
// given to a numeric field is parsed in canonical notation (see Text).
func (r *Record) Set(name string, v any) error {
	i := r.schema.Index(name)
	if i < 0 {
		return fmt.Errorf("%w: no field %q in %s record", ErrField, name, r.schema.Kind)
	}
	return r.SetAt(i, v)
}

// SetAt is Set by field position.
func (r *Record) SetAt(i int, v any) error {
	f := &r.schema.Fields[i]
	switch x := v.(type) {
	case nil:
		r.Values[i] = Value{}
		return nil
	case string:
		return r.setText(i, x)
	case int64:
		if !f.Type.numeric() {
			r.Values[i] = Value{Str: strconv.FormatInt(x, 10), Set: true}
			return nil
		}
		r.Values[i] = Value{Int: x, Set: true}
		return nil
	case int:
		return r.SetAt(i, int64(x))
	case time.Time:
		if f.Type != TypeDate && f.Type != TypeTime && f.Type != TypeDateTime {
			return fmt.Errorf("%w: field %s is %s, not a date", ErrField, f.Name, f.Type)
		}
		r.Values[i] = Value{Int: PackTime(f.Type, x), Set: true}
		return nil
	case Value:
		r.Values[i] = x
		return nil
	}
	return fmt.Errorf("%w: field %s: unsupported Go type %T", ErrField, f.Name, v)
}

// setText parses canonical text into field i.
func (r *Record) setText(i int, s string) error {
	f := &r.schema.Fields[i]
	if s == "" {
		r.Values[i] = Value{}
		return nil
	}
	switch f.Type {
	case TypeInteger, TypeAmount:
		n, err := parseInt([]byte(s))
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		r.Values[i] = Value{Int: n, Set: true}
	case TypeDate, TypeTime, TypeDateTime:
		var t time.Time
		var err error
		for _, layout := range []string{time.DateTime, time.DateOnly, time.TimeOnly, "2006-01", f.date.src} {
			if t, err = time.ParseInLocation(layout, s, Shanghai); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("%w: field %s: %q is not a date or time", ErrField, f.Name, s)
		}
		r.Values[i] = Value{Int: PackTime(f.Type, t), Set: true}
	default:
		r.Values[i] = Value{Str: s, Set: true}
	}
	return nil
}
