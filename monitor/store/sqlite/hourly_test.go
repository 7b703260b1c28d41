package sqlite

import (
	"testing"
	"time"
)

func TestP95Hist(t *testing.T) {
	cases := []struct {
		name string
		durs []time.Duration
		want time.Duration
	}{
		{"constant 100ms", repeat(100*time.Millisecond, 100), 100 * time.Millisecond},
		{"1..20 s", seq(20, time.Second), 19 * time.Second},
		{"sub-millisecond lands in the first bucket", repeat(300*time.Microsecond, 10), time.Millisecond},
		{"empty", nil, 0},
	}
	for _, tc := range cases {
		var h [histBuckets]int64
		for _, d := range tc.durs {
			h[bucketOf(d.Microseconds())]++
		}
		got := p95Hist(&h)
		// Buckets grow by 1.5x: the estimate is within that factor.
		if tc.want == 0 && got != 0 || tc.want > 0 && (float64(got) > 1.5*float64(tc.want) || float64(got) < float64(tc.want)/1.5) {
			t.Errorf("%s: p95 %v, want about %v", tc.name, got, tc.want)
		}
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}
