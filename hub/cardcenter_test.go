package hub_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/monitor"
)

// syncBuffer is a log the hub writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCardcenterRoutesIdleWithoutURL runs the shipped routes as serve
// does with cardcenter.url unset: the hub starts and is ready, the engine
// holds each cardcenter route back once with the reason (Deps.Skip), and
// no route source runs, fails or is restarted (which the engine would do
// every 5 s, forever).
func TestCardcenterRoutesIdleWithoutURL(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := hub.DemoConfig(filepath.Join(dir, "hub"), "127.0.0.1:0", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = "hubtest"
	logs := &syncBuffer{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := hub.Build(ctx, cfg, hub.NewLogger(logs, "info", "text"), hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	notStarted := func() int {
		n := 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `msg="route not started"`) && strings.Contains(line, "route=cardcenter-") &&
				strings.Contains(line, "cardcenter.url is unset") {
				n++
			}
		}
		return n
	}
	late := time.After(30 * time.Second)
	for notStarted() < 2 {
		select {
		case <-logs.ch:
		case err := <-done:
			t.Fatalf("the hub stopped: %v", err)
		case <-late:
			t.Fatalf("the cardcenter routes were not held back:\n%s", logs.String())
		}
	}
	out := logs.String()
	for _, want := range []string{"route=cardcenter-applications", "route=cardcenter-progress",
		"cardcenter: not configured (cardcenter.url is not set): the cardcenter routes are not started and no card status is asked"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, id := range []string{"cardcenter-applications", "cardcenter-progress"} {
		if why := h.Routes().Skipped()[id]; why != hub.CardcenterOffReason {
			t.Errorf("route %s: skipped %q", id, why)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := notStarted(); n != 2 {
		t.Errorf("held back %d times, want once per route", n)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "route=cardcenter-") && (strings.Contains(line, "source stopped") || strings.Contains(line, "level=ERROR")) {
			t.Errorf("a cardcenter route failed: %s", line)
		}
	}
}

// waitCardApplications waits until the allowance service has applied n
// card applications and quarantined bad ones from the cardcenter routes
// (the consumer's events reach the monitor), so that a list screened
// afterwards sees them.
func waitCardApplications(t *testing.T, srv *hubtest.Server, n, bad int) {
	t.Helper()
	ctx := context.Background()
	late := time.After(60 * time.Second)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		got, err := srv.Hub.Monitor().Store().Search(ctx, monitor.Filter{Partner: cardcenter.Partner, Flow: "card-apply", Type: monitor.Received, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		rej, err := srv.Hub.Monitor().Store().Search(ctx, monitor.Filter{Partner: cardcenter.Partner, Flow: "card-apply", Type: monitor.Rejected, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= n && len(rej) >= bad {
			return
		}
		select {
		case <-stored:
		case <-late:
			t.Fatalf("%d of %d card applications applied, %d of %d quarantined", len(got), n, len(rej), bad)
		}
	}
}
