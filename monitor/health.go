package monitor

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// FlowSchedule says how often a partner flow is expected to succeed; the
// health matrix and the staleness rule compare the last success with it.
type FlowSchedule struct {
	// Partner is the partner id, e.g. bank.boc.
	Partner string `yaml:"partner"`
	// Flow is the flow name, e.g. disbursement.
	Flow string `yaml:"flow"`
	// Every is the longest expected gap between two successes (e.g. 24h for a daily file).
	Every time.Duration `yaml:"every"`
}

// Band is a health colour.
type Band string

// The colour bands, from good to bad.
const (
	Green Band = "green"
	Amber Band = "amber"
	Red   Band = "red"
	Grey  Band = "grey" // nothing seen yet
)

// FlowHealth is one cell of the partner × flow health matrix.
type FlowHealth struct {
	Partner string
	Flow    string
	// LastOK and LastEvent as in Last.
	LastOK    time.Time
	LastEvent time.Time
	// Every is the schedule (0: none configured).
	Every time.Duration
	// H1 and H24 aggregate the last hour and the last 24 hours.
	H1  Agg
	H24 Agg
	// Backlog counts open dead letters.
	Backlog int
	// Band is the worst of the error-rate, staleness and backlog bands.
	Band Band
	// Reasons explain a band worse than green (message keys, see console).
	Reasons []string
}

// Stale reports whether the last success is older than the schedule allows.
func (h FlowHealth) Stale(now time.Time) bool {
	return h.Every > 0 && (h.LastOK.IsZero() || now.Sub(h.LastOK) > h.Every)
}

// Thresholds decide the colour bands.
type Thresholds struct {
	// ErrorRateAmber is the 1 h error rate (0..1) from which a flow is amber and a warning alert is raised (0: off).
	ErrorRateAmber float64 `yaml:"error_rate_amber"`
	// ErrorRateRed is the 1 h error rate (0..1) from which a flow is red and a critical alert is raised (0: off).
	ErrorRateRed float64 `yaml:"error_rate_red"`
	// BacklogAmber is the number of open dead letters from which a flow is amber (0: off).
	BacklogAmber int `yaml:"backlog_amber"`
	// BacklogRed is the number of open dead letters from which a flow is red and an alert is raised (0: off).
	BacklogRed int `yaml:"backlog_red"`
}

// HealthMatrix computes the health of every partner flow seen or scheduled.
func HealthMatrix(ctx context.Context, s Store, now time.Time, schedules []FlowSchedule, th Thresholds) ([]FlowHealth, error) {
	type key struct{ p, f string }
	cells := map[key]*FlowHealth{}
	cell := func(p, f string) *FlowHealth {
		k := key{p, f}
		if c, ok := cells[k]; ok {
			return c
		}
		c := &FlowHealth{Partner: p, Flow: f}
		cells[k] = c
		return c
	}
	for _, sc := range schedules {
		cell(sc.Partner, sc.Flow).Every = sc.Every
	}
	lasts, err := s.LastSeen(ctx)
	if err != nil {
		return nil, fmt.Errorf("monitor: health: %w", err)
	}
	for _, l := range lasts {
		c := cell(l.Partner, l.Flow)
		c.LastOK, c.LastEvent = l.LastOK, l.LastEvent
	}
	h1, err := s.Aggregate(ctx, AggQuery{From: now.Add(-time.Hour), To: now.Add(time.Millisecond)})
	if err != nil {
		return nil, fmt.Errorf("monitor: health: %w", err)
	}
	for _, a := range h1 {
		cell(a.Partner, a.Flow).H1 = a
	}
	// The 24 h column shows events and the error rate only: the hourly
	// rollup answers it (window widened to the hour).
	h24, err := s.Aggregate(ctx, AggQuery{From: now.Add(-24 * time.Hour), To: now.Add(time.Millisecond), SkipP95: true, Coarse: true})
	if err != nil {
		return nil, fmt.Errorf("monitor: health: %w", err)
	}
	for _, a := range h24 {
		cell(a.Partner, a.Flow).H24 = a
	}
	dl, err := s.DeadLetters(ctx, Filter{Limit: 10000})
	if err != nil {
		return nil, fmt.Errorf("monitor: health: %w", err)
	}
	for _, e := range dl {
		cell(e.Partner, e.Flow).Backlog++
	}
	out := make([]FlowHealth, 0, len(cells))
	for _, c := range cells {
		c.Band, c.Reasons = band(*c, now, th)
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partner != out[j].Partner {
			return out[i].Partner < out[j].Partner
		}
		return out[i].Flow < out[j].Flow
	})
	return out, nil
}

func band(c FlowHealth, now time.Time, th Thresholds) (Band, []string) {
	if c.LastEvent.IsZero() && c.Every == 0 {
		return Grey, nil
	}
	b := Green
	var why []string
	worse := func(nb Band, reason string) {
		why = append(why, reason)
		if nb == Red || b == Green {
			b = nb
		}
	}
	switch r := c.H1.ErrorRate(); {
	case th.ErrorRateRed > 0 && r >= th.ErrorRateRed:
		worse(Red, "reason_error_rate")
	case th.ErrorRateAmber > 0 && r >= th.ErrorRateAmber:
		worse(Amber, "reason_error_rate")
	case th.ErrorRateAmber > 0 && c.H24.ErrorRate() >= th.ErrorRateAmber:
		worse(Amber, "reason_error_rate_24h")
	}
	if c.Every > 0 {
		switch {
		case c.LastOK.IsZero() && c.LastEvent.IsZero():
			worse(Amber, "reason_never")
		case c.LastOK.IsZero() || now.Sub(c.LastOK) > 2*c.Every:
			worse(Red, "reason_stale")
		case now.Sub(c.LastOK) > c.Every:
			worse(Amber, "reason_stale")
		}
	}
	switch {
	case th.BacklogRed > 0 && c.Backlog >= th.BacklogRed:
		worse(Red, "reason_backlog")
	case th.BacklogAmber > 0 && c.Backlog >= th.BacklogAmber:
		worse(Amber, "reason_backlog")
	}
	return b, why
}
