package mappings

import (
	"strings"
	"unicode/utf8"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// Mask hides a sensitive value for messages and logs. kind is the field's
// sensitive class: id keeps the 3-character region prefix and the last 4
// (310***********123X), account keeps the last 4, phone keeps 3+4
// (138****5678), name keeps the first character (张**). Any other kind
// returns s unchanged.
//
// It delegates to security/mask, the hub's one masking package, so files,
// logs, events and the console mask alike.
func Mask(kind, s string) string {
	switch kind {
	case "id":
		return mask.IDNumber(s)
	case "account":
		return mask.Account(s)
	case "phone":
		return mask.Phone(s)
	case "name":
		return mask.Name(s)
	}
	return s
}

// maskKeep keeps head and tail runes and stars the rest. Values too short
// to keep anything meaningful are starred completely.
func maskKeep(s string, head, tail int) string {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return ""
	}
	if n <= head+tail {
		return strings.Repeat("*", n)
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i < head || i >= n-tail {
			b.WriteRune(r)
		} else {
			b.WriteByte('*')
		}
		i++
	}
	return b.String()
}

// maskExcerpt makes a short excerpt of an unparsed line safe to show: runs
// of 6 or more digits (IDs, accounts, phones) keep only their last 4, runs
// of Chinese characters (names) keep only their first, and the excerpt is
// cut to 40 characters.
func maskExcerpt(s string) string {
	var b strings.Builder
	runes := []rune(s)
	if len(runes) > 40 {
		runes = runes[:40]
	}
	for i := 0; i < len(runes); {
		j := i
		switch r := runes[i]; {
		case isDigitX(r):
			for j < len(runes) && isDigitX(runes[j]) {
				j++
			}
			if j-i >= 6 {
				b.WriteString(maskKeep(string(runes[i:j]), 0, 4))
			} else {
				b.WriteString(string(runes[i:j]))
			}
		case r >= 0x3400 && r <= 0x9FFF:
			for j < len(runes) && runes[j] >= 0x3400 && runes[j] <= 0x9FFF {
				j++
			}
			b.WriteString(maskKeep(string(runes[i:j]), 1, 0))
		default:
			j++
			if r == utf8.RuneError || r < 0x20 {
				b.WriteByte('?')
			} else {
				b.WriteRune(r)
			}
		}
		i = j
	}
	return b.String()
}

func isDigitX(r rune) bool { return (r >= '0' && r <= '9') || r == 'X' || r == 'x' }
