package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub"
)

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Store.Path = filepath.Join(dir, "state.db")
	cfg.Monitor.SQLitePath = filepath.Join(dir, "monitor.db")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 3 * time.Second
	return cfg
}

func start(t *testing.T, cfg config.Config, setup func(h *hub.Hub)) (string, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := hub.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(h)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- h.Run(ctx); close(finished) }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	addr, err := h.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("hub did not stop")
		}
	})
	return "http://" + addr, cancel, done
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it answers 200 or the deadline passes.
func waitStatus(t *testing.T, url string, want int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get(t, url)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d (%s), want %d", url, code, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEndpoints(t *testing.T) {
	base, _, _ := start(t, testConfig(t), func(h *hub.Hub) {
		h.AddComponent("idle", hub.ComponentFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	})
	code, body := get(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz = %d %s", code, body)
	}
	body = waitStatus(t, base+"/readyz", 200)
	var r struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "ready" || r.Checks["store"] != "ok" {
		t.Fatalf("readyz = %s (%v)", body, err)
	}
	code, body = get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "mzhub_build_info") || !strings.Contains(body, `mzhub_component_up{component="idle"} 1`) {
		t.Fatalf("metrics = %d, missing mzhub metrics:\n%s", code, body)
	}
}

func TestReadyzReportsFailingCheck(t *testing.T) {
	base, _, _ := start(t, testConfig(t), func(h *hub.Hub) {
		h.AddCheck("bank.boc", func(context.Context) error { return errors.New("sftp 127.0.0.1:2222: connection refused") })
	})
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Fatalf("readyz = %d %s, want 503 with the reason", code, body)
	}
}

func TestGracefulShutdownLetsInFlightFinish(t *testing.T) {
	started := make(chan struct{})
	base, cancel, done := start(t, testConfig(t), func(h *hub.Hub) {
		h.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			time.Sleep(300 * time.Millisecond)
			_, _ = io.WriteString(w, "finished")
		}))
	})
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	cancel()
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request got %q, want it to finish", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub did not stop within the deadline")
	}
}

func TestShutdownDeadlineBoundsStuckComponent(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.ShutdownTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	_, cancel, done := start(t, cfg, func(h *hub.Hub) {
		h.AddComponent("stuck", hub.ComponentFunc(func(ctx context.Context) error { <-release; return nil }))
	})
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	cancel()
	select {
	case <-done:
		if el := time.Since(t0); el > 2*time.Second {
			t.Fatalf("shutdown took %s", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stuck component blocked shutdown past the deadline")
	}
}

func TestComponentFailureStopsHub(t *testing.T) {
	_, _, done := start(t, testConfig(t), func(h *hub.Hub) {
		h.AddComponent("broken", hub.ComponentFunc(func(ctx context.Context) error { return errors.New("boom") }))
	})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("Run = %v, want the component's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub kept running after a component failed")
	}
}

func TestLoggerMasksIdentifiers(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var b strings.Builder
		log := hub.NewLogger(&b, "info", format)
		log.Info("payment failed for 310101199003071238", "person_id", "310101199003071238", "account", "6222021234567890123", "err", errors.New("account 6222021234567890123 closed"))
		out := b.String()
		for _, raw := range []string{"310101199003071238", "6222021234567890123"} {
			if strings.Contains(out, raw) {
				t.Fatalf("%s log contains %s:\n%s", format, raw, out)
			}
		}
		if !strings.Contains(out, "7890123") && !strings.Contains(out, "0123") {
			t.Fatalf("%s log lost the last digits entirely:\n%s", format, out)
		}
	}
}
