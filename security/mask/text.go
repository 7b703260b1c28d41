package mask

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Kind names what an identifier found in text looks like.
type Kind string

// The kinds Text and Scan recognise.
const (
	KindID      Kind = "id_number"
	KindPhone   Kind = "phone"
	KindAccount Kind = "account"
)

// Finding is one unmasked identifier found by Scan. It never holds the whole
// identifier: Masked is its masked form.
type Finding struct {
	// Kind is what the digits look like.
	Kind Kind
	// Line is the 1-based line number (ScanReader) or 0 (Scan).
	Line int
	// Offset is the byte offset of the identifier in the text or line.
	Offset int
	// Masked is the identifier as Text would show it.
	Masked string
	// ValidCheckDigit is true for a KindID whose GB 11643 check digit is right.
	ValidCheckDigit bool
}

// String renders a finding for a test failure message.
func (f Finding) String() string {
	return fmt.Sprintf("line %d offset %d: unmasked %s %s", f.Line, f.Offset, f.Kind, f.Masked)
}

// Rules for free text. A digit run is a maximal run of ASCII digits (plus a
// trailing X or x after 17 digits, the ID check character) with no digit on
// either side.
//
//   - 18 characters (17 digits + digit or X) or 15 digits: resident ID, unless
//     18 digits with a wrong check digit, which is treated as an account.
//   - 11 digits starting 13–19, or 13 digits starting 8613–8619: mobile phone.
//   - 16 to 25 digits otherwise: account or card number.
//
// Shorter runs (amounts, counts, dates, unix milliseconds) are left alone;
// account numbers shorter than 16 digits are masked only when they sit under
// a known key (see NewHandler).
func classify(run string) (Kind, bool) {
	n := len(run)
	last := run[n-1]
	if last == 'X' || last == 'x' {
		return KindID, n == 18
	}
	switch {
	case n == 18:
		if ValidID(run) {
			return KindID, true
		}
		return KindAccount, true
	case n == 15:
		return KindID, true
	case n == 11 && run[0] == '1' && run[1] >= '3':
		return KindPhone, true
	case n == 13 && strings.HasPrefix(run, "861") && run[3] >= '3':
		return KindPhone, true
	case n >= 16 && n <= 25:
		return KindAccount, true
	}
	return "", false
}

func maskAs(k Kind, run string) string {
	switch k {
	case KindID:
		return IDNumber(run)
	case KindPhone:
		if len(run) == 13 {
			return "86" + Phone(run[2:])
		}
		return Phone(run)
	}
	return Account(run)
}

// each calls fn for every identifier-looking digit run in s.
func each(s string, fn func(start, end int, k Kind)) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		end := j
		if j-i == 17 && j < len(s) && (s[j] == 'X' || s[j] == 'x') {
			end = j + 1
		}
		if k, ok := classify(s[i:end]); ok {
			fn(i, end, k)
		}
		i = end
	}
}

// Text returns s with every resident ID, mobile phone and long account number
// masked (see the rules above); everything else is unchanged.
func Text(s string) string {
	var b strings.Builder
	last := 0
	each(s, func(start, end int, k Kind) {
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString(maskAs(k, s[start:end]))
		last = end
	})
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Scan reports the unmasked identifiers in s, in order.
func Scan(s string) []Finding {
	var out []Finding
	each(s, func(start, end int, k Kind) {
		run := s[start:end]
		out = append(out, Finding{Kind: k, Offset: start, Masked: maskAs(k, run), ValidCheckDigit: k == KindID && ValidID(run)})
	})
	return out
}

// ScanIDs reports only the unmasked 18-character resident IDs in s; it is
// the check for "no whole ID in the logs".
func ScanIDs(s string) []Finding {
	var out []Finding
	for _, f := range Scan(s) {
		if f.Kind == KindID && len(f.Masked) == 18 {
			out = append(out, f)
		}
	}
	return out
}

// ScanReader scans r line by line (lines up to 1 MiB) and reports the
// unmasked identifiers with their line numbers.
func ScanReader(r io.Reader) ([]Finding, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var out []Finding
	line := 0
	for sc.Scan() {
		line++
		for _, f := range Scan(sc.Text()) {
			f.Line = line
			out = append(out, f)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("mask: scan line %d: %w", line+1, err)
	}
	return out, nil
}
