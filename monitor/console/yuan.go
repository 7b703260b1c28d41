package console

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// formatYuan shows an amount in fen as yuan with two decimals and
// thousands separators: 123456789 → "1,234,567.89".
func formatYuan(fen int64) string {
	neg := fen < 0
	u := uint64(fen)
	if neg {
		u = -u // two's complement: right for math.MinInt64 too
	}
	s := groupDigits(strconv.FormatUint(u/100, 10))
	c := u % 100
	s += "." + string(rune('0'+c/10)) + string(rune('0'+c%10))
	if neg {
		s = "-" + s
	}
	return s
}

// errYuan is an amount that is not a positive yuan figure with at most two
// decimals.
var errYuan = errors.New("console: not a yuan amount with at most two decimals")

// parseYuan reads a positive amount in yuan typed by a person ("1234.5",
// "1,234.56", "￥1 234.56") as fen, exactly: digits only, no floating
// point; more than two decimals, a sign, a zero amount or one beyond int64
// fen are errors.
func parseYuan(s string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "¥"), "￥")
	s = strings.NewReplacer(",", "", "，", "", " ", "", "\u00a0", "").Replace(s)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 2 || dot && frac == "" {
		return 0, errYuan
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return 0, errYuan
			}
		}
	}
	var y int64
	if whole != "" {
		var err error
		if y, err = strconv.ParseInt(whole, 10, 64); err != nil || y > math.MaxInt64/100-1 {
			return 0, errYuan
		}
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	fen := y*100 + f
	if fen <= 0 {
		return 0, errYuan
	}
	return fen, nil
}

// groupDigits puts thousands separators into a string of digits.
func groupDigits(s string) string {
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatCount shows a count with thousands separators.
func formatCount(n int64) string {
	if n < 0 {
		return "-" + groupDigits(strconv.FormatUint(-uint64(n), 10))
	}
	return groupDigits(strconv.FormatInt(n, 10))
}
