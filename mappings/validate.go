package mappings

import (
	"strconv"
	"unicode/utf8"
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
