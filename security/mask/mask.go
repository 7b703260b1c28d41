package mask

import (
	"strings"
	"unicode/utf8"
)

// IDNumber masks a resident ID number (GB 11643): the 3-digit region prefix
// and the last 4 characters stay, everything between becomes '*'. Spaces are
// dropped first. Input too short to keep both ends is masked whole.
func IDNumber(s string) string {
	s = compact(s)
	n := utf8.RuneCountInString(s)
	if n <= 7 {
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return string(r[:3]) + strings.Repeat("*", n-7) + string(r[n-4:])
}

// Account masks a bank account or card number: only the last 4 characters
// stay. Spaces and dashes are dropped first. Input of 4 characters or fewer
// is masked whole.
func Account(s string) string {
	s = compact(s)
	n := utf8.RuneCountInString(s)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return strings.Repeat("*", n-4) + string(r[n-4:])
}

// Phone masks a phone number keeping the first 3 and last 4 digits
// ("138****5678"). A leading +86 or 0086 country code is kept as is. Input of
// 7 characters or fewer keeps only its last 2.
func Phone(s string) string {
	s = compact(s)
	prefix := ""
	for _, cc := range []string{"+86", "0086"} {
		if strings.HasPrefix(s, cc) && len(s) > len(cc)+7 {
			prefix, s = cc, s[len(cc):]
			break
		}
	}
	r := []rune(s)
	n := len(r)
	switch {
	case n == 0:
		return prefix
	case n <= 7:
		if n <= 2 {
			return prefix + strings.Repeat("*", n)
		}
		return prefix + strings.Repeat("*", n-2) + string(r[n-2:])
	}
	return prefix + string(r[:3]) + strings.Repeat("*", n-7) + string(r[n-4:])
}

// Name masks a person's name keeping its first character ("张**"). A
// one-character name becomes "*". Surrounding spaces are trimmed.
func Name(s string) string {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n <= 1 {
		return strings.Repeat("*", n)
	}
	first, _ := utf8.DecodeRuneInString(s)
	return string(first) + strings.Repeat("*", n-1)
}

// compact drops the separators people type inside numbers.
func compact(s string) string {
	if !strings.ContainsAny(s, " -\t") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		return r
	}, s)
}

// idWeights and idCheck implement the GB 11643 check digit (ISO 7064 MOD 11-2).
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idCheck = "10X98765432"

// ValidID reports whether s is an 18-character resident ID whose check
// digit is right. It does not check the region or birth date.
func ValidID(s string) bool {
	if len(s) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		sum += int(c-'0') * idWeights[i]
	}
	last := s[17]
	if last == 'x' {
		last = 'X'
	}
	return idCheck[sum%11] == last
}
