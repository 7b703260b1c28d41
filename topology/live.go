package topology

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
)

// DefaultWindow is the span Live's rates and error counts cover.
const DefaultWindow = 5 * time.Minute

// Live measures a model's edges from the hub's metrics: it samples the
// counters the meters read (Run, or Sample) and turns the increase over the
// window into a rate and an error count. The counters are this process's:
// with several replicas each measures its own share of the traffic.
type Live struct {
	g      prometheus.Gatherer
	clock  clock.Clock
	window time.Duration

	mu      sync.Mutex
	samples []sample // oldest first
}

type sample struct {
	at     time.Time
	points map[string][]point // metric name → series
}

type point struct {
	labels map[string]string
	v      float64
}

// NewLive returns a Live reading g. window is the span of rates and error
// counts (0: DefaultWindow); c tells the time (nil: the wall clock).
func NewLive(g prometheus.Gatherer, c clock.Clock, window time.Duration) *Live {
	if window <= 0 {
		window = DefaultWindow
	}
	if c == nil {
		c = clock.Real{}
	}
	return &Live{g: g, clock: c, window: window}
}

// Window is the span rates and error counts cover once Live has sampled
// that long.
func (l *Live) Window() time.Duration { return l.window }

// Run samples ten times per window until ctx is done.
func (l *Live) Run(ctx context.Context) error {
	every := l.window / 10
	for {
		// A failed gather is retried at the next tick; Measure reports it.
		_, _ = l.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-l.clock.After(every):
		}
	}
}

// Sample reads the counters now and keeps them.
func (l *Live) Sample() error {
	_, err := l.sample()
	return err
}

func (l *Live) sample() (sample, error) {
	mfs, err := l.g.Gather()
	if err != nil && len(mfs) == 0 {
		return sample{}, fmt.Errorf("topology: gather metrics: %w", err)
	}
	s := sample{at: l.clock.Now(), points: map[string][]point{}}
	for _, mf := range mfs {
		if !meteredMetrics[mf.GetName()] {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if mt.GetCounter() == nil {
				continue
			}
			ls := make(map[string]string, len(mt.GetLabel()))
			for _, lp := range mt.GetLabel() {
				ls[lp.GetName()] = lp.GetValue()
			}
			s.points[mf.GetName()] = append(s.points[mf.GetName()], point{labels: ls, v: mt.GetCounter().GetValue()})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples = append(l.samples, s)
	// Keep the samples of the window plus the newest one before it (the
	// baseline of a full window).
	cut := s.at.Add(-l.window)
	drop := 0
	for drop+1 < len(l.samples) && !l.samples[drop+1].at.After(cut) {
		drop++
	}
	l.samples = append(l.samples[:0], l.samples[drop:]...)
	return s, nil
}

// sum adds the values of the series a selection picks.
func (s sample) sum(sel []Series) float64 {
	var v float64
	for _, q := range sel {
		for _, p := range s.points[q.Metric] {
			if q.matches(p.labels) {
				v += p.v
			}
		}
	}
	return v
}

// View is a model with live numbers: what the console draws.
type View struct {
	// At is when the numbers were read.
	At time.Time
	// Span is the time the rates and error counts cover: the window, or
	// less right after the start (0: no earlier sample yet, rates unknown).
	Span time.Duration
	// Nodes of the model.
	Nodes []Node
	// Edges with their numbers.
	Edges []EdgeView
	// Problems are the model's Check findings (dangling topics).
	Problems []Problem
}

// EdgeView is an edge with its numbers.
type EdgeView struct {
	Edge
	// FromNode and ToNode are the edge's ends.
	FromNode, ToNode Node
	// Metered is false when the hub cannot count the edge (the numbers
	// below are then zero).
	Metered bool
	// PerMinute is the rate of messages over Span.
	PerMinute float64
	// Errors counts failures over Span.
	Errors float64
	// Total and TotalErrors count since the process started.
	Total, TotalErrors float64
}

// Measure reads the counters now and returns m with each edge's rate and
// error count over the window.
func (l *Live) Measure(m *Model) (View, error) {
	now, err := l.sample()
	if err != nil {
		return View{}, err
	}
	l.mu.Lock()
	base := l.samples[0]
	l.mu.Unlock()
	v := View{At: now.at, Span: now.at.Sub(base.at), Nodes: m.Nodes, Problems: m.Check()}
	for _, e := range m.Edges {
		ev := EdgeView{Edge: e, Metered: e.Meter.Metered()}
		ev.FromNode, _ = m.Node(e.From)
		ev.ToNode, _ = m.Node(e.To)
		if ev.Metered {
			ev.Total, ev.TotalErrors = now.sum(e.Meter.Count), now.sum(e.Meter.Errors)
			if v.Span > 0 {
				n := increase(base.sum(e.Meter.Count), ev.Total)
				ev.PerMinute = n / v.Span.Minutes()
				ev.Errors = increase(base.sum(e.Meter.Errors), ev.TotalErrors)
			}
		}
		v.Edges = append(v.Edges, ev)
	}
	return v, nil
}

// increase is a counter's growth from a to b; a reset (b < a) counts b.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}
