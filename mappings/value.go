package mappings

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FieldType is the type of a layout field.
type FieldType uint8

// Field types. Amounts are always integer fen in the hub; dates and times
// are civil values in Asia/Shanghai.
const (
	TypeString FieldType = iota + 1
	TypeInteger
	TypeAmount
	TypeDate
	TypeTime
	TypeDateTime
	TypeEnum
	TypeConstant
)

var fieldTypeNames = map[string]FieldType{
	"string": TypeString, "integer": TypeInteger, "amount": TypeAmount,
	"date": TypeDate, "time": TypeTime, "datetime": TypeDateTime,
	"enum": TypeEnum, "constant": TypeConstant,
}

// String returns the YAML name of the type.
func (t FieldType) String() string {
	for k, v := range fieldTypeNames {
		if v == t {
			return k
		}
	}
	return "unknown"
}

// numeric reports whether values of the type live in Value.Int.
func (t FieldType) numeric() bool {
	return t == TypeInteger || t == TypeAmount || t == TypeDate || t == TypeTime || t == TypeDateTime
}

// Value is one typed field value. Text types (string, enum, constant) use
// Str; integer, amount (fen), date (YYYYMMDD), time (hhmmss) and datetime
// (YYYYMMDDhhmmss) use Int. Set is false for an absent or blank value.
type Value struct {
	// Str is the UTF-8 text of a string, enum or constant field.
	Str string
	// Int is the integer, the amount in fen, or the civil date/time packed
	// as decimal digits.
	Int int64
	// Set reports whether the field had a value.
	Set bool
}

// Shanghai is the zone of every business date and time.
var Shanghai = mustShanghai()

func mustShanghai() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		// No tzdata on the host: China has had no DST since 1991.
		return time.FixedZone("Asia/Shanghai", 8*3600)
	}
	return loc
}

// TimeOf converts a packed civil date, time or datetime to a time.Time in
// Asia/Shanghai.
func TimeOf(t FieldType, v int64) time.Time {
	switch t {
	case TypeDate:
		return time.Date(int(v/10000), time.Month(v/100%100), int(v%100), 0, 0, 0, 0, Shanghai)
	case TypeTime:
		return time.Date(0, 1, 1, int(v/10000), int(v/100%100), int(v%100), 0, Shanghai)
	default:
		d, c := v/1000000, v%1000000
		return time.Date(int(d/10000), time.Month(d/100%100), int(d%100), int(c/10000), int(c/100%100), int(c%100), 0, Shanghai)
	}
}

// PackTime packs t (converted to Asia/Shanghai) as a civil value of type ft.
func PackTime(ft FieldType, t time.Time) int64 {
	t = t.In(Shanghai)
	d := int64(t.Year())*10000 + int64(t.Month())*100 + int64(t.Day())
	c := int64(t.Hour())*10000 + int64(t.Minute())*100 + int64(t.Second())
	switch ft {
	case TypeDate:
		return d
	case TypeTime:
		return c
	}
	return d*1000000 + c
}

// dateLayout is a compiled date/time layout. Layouts made of 2006 01 02 15
// 04 05 and punctuation are parsed positionally without allocation; others
// go through package time.
type dateLayout struct {
	src   string
	ft    FieldType
	parts []datePart // nil when the slow path is used
	size  int
	// mask has the layout's literal bytes in place and 0 where a digit
	// goes; pos is the offset of the year, month, day, hour, minute and
	// second digits (-1 if absent). Set with parts unless a token
	// repeats.
	mask string
	pos  [6]int
}

type datePart struct {
	tok byte // 'Y','M','D','h','m','s' or 0 for a literal
	lit byte
}

