package household

import (
	"errors"
	"testing"
)

func TestParseYuan(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false}, {"12", 1200, false}, {"12.3", 1230, false}, {"12.34", 1234, false},
		{"-3.20", -320, false}, {" 7.05 ", 705, false}, {"12.345", 0, true}, {"1e3", 0, true},
		{"", 0, true}, {".5", 0, true}, {"5.", 0, true}, {"1,000", 0, true}, {"--1", 0, true},
		{"1234567890123456", 0, true},
	} {
		got, err := ParseYuan(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d, err %v", c.in, got, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, ErrBadAmount) {
			t.Errorf("ParseYuan(%q): %v is not ErrBadAmount", c.in, err)
		}
	}
}

func TestParseMonth(t *testing.T) {
	for in, want := range map[string]string{"2026-10": "2026-10", "202610": "2026-10", "2026-13": "", "x": ""} {
		got, err := ParseMonth(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseMonth(%q) = %q, %v", in, got, err)
		}
	}
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0", "12.34", "-1.2", "1e3", ".5", "99999999999999.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseYuan(s)
		if err != nil {
			return
		}
		back, err := ParseYuan(FormatYuan(v))
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, FormatYuan(v), back, err)
		}
	})
}
