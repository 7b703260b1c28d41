package monitor_test

import (
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

// FuzzParseSchedule: any input parses or fails cleanly, and a parsed
// schedule's Next is after and Prev before the reference time.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"daily 06:00", "monthly 5 18:00", "monthly 31 00:00", "weekly 1 06:00", "daily 24:00", ""} {
		f.Add(s)
	}
	ref := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := monitor.ParseSchedule(s)
		if err != nil {
			return
		}
		if n := sc.Next(ref); !n.After(ref) || n.Sub(ref) > 32*24*time.Hour {
			t.Errorf("%q: Next(%v) = %v", s, ref, n)
		}
		if p := sc.Prev(ref); !p.Before(ref) || ref.Sub(p) > 32*24*time.Hour {
			t.Errorf("%q: Prev(%v) = %v", s, ref, p)
		}
	})
}
