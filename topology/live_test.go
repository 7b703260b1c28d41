package topology

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
)

// TestLiveRates feeds the counters a route and a service use and reads the
// edges' rates and error counts over the window from a fake clock.
func TestLiveRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRouteDeliveries}, []string{"route", "sink", "outcome"})
	received := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRouteReceived}, []string{"route"})
	handled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRouteHandled}, []string{"route", "outcome"})
	exchanges := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricExchanges}, []string{"partner", "flow", "direction", "outcome"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "mzhub_unrelated_total"})
	reg.MustRegister(deliveries, received, handled, exchanges, other)

	m := Build(Input{
		Routes: []Route{httpIn("push", "funeral", toTopic("t", 9), toHTTP(10)), busIn("read", "t", toHTTP(12))},
		Services: []Service{{Name: "disbursement", Partners: []PartnerLink{
			{Name: "banks", Partners: []string{"bank.*"}, Direction: Out, Channel: "sftp", Flows: []string{"disbursement"}},
		}}},
	})
	fc := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, clock.Shanghai))
	l := NewLive(reg, fc, 5*time.Minute)

	edge := func(v View, from, to string) EdgeView {
		t.Helper()
		for _, e := range v.Edges {
			if e.From == from && e.To == to {
				return e
			}
		}
		t.Fatalf("no edge %s -> %s", from, to)
		return EdgeView{}
	}
	// Before any traffic: everything counts zero, and the first read has no
	// span to make a rate of.
	v, err := l.Measure(m)
	if err != nil {
		t.Fatal(err)
	}
	if v.Span != 0 || edge(v, "partner:funeral@in", "route:push").PerMinute != 0 {
		t.Fatalf("first view: span %s", v.Span)
	}
	// Traffic before the window starts is in the totals only.
	received.WithLabelValues("push").Add(100)
	fc.Advance(time.Minute)
	if err := l.Sample(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		fc.Advance(time.Minute)
		if err := l.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	// Over the last five minutes: 300 received, 290 delivered to t, 7
	// failed attempts to the http sink, 40 uploads to banks of which 2 failed.
	received.WithLabelValues("push").Add(300)
	deliveries.WithLabelValues("push", "bus", "sent").Add(290)
	deliveries.WithLabelValues("push", "http", "failed").Add(7)
	deliveries.WithLabelValues("push", "http", "sent").Add(5)
	handled.WithLabelValues("read", "ok").Add(280)
	handled.WithLabelValues("read", "dead_lettered").Add(3)
	exchanges.WithLabelValues("bank.boc", "disbursement", "out", "ok").Add(30)
	exchanges.WithLabelValues("bank.ccb", "disbursement", "out", "ok").Add(8)
	exchanges.WithLabelValues("bank.ccb", "disbursement", "out", "error").Add(2)
	exchanges.WithLabelValues("bank.ccb", "disbursement", "in", "ok").Add(1000)
	exchanges.WithLabelValues("funeral.fh01", "disbursement", "out", "ok").Add(1000)
	other.Add(1e6)
	if v, err = l.Measure(m); err != nil {
		t.Fatal(err)
	}
	if v.Span != 5*time.Minute {
		t.Fatalf("span %s, want the window", v.Span)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, tc := range []struct {
		from, to          string
		perMin, errs, tot float64
	}{
		{"partner:funeral@in", "route:push", 60, 0, 400},
		{"route:push", "topic:t", 58, 0, 290},
		{"route:push", "partner:funeral@out", 1, 7, 5},
		{"topic:t", "route:read", 283.0 / 5, 3, 283},
		{"service:disbursement", "partner:banks@out", 8, 2, 40},
	} {
		e := edge(v, tc.from, tc.to)
		if !e.Metered || !near(e.PerMinute, tc.perMin) || !near(e.Errors, tc.errs) || !near(e.Total, tc.tot) {
			t.Errorf("%s -> %s: metered %v, %.2f/min, %v errors, total %v; want %.2f/min, %v errors, total %v",
				tc.from, tc.to, e.Metered, e.PerMinute, e.Errors, e.Total, tc.perMin, tc.errs, tc.tot)
		}
	}
	// Five quiet minutes later the rates fall to zero; the totals stay.
	for range 5 {
		fc.Advance(time.Minute)
		if err := l.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	if v, err = l.Measure(m); err != nil {
		t.Fatal(err)
	}
	if e := edge(v, "partner:funeral@in", "route:push"); e.PerMinute != 0 || e.Total != 400 {
		t.Errorf("quiet window: %.2f/min, total %v", e.PerMinute, e.Total)
	}
	l.mu.Lock()
	kept := len(l.samples)
	l.mu.Unlock()
	if kept != 7 {
		t.Errorf("kept %d samples, want the window's 6 and the baseline", kept)
	}
}

// TestLiveRun samples ten times per window until its context ends.
func TestLiveRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLive(prometheus.NewRegistry(), clock.Real{}, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		count := func() int {
			synctest.Wait()
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.samples)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d samples at the start", n)
		}
		time.Sleep(6 * time.Second)
		if n := count(); n != 2 {
			t.Fatalf("%d samples after a tick", n)
		}
		time.Sleep(54 * time.Second)
		if n := count(); n != 11 {
			t.Fatalf("%d samples after a window", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
