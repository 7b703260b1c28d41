package monitor

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
)

// ExpectationRule expects an exchange on a recurring deadline, e.g. the
// data sea's daily death file by 06:00.
type ExpectationRule struct {
	// Name identifies the rule, e.g. datasea-death-daily; it names each expected instance.
	Name string `yaml:"name"`
	// Partner is the partner the exchange comes from or goes to.
	Partner string `yaml:"partner"`
	// Flow is the business flow of the exchange.
	Flow string `yaml:"flow"`
	// Type is the step that meets the expectation (e.g. fetched, downloaded); empty accepts any ok step.
	Type EventType `yaml:"type"`
	// FilePattern, when set, must match the event's file name (shell pattern, e.g. DEATH_*.txt).
	FilePattern string `yaml:"file_pattern"`
	// Schedule is the deadline in Asia/Shanghai time: "daily HH:MM" or "monthly D HH:MM" (D is clamped to the month's last day).
	Schedule string `yaml:"schedule"`
}

// Schedule is a parsed recurring deadline in Asia/Shanghai time.
type Schedule struct {
	// Monthly is false for a daily deadline.
	Monthly bool
	// Day of the month (monthly only), Hour and Minute.
	Day, Hour, Minute int
}

// ParseSchedule parses "daily HH:MM" or "monthly D HH:MM".
func ParseSchedule(s string) (Schedule, error) {
	f := strings.Fields(s)
	var sc Schedule
	var hm string
	switch {
	case len(f) == 2 && f[0] == "daily":
		hm = f[1]
	case len(f) == 3 && f[0] == "monthly":
		d, err := strconv.Atoi(f[1])
		if err != nil || d < 1 || d > 31 {
			return sc, fmt.Errorf("schedule %q: day must be 1..31", s)
		}
		sc.Monthly, sc.Day, hm = true, d, f[2]
	default:
		return sc, fmt.Errorf("schedule %q: want \"daily HH:MM\" or \"monthly D HH:MM\"", s)
	}
	t, err := time.Parse("15:04", hm)
	if err != nil {
		return sc, fmt.Errorf("schedule %q: time must be HH:MM", s)
	}
	sc.Hour, sc.Minute = t.Hour(), t.Minute()
	return sc, nil
}

func (s Schedule) at(y int, m time.Month, d int) time.Time {
	if s.Monthly {
		last := time.Date(y, m+1, 0, 0, 0, 0, 0, clock.Shanghai).Day()
		d = min(s.Day, last)
	}
	return time.Date(y, m, d, s.Hour, s.Minute, 0, 0, clock.Shanghai)
}

// Next returns the first deadline strictly after t.
func (s Schedule) Next(t time.Time) time.Time {
	l := t.In(clock.Shanghai)
	if s.Monthly {
		for i := 0; ; i++ {
			c := s.at(l.Year(), l.Month()+time.Month(i), 1)
			if c.After(t) {
				return c
			}
		}
	}
	for i := 0; ; i++ {
		c := s.at(l.Year(), l.Month(), l.Day()+i)
		if c.After(t) {
			return c
		}
	}
}

// Prev returns the last deadline strictly before t.
func (s Schedule) Prev(t time.Time) time.Time {
	l := t.In(clock.Shanghai)
	if s.Monthly {
		for i := 0; ; i++ {
			c := s.at(l.Year(), l.Month()-time.Month(i), 1)
			if c.Before(t) {
				return c
			}
		}
	}
	for i := 0; ; i++ {
		c := s.at(l.Year(), l.Month(), l.Day()-i)
		if c.Before(t) {
			return c
		}
	}
}
