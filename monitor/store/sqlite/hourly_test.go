package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/sample"
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

func TestSlowColumnsMatchSlowBounds(t *testing.T) {
	if len(slowUS) != len(monitor.SlowBounds) {
		t.Fatalf("%d slow columns, %d bounds", len(slowUS), len(monitor.SlowBounds))
	}
	for i, b := range monitor.SlowBounds {
		if slowUS[i] != b.Microseconds() {
			t.Errorf("s%02d counts over %d µs, monitor.SlowBounds[%d] is %v", i, slowUS[i], i, b)
		}
	}
}

// TestQualityColumnsBackfill zeroes the quality columns of the hourly rollup
// and runs migration 004's UPDATE again: the coarse aggregate comes back as
// the rollup kept it on append.
func TestQualityColumnsBackfill(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := s.Append(ctx, sample.Scenario(now, 4)); err != nil {
		t.Fatal(err)
	}
	q := monitor.AggQuery{From: now.Add(-48 * time.Hour), To: now, Coarse: true, SlowerThan: 30 * time.Second}
	want, err := s.Aggregate(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var slow int64
	for _, a := range want {
		slow += a.Slow + a.Records + a.FormatErrors
	}
	if slow == 0 {
		t.Fatal("the sample has no slow events, records or format errors: the test checks nothing")
	}
	set := "records = 0, records_failed = 0, format_errors = 0"
	for k := range slowUS {
		set += fmt.Sprintf(", s%02d = 0", k)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE monitor_hourly SET "+set); err != nil {
		t.Fatal(err)
	}
	b, err := migrations.ReadFile("migrations/004_hourly_quality.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, update := range strings.SplitAfter(string(b[strings.Index(string(b), "UPDATE"):]), ";") {
		if strings.TrimSpace(update) == "" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, update); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Aggregate(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after backfill\n%+v\nwant\n%+v", got, want)
	}
}
