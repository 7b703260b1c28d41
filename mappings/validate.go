package mappings

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// validateField checks v against f's validators. It returns the problem
// of the first failing validator (empty if none) and whether it is only a
// warning.
func validateField(f *Field, v *Value) (problem string, warning bool) {
	if !v.Set {
		if f.required {
			return "required field is blank", false
		}
		return "", false
	}
	if f.num {
		if f.min != nil && v.Int < *f.min {
			return "value " + strconv.FormatInt(v.Int, 10) + " below minimum " + strconv.FormatInt(*f.min, 10), false
		}
		if f.max != nil && v.Int > *f.max {
			return "value " + strconv.FormatInt(v.Int, 10) + " above maximum " + strconv.FormatInt(*f.max, 10), false
		}
		return "", false
	}
	s := v.Str
	if f.minLen > 0 || f.maxLen > 0 {
		n := utf8.RuneCountInString(s)
		if f.minLen > 0 && n < f.minLen {
			return "length " + strconv.Itoa(n) + " below minimum " + strconv.Itoa(f.minLen), false
		}
		if f.maxLen > 0 && n > f.maxLen {
			return "length " + strconv.Itoa(n) + " above maximum " + strconv.Itoa(f.maxLen), false
		}
	}
	if f.Type == TypeEnum && f.Codes != nil {
		if !f.Codes.has(s) {
			return "code not in table " + f.Codes.Name, false
		}
	}
	if f.Type == TypeConstant && s != f.constant {
		return "constant field differs from " + strconv.Quote(f.constant), false
	}
	if f.pattern != nil && !f.pattern.MatchString(s) {
		return "does not match pattern " + f.pattern.String(), false
	}
	switch f.checkKind {
	case checkNone:
	case checkGB11643:
		if p := CheckResidentID(s); p != "" {
			return p, false
		}
	case checkLuhn:
		if !Luhn(s) {
			return "card number fails the Luhn check (passbook accounts may)", true
		}
	case checkDivision:
		if !ShanghaiDivision(s) {
			return "not a Shanghai division code 310101-310151", false
		}
	}
	return "", false
}

// valCheck is a field's validators reduced to one test that a value
// certainly passes, for the hot paths (see Schema.failing): a value that
// fails it goes through validateField, which gives the problem (or passes
// it after all).
type valCheck struct {
	i        int
	kind     uint8
	required bool
	min, max int64      // vRange
	codes    *CodeTable // vCode
	str      string     // vConst
}

// Kinds of valCheck.
const (
	vAny      uint8 = iota // set values pass (only required, if anything)
	vGeneral               // always through validateField
	vRange                 // min and max of a number
	vCode                  // code table
	vConst                 // constant
	vID                    // GB 11643
	vLuhn                  // Luhn
	vDivision              // Shanghai division
)

// quickCheck returns the valCheck of field i, f.
func quickCheck(f *Field, i int) valCheck {
	c := valCheck{i: i, kind: vGeneral, required: f.required, min: math.MinInt64, max: math.MaxInt64}
	if f.pattern != nil || f.minLen > 0 || f.maxLen > 0 {
		return c
	}
	if f.num {
		if f.checkKind == checkNone {
			c.kind = vRange
			if f.min != nil {
				c.min = *f.min
			}
			if f.max != nil {
				c.max = *f.max
			}
		}
		return c
	}
	enum := f.Type == TypeEnum && f.Codes != nil
	constant := f.Type == TypeConstant
	switch {
	case enum && f.checkKind == checkNone:
		c.kind, c.codes = vCode, f.Codes
	case constant && f.checkKind == checkNone:
		c.kind, c.str = vConst, f.constant
	case enum || constant:
	case f.checkKind == checkNone:
		c.kind = vAny
	case f.checkKind == checkGB11643:
		c.kind = vID
	case f.checkKind == checkLuhn:
		c.kind = vLuhn
	case f.checkKind == checkDivision:
		c.kind = vDivision
	}
	return c
}

// failing returns the position in s.checks, from k on, of the first field
// whose value in vals does not pass its quick test (len(s.checks) if none
// fails): the values of the fields before it certainly pass their
// validators, the one at it goes through validateField. The tests are made
// in one loop, without a call per field.
func (s *Schema) failing(vals []Value, k int) int {
	checks := s.checks
	for ; k < len(checks); k++ {
		c := &checks[k]
		v := &vals[c.i]
		if !v.Set {
			if c.required {
				return k
			}
			continue
		}
		ok := false
		switch c.kind {
		case vAny:
			ok = true
		case vRange:
			ok = v.Int >= c.min && v.Int <= c.max
		case vCode:
			ok = c.codes.has(v.Str)
		case vConst:
			ok = v.Str == c.str
		case vID:
			ok = validResidentID(v.Str)
		case vLuhn:
			ok = Luhn(v.Str)
		case vDivision:
			ok = ShanghaiDivision(v.Str)
		}
		if !ok {
			return k
		}
	}
	return k
}