func compileDateLayout(ft FieldType, layout string) *dateLayout {
	dl := &dateLayout{src: layout, ft: ft}
	var parts []datePart
	for i := 0; i < len(layout); {
		rest := layout[i:]
		switch {
		case len(rest) >= 4 && rest[:4] == "2006":
			parts = append(parts, datePart{tok: 'Y'})
			i += 4
			continue
		case len(rest) >= 2 && rest[:2] == "01":
			parts = append(parts, datePart{tok: 'M'})
		case len(rest) >= 2 && rest[:2] == "02":
			parts = append(parts, datePart{tok: 'D'})
		case len(rest) >= 2 && rest[:2] == "15":
			parts = append(parts, datePart{tok: 'h'})
		case len(rest) >= 2 && rest[:2] == "04":
			parts = append(parts, datePart{tok: 'm'})
		case len(rest) >= 2 && rest[:2] == "05":
			parts = append(parts, datePart{tok: 's'})
		case rest[0] == '-' || rest[0] == '/' || rest[0] == ':' || rest[0] == ' ' || rest[0] == '.' || rest[0] == 'T':
			parts = append(parts, datePart{lit: rest[0]})
			i++
			continue
		default:
			return dl // slow path
		}
		i += 2
	}
	dl.parts = parts
	dl.size = len(layout)
	dl.pos = [6]int{-1, -1, -1, -1, -1, -1}
	mask := make([]byte, 0, len(layout))
	for _, p := range parts {
		if p.tok == 0 {
			mask = append(mask, p.lit)
			continue
		}
		k := strings.IndexByte("YMDhms", p.tok)
		if dl.pos[k] >= 0 {
			// A token given twice: the part loops handle it.
			return dl
		}
		dl.pos[k] = len(mask)
		mask = append(mask, 0, 0)
		if p.tok == 'Y' {
			mask = append(mask, 0, 0)
		}
	}
	dl.mask = string(mask)
	return dl
}

func digits[T string | []byte](b T) (int, bool) {
	for i := 0; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return 0, false
		}
	}
	n := 0
	for i := 0; i < len(b); i++ {
		n = n*10 + int(b[i]-'0')
	}
	return n, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parse decodes b into a packed civil value.
func parseDate[T string | []byte](dl *dateLayout, b T) (int64, error) {
	y, mo, d, h, mi, s := 0, 1, 1, 0, 0, 0
	if dl.parts == nil {
		t, err := time.ParseInLocation(dl.src, string(b), Shanghai)
		if err != nil {
			return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
		}
		return PackTime(dl.ft, t), nil
	}
	if len(b) != dl.size {
		return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
	}
	if dl.mask != "" {
		return parseFast(dl, b)
	}
	pos := 0
	for _, p := range dl.parts {
		if p.tok == 0 {
			if b[pos] != p.lit {
				return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
			}
			pos++
			continue
		}
		w := 2
		if p.tok == 'Y' {
			w = 4
		}
		n, ok := digits(b[pos : pos+w])
		if !ok {
			return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
		}
		pos += w
		switch p.tok {
		case 'Y':
			y = n
		case 'M':
			mo = n
		case 'D':
			d = n
		case 'h':
			h = n
		case 'm':
			mi = n
		case 's':
			s = n
		}
	}
	return packDate(dl, b, y, mo, d, h, mi, s)
}

// parseFast is parseDate by the digits' positions (mask and pos), for
// input of the layout's size.
func parseFast[T string | []byte](dl *dateLayout, b T) (int64, error) {
	mask := dl.mask
	if len(b) != len(mask) {
		return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
	}
	for i := 0; i < len(mask); i++ {
		if m := mask[i]; (m == 0 && b[i]-'0' > 9) || (m != 0 && b[i] != m) {
			return 0, fmt.Errorf("%w: %q does not match layout %q", ErrField, b, dl.src)
		}
	}
	two := func(k, def int) int {
		p := dl.pos[k]
		if p < 0 {
			return def
		}
		return int(b[p]-'0')*10 + int(b[p+1]-'0')
	}
	y := 0
	if p := dl.pos[0]; p >= 0 {
		y = int(b[p]-'0')*1000 + int(b[p+1]-'0')*100 + int(b[p+2]-'0')*10 + int(b[p+3]-'0')
	}
	mo, d, h, mi, s := two(1, 1), two(2, 1), two(3, 0), two(4, 0), two(5, 0)
	return packDate(dl, b, y, mo, d, h, mi, s)
}

// packDate checks a civil date and time read from b and packs it as dl's type
// holds it (the date, the time of day, or both).
func packDate[T string | []byte](dl *dateLayout, b T, y, mo, d, h, mi, s int) (int64, error) {
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59 {
		return 0, fmt.Errorf("%w: %q is not a valid date/time", ErrField, b)
	}
	dv := int64(y)*10000 + int64(mo)*100 + int64(d)
	cv := int64(h)*10000 + int64(mi)*100 + int64(s)
	switch dl.ft {
	case TypeDate:
		return dv, nil
	case TypeTime:
		return cv, nil
	}
	return dv*1000000 + cv, nil
}

