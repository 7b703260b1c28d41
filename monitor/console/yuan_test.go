package console

import (
	"math"
	"testing"
)

func TestYuan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fen  int64
		fail bool
	}{
		{in: "1234.56", fen: 123456},
		{in: "1,234.5", fen: 123450},
		{in: " ￥2 639 850.00 ", fen: 263985000},
		{in: "¥0.01", fen: 1},
		{in: "263985000", fen: 26398500000},
		{in: ".5", fen: 50},
		{in: "0.10", fen: 10},
		{in: "92233720368547757.00", fen: 9223372036854775700},
		{in: "", fail: true},
		{in: "0", fail: true},
		{in: "0.00", fail: true},
		{in: "-5", fail: true},
		{in: "+5", fail: true},
		{in: "1.234", fail: true},
		{in: "1.", fail: true},
		{in: ".", fail: true},
		{in: "1e3", fail: true},
		{in: "12,34.5x", fail: true},
		{in: "１２", fail: true}, // full-width digits are not taken as digits
		{in: "NaN", fail: true},
		{in: "92233720368547758", fail: true},
		{in: "99999999999999999999", fail: true},
	} {
		fen, err := parseYuan(tc.in)
		if tc.fail != (err != nil) || fen != tc.fen {
			t.Errorf("parseYuan(%q) = %d, %v; want %d, fail %v", tc.in, fen, err, tc.fen, tc.fail)
		}
	}
	for fen, want := range map[int64]string{0: "0.00", 5: "0.05", 123456789: "1,234,567.89", -100: "-1.00",
		math.MinInt64: "-92,233,720,368,547,758.08", math.MaxInt64: "92,233,720,368,547,758.07"} {
		if got := formatYuan(fen); got != want {
			t.Errorf("formatYuan(%d) = %q, want %q", fen, got, want)
		}
	}
}

// FuzzParseYuan: whatever a person types, an accepted amount is positive
// and reads back the same from its own display.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"1234.56", "1,234.5", "￥0.01", "-1", "1e9", "9223372036854775807", ".", "0.001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := parseYuan(s)
		if err != nil {
			return
		}
		if fen <= 0 {
			t.Fatalf("parseYuan(%q) = %d", s, fen)
		}
		back, err := parseYuan(formatYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("%q → %d → %q → %d, %v", s, fen, formatYuan(fen), back, err)
		}
	})
}