// validResidentID is CheckResidentID(s) == "" with the digits tested
// eight at a time and the weighted sum unrolled.
func validResidentID(s string) bool {
	if len(s) != 18 {
		return false
	}
	b := unsafe.Slice(unsafe.StringData(s), 18)
	if !digits8(binary.LittleEndian.Uint64(b[0:8])) || !digits8(binary.LittleEndian.Uint64(b[8:16])) || b[16]-'0' > 9 {
		return false
	}
	y := int(b[6]-'0')*1000 + int(b[7]-'0')*100 + int(b[8]-'0')*10 + int(b[9]-'0')
	m := int(b[10]-'0')*10 + int(b[11]-'0')
	d := int(b[12]-'0')*10 + int(b[13]-'0')
	if y < 1900 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return false
	}
	sum := int(b[0]-'0')*7 + int(b[1]-'0')*9 + int(b[2]-'0')*10 + int(b[3]-'0')*5 +
		int(b[4]-'0')*8 + int(b[5]-'0')*4 + int(b[6]-'0')*2 + int(b[7]-'0')*1 +
		int(b[8]-'0')*6 + int(b[9]-'0')*3 + int(b[10]-'0')*7 + int(b[11]-'0')*9 +
		int(b[12]-'0')*10 + int(b[13]-'0')*5 + int(b[14]-'0')*8 + int(b[15]-'0')*4 +
		int(b[16]-'0')*2
	got := b[17]
	if got == 'x' {
		got = 'X'
	}
	return got == "10X98765432"[sum%11]
}

// digits8 reports whether the eight bytes of x are all ASCII digits: each
// high nibble is 3, and adding 6 to the low nibble does not carry into it.
func digits8(x uint64) bool {
	const threes, sixes, high = 0x3030303030303030, 0x0606060606060606, 0xF0F0F0F0F0F0F0F0
	return x&high == threes && (x+sixes)&high == threes
}

var gb11643Weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckResidentID validates an 18-character resident ID number (GB 11643):
// digits, a valid birth date and the ISO 7064 MOD 11-2 check character. It
// returns the problem, or "" when the number is valid.
func CheckResidentID(s string) string {
	if len(s) != 18 {
		return "resident ID must have 18 characters"
	}
	s = s[:18]
	sum := 0
	for i, w := range gb11643Weights {
		c := s[i] - '0'
		if c > 9 {
			return "resident ID must be 17 digits and a check character"
		}
		sum += int(c) * w
	}
	// The birth date, from digits checked above.
	y := int(s[6]-'0')*1000 + int(s[7]-'0')*100 + int(s[8]-'0')*10 + int(s[9]-'0')
	m := int(s[10]-'0')*10 + int(s[11]-'0')
	d := int(s[12]-'0')*10 + int(s[13]-'0')
	if y < 1900 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return "resident ID has an invalid birth date"
	}
	want := "10X98765432"[sum%11]
	got := s[17]
	if got == 'x' {
		got = 'X'
	}
	if got != want {
		return "resident ID check character is wrong"
	}
	return ""
}

// luhnDouble[d] is the Luhn value of a doubled digit d (indexed by d&15,
// which lets the compiler drop the bounds check).
var luhnDouble = [16]uint8{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// Luhn reports whether s is a digit string passing the Luhn check.
func Luhn(s string) bool {
	if len(s) < 2 {
		return false
	}
	sum := 0
	// From the right, two digits at a time: the last one as it is, the
	// one before it doubled.
	i := len(s) - 1
	for ; i >= 1; i -= 2 {
		a, b := s[i]-'0', s[i-1]-'0'
		if a > 9 || b > 9 {
			return false
		}
		sum += int(a) + int(luhnDouble[b&15])
	}
	if i == 0 {
		a := s[0] - '0'
		if a > 9 {
			return false
		}
		sum += int(a)
	}
	return sum%10 == 0
}

// ShanghaiDivision reports whether s is a Shanghai district code
// 310101-310151.
func ShanghaiDivision(s string) bool {
	if len(s) != 6 || s[:4] != "3101" {
		return false
	}
	n, ok := digits(s[4:])
	return ok && n >= 1 && n <= 51
}

// fieldProblem describes a parse error of field f. Parse errors quote the
// value; for a sensitive field only the kind of problem is kept (the masked
// excerpt goes next to it).
func fieldProblem(f *Field, err error) string {
	if f.Sensitive == "" {
		return err.Error()
	}
	return "not a valid " + f.Type.String() + " value"
}