// format appends the text of a packed civil value.
func (dl *dateLayout) format(dst []byte, v int64) []byte {
	if dl.parts == nil {
		return TimeOf(dl.ft, v).AppendFormat(dst, dl.src)
	}
	if dl.mask != "" {
		return dl.formatFast(dst, v)
	}
	var y, mo, d, h, mi, s int64
	switch dl.ft {
	case TypeDate:
		y, mo, d = v/10000, v/100%100, v%100
	case TypeTime:
		h, mi, s = v/10000, v/100%100, v%100
	default:
		dv, cv := v/1000000, v%1000000
		y, mo, d, h, mi, s = dv/10000, dv/100%100, dv%100, cv/10000, cv/100%100, cv%100
	}
	for _, p := range dl.parts {
		switch p.tok {
		case 0:
			dst = append(dst, p.lit)
		case 'Y':
			dst = append(dst, byte('0'+y/1000%10), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
		case 'M':
			dst = append(dst, byte('0'+mo/10), byte('0'+mo%10))
		case 'D':
			dst = append(dst, byte('0'+d/10), byte('0'+d%10))
		case 'h':
			dst = append(dst, byte('0'+h/10), byte('0'+h%10))
		case 'm':
			dst = append(dst, byte('0'+mi/10), byte('0'+mi%10))
		case 's':
			dst = append(dst, byte('0'+s/10), byte('0'+s%10))
		}
	}
	return dst
}

// parseInt parses an optionally signed decimal integer with leading zeros.
func parseInt[T string | []byte](b T) (int64, error) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, fmt.Errorf("%w: %q is not an integer", ErrField, b)
	}
	var n int64
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not an integer", ErrField, b)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// parseYuan parses yuan with up to two decimals ("12.3", "12.30", "12")
// into fen, without floating point.
func parseYuan[T string | []byte](b T) (int64, error) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	dot := -1
	for i := 0; i < len(b); i++ {
		if b[i] == '.' {
			dot = i
			break
		}
	}
	intPart, frac := b, b[:0]
	if dot >= 0 {
		intPart, frac = b[:dot], b[dot+1:]
		if len(frac) == 0 || len(frac) > 2 {
			return 0, fmt.Errorf("%w: %q is not an amount with at most 2 decimals", ErrField, b)
		}
	}
	if len(intPart) == 0 || len(intPart) > 16 {
		return 0, fmt.Errorf("%w: %q is not an amount", ErrField, b)
	}
	var n int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not an amount", ErrField, b)
		}
		n = n*10 + int64(c-'0')
	}
	n *= 100
	mul := int64(10)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not an amount", ErrField, b)
		}
		n += int64(c-'0') * mul
		mul /= 10
	}
	if neg {
		n = -n
	}
	return n, nil
}

// appendYuan appends fen as yuan with exactly two decimals.
func appendYuan(dst []byte, fen int64) []byte {
	if fen < 0 {
		dst = append(dst, '-')
		fen = -fen
	}
	dst = strconv.AppendInt(dst, fen/100, 10)
	return append(dst, '.', byte('0'+fen/10%10), byte('0'+fen%10))
}

// FormatFen renders an amount in fen as yuan text ("1234.50") for
// summaries and messages.
func FormatFen(fen int64) string { return string(appendYuan(nil, fen)) }

// formatFast is format by the digits' positions (mask and pos).
func (dl *dateLayout) formatFast(dst []byte, v int64) []byte {
	k := len(dst)
	dst = append(dst, dl.mask...)
	dl.putDigits(dst[k:], v)
	return dst
}

// putDigits writes the digits of v over a copy of dl.mask in out, at the
// positions of pos.
func (dl *dateLayout) putDigits(out []byte, v int64) {
	var y, mo, d, h, mi, s int64
	switch dl.ft {
	case TypeDate:
		y, mo, d = v/10000, v/100%100, v%100
	case TypeTime:
		h, mi, s = v/10000, v/100%100, v%100
	default:
		dv, cv := v/1000000, v%1000000
		y, mo, d, h, mi, s = dv/10000, dv/100%100, dv%100, cv/10000, cv/100%100, cv%100
	}
	if p := dl.pos[0]; p >= 0 {
		out[p], out[p+1], out[p+2], out[p+3] = byte('0'+y/1000%10), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10)
	}
	putPair(out, dl.pos[1], mo)
	putPair(out, dl.pos[2], d)
	putPair(out, dl.pos[3], h)
	putPair(out, dl.pos[4], mi)
	putPair(out, dl.pos[5], s)
}

// putPair writes the two digits of n (0 to 99) at out[p:], unless p < 0.
func putPair(out []byte, p int, n int64) {
	if p >= 0 {
		out[p], out[p+1] = byte('0'+n/10), byte('0'+n%10)
	}
}
